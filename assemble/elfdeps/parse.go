package elfdeps

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what the parser reads from a file. Real objects stay far
// below them (glibc's libc.so.6 has 13 program headers, about 30
// dynamic entries and 1 DT_NEEDED); they exist so that a hostile or
// corrupt file cannot make the parser allocate or loop without bound.
const (
	// maxDynamicSize caps the PT_DYNAMIC segment read (64 Ki entries).
	maxDynamicSize = 1 << 20
	// maxNeeded caps the DT_NEEDED entries of one object.
	maxNeeded = 1024
	// maxString caps one string read from the dynamic string table,
	// and the PT_INTERP segment: PATH_MAX, like the kernel.
	maxString = 4096
	// maxStringBytes caps the total bytes of strings taken from one
	// object's dynamic string table.
	maxStringBytes = 1 << 20
)

// Sizes of the ELF64 structures the parser reads.
const (
	ehdr64Size = 64
	phdr64Size = 56
	dyn64Size  = 16
)

// elfInfo is what the dynamic loader looks at in an ELF object: its
// identification, program interpreter and dynamic section.
type elfInfo struct {
	Class   elf.Class
	Data    elf.Data
	OSABI   elf.OSABI
	Machine elf.Machine
	Type    elf.Type
	Entry   uint64

	HasInterp bool
	Interp    string // PT_INTERP without its terminating NUL

	HasDynamic bool     // a PT_DYNAMIC segment is present
	Needed     []string // DT_NEEDED, in order
	Soname     string   // DT_SONAME
	HasRPath   bool
	RPath      string // DT_RPATH; dropped when DT_RUNPATH is present, like ld.so does
	HasRunPath bool
	RunPath    string // DT_RUNPATH
	Flags1     uint64 // DT_FLAGS_1
}

// errNotELF: the file does not start with the ELF magic number.
var errNotELF = errors.New("not an ELF file")

// archError reports an ELF file for another class, byte order, machine
// or operating system than x86_64 Linux: ld.so skips such files during
// a library search.
type archError struct {
	Class   elf.Class
	Data    elf.Data
	Machine elf.Machine
	OSABI   elf.OSABI
}

func (e *archError) Error() string {
	d := e.describe()
	return article(d) + " " + d + " ELF"
}

// describe names the architecture, e.g. "arm64 (EM_AARCH64)" or
// "32-bit x86 (ELFCLASS32, EM_386)".
func (e *archError) describe() string {
	name := archNames[e.Machine]
	machine := e.Machine.String()
	if strings.ContainsRune(machine, '+') || !strings.HasPrefix(machine, "EM_") {
		machine = fmt.Sprintf("unknown machine %d", uint16(e.Machine))
	}
	switch {
	case e.Class == elf.ELFCLASS32:
		if n32 := archNames32[e.Machine]; n32 != "" {
			name = n32
		}
		if name == "" {
			return fmt.Sprintf("32-bit (ELFCLASS32, %s)", machine)
		}
		return fmt.Sprintf("32-bit %s (ELFCLASS32, %s)", name, machine)
	case e.Machine == elf.EM_X86_64 && e.Data != elf.ELFDATA2LSB:
		return fmt.Sprintf("big-endian x86_64 (%v)", e.Data)
	case e.Machine == elf.EM_X86_64:
		return fmt.Sprintf("%v (%v)", osName(e.OSABI), e.OSABI)
	case name == "":
		return machine
	}
	return fmt.Sprintf("%s (%s)", name, machine)
}

// archNames gives Go-style names for the machines one meets in practice.
var archNames = map[elf.Machine]string{
	elf.EM_X86_64:    "x86_64",
	elf.EM_AARCH64:   "arm64",
	elf.EM_386:       "x86",
	elf.EM_ARM:       "arm",
	elf.EM_RISCV:     "riscv64",
	elf.EM_PPC64:     "ppc64",
	elf.EM_PPC:       "ppc",
	elf.EM_S390:      "s390x",
	elf.EM_MIPS:      "mips",
	elf.EM_LOONGARCH: "loong64",
	elf.EM_SPARCV9:   "sparc64",
	elf.EM_IA_64:     "ia64",
}

// archNames32 overrides archNames for ELFCLASS32 files.
var archNames32 = map[elf.Machine]string{
	elf.EM_RISCV:  "riscv32",
	elf.EM_S390:   "s390",
	elf.EM_X86_64: "x32",
}

func osName(o elf.OSABI) string {
	switch o {
	case elf.ELFOSABI_FREEBSD:
		return "FreeBSD"
	case elf.ELFOSABI_NETBSD:
		return "NetBSD"
	case elf.ELFOSABI_OPENBSD:
		return "OpenBSD"
	case elf.ELFOSABI_SOLARIS:
		return "Solaris"
	}
	return "non-Linux"
}

// corruptError reports an ELF file that cannot be parsed.
type corruptError struct{ msg string }

func (e *corruptError) Error() string { return e.msg }

func corrupt(format string, args ...any) error {
	return &corruptError{fmt.Sprintf(format, args...)}
}

// within reports whether [off, off+n) lies inside [0, size), without
// overflowing.
func within(off, n, size uint64) bool {
	return off <= size && n <= size-off
}

// parseELF reads the identification, program headers and dynamic section
// of the ELF object in r, which holds size bytes. It trusts nothing in
// the file: every offset and size is checked against size and the limits
// above before anything is read or allocated, and a panic (there should
// be none) becomes a corruptError.
//
// A file for another architecture than x86_64 gives an *archError, a
// file without the ELF magic errNotELF, a damaged one a *corruptError.
func parseELF(r io.ReaderAt, size int64) (info *elfInfo, err error) {
	defer func() {
		if p := recover(); p != nil {
			info, err = nil, corrupt("malformed ELF (%v)", p)
		}
	}()
	if size < 0 {
		return nil, corrupt("negative size")
	}
	usize := uint64(size)

	var hdr [ehdr64Size]byte
	n, rerr := r.ReadAt(hdr[:min(usize, ehdr64Size)], 0)
	if rerr != nil && rerr != io.EOF {
		return nil, rerr
	}
	id := hdr[:n]
	if len(id) < len(elf.ELFMAG) || string(id[:len(elf.ELFMAG)]) != elf.ELFMAG {
		return nil, errNotELF
	}
	if len(id) < elf.EI_NIDENT {
		return nil, corrupt("truncated ELF header (%d bytes)", len(id))
	}
	info = &elfInfo{
		Class: elf.Class(id[elf.EI_CLASS]),
		Data:  elf.Data(id[elf.EI_DATA]),
		OSABI: elf.OSABI(id[elf.EI_OSABI]),
	}
	var bo binary.ByteOrder
	switch info.Data {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return nil, corrupt("invalid ELF data encoding %v", info.Data)
	}
	if elf.Version(id[elf.EI_VERSION]) != elf.EV_CURRENT {
		return nil, corrupt("invalid ELF version %d", id[elf.EI_VERSION])
	}
	switch info.Class {
	case elf.ELFCLASS32:
		// e_machine is at the same offset in both classes.
		if len(id) < 20 {
			return nil, corrupt("truncated ELF header (%d bytes)", len(id))
		}
		return nil, &archError{Class: info.Class, Data: info.Data, Machine: elf.Machine(bo.Uint16(id[18:]))}
	case elf.ELFCLASS64:
	default:
		return nil, corrupt("invalid ELF class %v", info.Class)
	}
	if len(id) < ehdr64Size {
		return nil, corrupt("truncated ELF header (%d bytes)", len(id))
	}
	var eh elf.Header64
	if _, err := binary.Decode(id, bo, &eh); err != nil {
		return nil, corrupt("ELF header: %v", err)
	}
	info.Machine = elf.Machine(eh.Machine)
	info.Type = elf.Type(eh.Type)
	info.Entry = eh.Entry
	if info.Machine != elf.EM_X86_64 || info.Data != elf.ELFDATA2LSB ||
		(info.OSABI != elf.ELFOSABI_NONE && info.OSABI != elf.ELFOSABI_LINUX) {
		return nil, &archError{Class: info.Class, Data: info.Data, Machine: info.Machine, OSABI: info.OSABI}
	}
	if elf.Version(eh.Version) != elf.EV_CURRENT {
		return nil, corrupt("invalid ELF version %d", eh.Version)
	}
	if eh.Phnum == 0 {
		return info, nil // an object file or a core dump: the caller checks Type
	}
	if eh.Phnum == 0xffff { // PN_XNUM: the count is in section 0
		return nil, corrupt("too many program headers")
	}
	if eh.Phentsize != phdr64Size {
		return nil, corrupt("program header size %d, want %d", eh.Phentsize, phdr64Size)
	}
	phSize := uint64(eh.Phnum) * phdr64Size // at most 3.6 MB
	if !within(eh.Phoff, phSize, usize) {
		return nil, corrupt("program headers at %#x+%#x beyond the end of the file (%d bytes)", eh.Phoff, phSize, size)
	}
	ph := make([]byte, phSize)
	if err := readFull(r, ph, eh.Phoff); err != nil {
		return nil, err
	}
	progs := make([]elf.Prog64, eh.Phnum)
	if _, err := binary.Decode(ph, bo, progs); err != nil {
		return nil, corrupt("program headers: %v", err)
	}

	var dyn *elf.Prog64
	for i := range progs {
		p := &progs[i]
		switch elf.ProgType(p.Type) {
		case elf.PT_INTERP:
			if info.HasInterp {
				continue // the kernel uses the first one
			}
			if p.Filesz < 2 || p.Filesz > maxString {
				return nil, corrupt("PT_INTERP of %d bytes", p.Filesz)
			}
			if !within(p.Off, p.Filesz, usize) {
				return nil, corrupt("PT_INTERP beyond the end of the file")
			}
			b := make([]byte, p.Filesz)
			if err := readFull(r, b, p.Off); err != nil {
				return nil, err
			}
			if b[len(b)-1] != 0 {
				return nil, corrupt("PT_INTERP is not NUL-terminated")
			}
			info.HasInterp = true
			info.Interp = string(b[:bytes.IndexByte(b, 0)])
		case elf.PT_DYNAMIC:
			if dyn == nil {
				dyn = p
			}
		}
	}
	if dyn == nil {
		return info, nil
	}
	info.HasDynamic = true
	if err := parseDynamic(r, usize, bo, progs, dyn, info); err != nil {
		return nil, err
	}
	return info, nil
}

// parseDynamic reads the dynamic segment and the strings it refers to.
func parseDynamic(r io.ReaderAt, size uint64, bo binary.ByteOrder, progs []elf.Prog64, dyn *elf.Prog64, info *elfInfo) error {
	if dyn.Filesz > maxDynamicSize {
		return corrupt("PT_DYNAMIC of %d bytes (more than %d)", dyn.Filesz, maxDynamicSize)
	}
	if !within(dyn.Off, dyn.Filesz, size) {
		return corrupt("PT_DYNAMIC beyond the end of the file")
	}
	b := make([]byte, dyn.Filesz/dyn64Size*dyn64Size)
	if err := readFull(r, b, dyn.Off); err != nil {
		return err
	}
	var (
		needed                             []uint64
		strtab, strsz                      uint64
		haveStrtab, haveStrsz              bool
		soname, rpath, runpath             uint64
		haveSoname, haveRPath, haveRunPath bool
	)
entries:
	for off := 0; off+dyn64Size <= len(b); off += dyn64Size {
		tag := elf.DynTag(int64(bo.Uint64(b[off:])))
		val := bo.Uint64(b[off+8:])
		switch tag {
		case elf.DT_NULL:
			break entries
		case elf.DT_NEEDED:
			if len(needed) == maxNeeded {
				return corrupt("more than %d DT_NEEDED entries", maxNeeded)
			}
			needed = append(needed, val)
		case elf.DT_STRTAB:
			strtab, haveStrtab = val, true
		case elf.DT_STRSZ:
			strsz, haveStrsz = val, true
		case elf.DT_SONAME:
			soname, haveSoname = val, true
		case elf.DT_RPATH:
			rpath, haveRPath = val, true
		case elf.DT_RUNPATH:
			runpath, haveRunPath = val, true
		case elf.DT_FLAGS_1:
			info.Flags1 = val
		}
	}
	if len(needed) == 0 && !haveSoname && !haveRPath && !haveRunPath {
		return nil
	}
	if !haveStrtab {
		return corrupt("dynamic section without DT_STRTAB")
	}
	// DT_STRTAB is an address: find the loadable segment holding it.
	var strOff, strEnd uint64
	found := false
	for i := range progs {
		p := &progs[i]
		if elf.ProgType(p.Type) != elf.PT_LOAD || strtab < p.Vaddr || strtab-p.Vaddr >= p.Filesz {
			continue
		}
		if !within(p.Off, p.Filesz, size) {
			return corrupt("PT_LOAD beyond the end of the file")
		}
		strOff = p.Off + (strtab - p.Vaddr)
		strEnd = p.Off + p.Filesz
		found = true
		break
	}
	if !found {
		return corrupt("DT_STRTAB %#x is outside the loadable segments", strtab)
	}
	if haveStrsz && strsz < strEnd-strOff {
		strEnd = strOff + strsz
	}
	st := &strTable{r: r, off: strOff, size: strEnd - strOff}
	var err error
	for _, o := range needed {
		s, e := st.get(o)
		if e != nil {
			return corrupt("DT_NEEDED: %v", e)
		}
		if s == "" {
			return corrupt("empty DT_NEEDED name")
		}
		info.Needed = append(info.Needed, s)
	}
	if haveSoname {
		if info.Soname, err = st.get(soname); err != nil {
			return corrupt("DT_SONAME: %v", err)
		}
	}
	if haveRunPath {
		info.HasRunPath = true
		if info.RunPath, err = st.get(runpath); err != nil {
			return corrupt("DT_RUNPATH: %v", err)
		}
	} else if haveRPath {
		// ld.so ignores DT_RPATH in an object that has DT_RUNPATH.
		info.HasRPath = true
		if info.RPath, err = st.get(rpath); err != nil {
			return corrupt("DT_RPATH: %v", err)
		}
	}
	return nil
}

// strTable reads NUL-terminated strings from a string table of size
// bytes at offset off in r, at most maxStringBytes in all.
type strTable struct {
	r         io.ReaderAt
	off, size uint64
	total     int
}

func (t *strTable) get(i uint64) (string, error) {
	if i >= t.size {
		return "", fmt.Errorf("string offset %#x outside the string table (%d bytes)", i, t.size)
	}
	n := min(t.size-i, maxString)
	if t.total+int(n) > maxStringBytes {
		n = uint64(max(maxStringBytes-t.total, 0))
		if n == 0 {
			return "", fmt.Errorf("more than %d bytes of strings", maxStringBytes)
		}
	}
	b := make([]byte, n)
	if err := readFull(t.r, b, t.off+i); err != nil {
		return "", err
	}
	end := bytes.IndexByte(b, 0)
	if end < 0 {
		return "", fmt.Errorf("string at %#x is not NUL-terminated within %d bytes", i, n)
	}
	t.total += end + 1
	return string(b[:end]), nil
}

// readFull fills b from r at off; a short read means a truncated file.
func readFull(r io.ReaderAt, b []byte, off uint64) error {
	if off > 1<<62 {
		return corrupt("offset %#x out of range", off)
	}
	n, err := r.ReadAt(b, int64(off))
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("truncated ELF file (%d bytes wanted at %#x, %d read)", len(b), off, n)
	}
	return err
}
