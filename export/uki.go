package export

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// UKIStub is systemd's EFI stub for Unified Kernel Images, from Debian's
// systemd-boot-efi package (systemd 252 on Debian 12). It starts the
// kernel in its .linux section with the command line in .cmdline and the
// initrd in .initrd; the firmware starts it as \EFI\BOOT\BOOTX64.EFI.
const UKIStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// ErrNoStub: systemd's stub is not installed.
var ErrNoStub = errors.New("systemd's EFI stub " + UKIStub + " is missing (apt-get install systemd-boot-efi)")

// Section is one section appended to the stub.
type Section struct {
	Name string // at most 8 bytes, e.g. ".linux"
	Data []byte
}

// PE/COFF layout (Microsoft's PE format specification): the offsets this
// code reads and writes, for the PE32+ images an x86-64 EFI stub is.
const (
	peOffsetPointer   = 0x3c // in the DOS header: where "PE\0\0" is
	coffHeaderSize    = 20
	sectionHeaderSize = 40
	pe32PlusMagic     = 0x20b

	// Offsets in the COFF header, from its start (after "PE\0\0").
	coffNumberOfSections    = 2
	coffSizeOfOptionalHeadr = 16

	// Offsets in the PE32+ optional header.
	optMagic            = 0
	optSectionAlignment = 32
	optFileAlignment    = 36
	optSizeOfImage      = 56
	optSizeOfHeaders    = 60
	optCheckSum         = 64

	// A section of initialised, read-only data.
	scnInitializedData = 0x00000040
	scnMemRead         = 0x40000000
)

// BuildUKI returns stub with sections appended: each placed after the
// stub's last section in memory (aligned to the stub's section alignment,
// at least a page) and at the end of the file (aligned to its file
// alignment), its header added to the section table, and the image size
// updated. This is what systemd's ukify does with a stub; Debian 12 has
// no ukify, so nos lays the sections out from the stub's own headers.
// The checksum is zeroed: UEFI firmware ignores it, and Secure Boot,
// which would check a signature instead, is not used.
func BuildUKI(stub []byte, sections []Section) ([]byte, error) {
	bad := func(what string) error { return fmt.Errorf("EFI stub: %s", what) }
	if len(stub) < 0x40 || stub[0] != 'M' || stub[1] != 'Z' {
		return nil, bad("not a PE image (no MZ header)")
	}
	pe := int(binary.LittleEndian.Uint32(stub[peOffsetPointer:]))
	if pe < 0x40 || pe+4+coffHeaderSize > len(stub) || !bytes.Equal(stub[pe:pe+4], []byte("PE\x00\x00")) {
		return nil, bad("no PE signature")
	}
	coff := pe + 4
	nsec := int(binary.LittleEndian.Uint16(stub[coff+coffNumberOfSections:]))
	optSize := int(binary.LittleEndian.Uint16(stub[coff+coffSizeOfOptionalHeadr:]))
	opt := coff + coffHeaderSize
	if opt+optSize > len(stub) || optSize < optCheckSum+4 || binary.LittleEndian.Uint16(stub[opt+optMagic:]) != pe32PlusMagic {
		return nil, bad("not a PE32+ image")
	}
	secAlign := binary.LittleEndian.Uint32(stub[opt+optSectionAlignment:])
	fileAlign := binary.LittleEndian.Uint32(stub[opt+optFileAlignment:])
	sizeOfHeaders := int(binary.LittleEndian.Uint32(stub[opt+optSizeOfHeaders:]))
	if secAlign == 0 || fileAlign == 0 || secAlign&(secAlign-1) != 0 || fileAlign&(fileAlign-1) != 0 {
		return nil, bad("bad alignment")
	}
	table := opt + optSize
	tableEnd := table + nsec*sectionHeaderSize
	if tableEnd > len(stub) || tableEnd > sizeOfHeaders {
		return nil, bad("section table outside the headers")
	}
	if tableEnd+len(sections)*sectionHeaderSize > sizeOfHeaders {
		return nil, bad(fmt.Sprintf("no room in its headers for %d more sections", len(sections)))
	}
	// Where the stub's sections end in memory.
	var end uint64
	for i := range nsec {
		h := stub[table+i*sectionHeaderSize:]
		vsize := uint64(binary.LittleEndian.Uint32(h[8:]))
		va := uint64(binary.LittleEndian.Uint32(h[12:]))
		end = max(end, va+vsize)
	}
	memAlign := uint64(max(secAlign, 4096))

	out := bytes.Clone(stub)
	for i, s := range sections {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return nil, fmt.Errorf("section name %q: want 1 to 8 bytes", s.Name)
		}
		va := alignUp(end, memAlign)
		raw := alignUp(uint64(len(out)), uint64(fileAlign))
		rawSize := alignUp(uint64(len(s.Data)), uint64(fileAlign))
		if va+uint64(len(s.Data)) > 1<<32-1 || raw+rawSize > 1<<32-1 {
			return nil, fmt.Errorf("section %s: the image would pass 4 GiB", s.Name)
		}
		out = append(out, make([]byte, raw-uint64(len(out)))...)
		out = append(out, s.Data...)
		out = append(out, make([]byte, rawSize-uint64(len(s.Data)))...)

		h := out[tableEnd+i*sectionHeaderSize : tableEnd+(i+1)*sectionHeaderSize]
		clear(h)
		copy(h[0:8], s.Name)
		binary.LittleEndian.PutUint32(h[8:], uint32(len(s.Data))) // VirtualSize
		binary.LittleEndian.PutUint32(h[12:], uint32(va))         // VirtualAddress
		binary.LittleEndian.PutUint32(h[16:], uint32(rawSize))    // SizeOfRawData
		binary.LittleEndian.PutUint32(h[20:], uint32(raw))        // PointerToRawData
		binary.LittleEndian.PutUint32(h[36:], scnInitializedData|scnMemRead)
		end = va + uint64(len(s.Data))
	}
	binary.LittleEndian.PutUint16(out[coff+coffNumberOfSections:], uint16(nsec+len(sections)))
	binary.LittleEndian.PutUint32(out[opt+optSizeOfImage:], uint32(alignUp(end, uint64(secAlign))))
	binary.LittleEndian.PutUint32(out[opt+optCheckSum:], 0)
	return out, nil
}

// ReadUKIStub reads systemd's stub.
func ReadUKIStub() ([]byte, error) {
	b, err := os.ReadFile(UKIStub)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoStub
	}
	return b, err
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }
