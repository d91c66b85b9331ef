package kernel

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// testSection is a section of an ELF file built by makeELF.
type testSection struct {
	name string
	typ  elf.SectionType
	data []byte
}

// makeELF builds a minimal little-endian ELF64 relocatable file holding
// the given sections and a .shstrtab.
func makeELF(secs ...testSection) []byte {
	const ehsize, shentsize = 64, 64
	shstrtab := []byte{0}
	nameOff := make([]uint32, len(secs)+1)
	for i, s := range append(secs, testSection{name: ".shstrtab"}) {
		nameOff[i] = uint32(len(shstrtab))
		shstrtab = append(shstrtab, s.name...)
		shstrtab = append(shstrtab, 0)
	}
	var body bytes.Buffer
	headers := []elf.Section64{{}} // the null section
	add := func(name uint32, typ elf.SectionType, data []byte) {
		headers = append(headers, elf.Section64{
			Name: name, Type: uint32(typ), Off: uint64(ehsize + body.Len()),
			Size: uint64(len(data)), Addralign: 1,
		})
		body.Write(data)
	}
	for i, s := range secs {
		add(nameOff[i], s.typ, s.data)
	}
	add(nameOff[len(secs)], elf.SHT_STRTAB, shstrtab)
	for body.Len()%8 != 0 {
		body.WriteByte(0)
	}
	hdr := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_X86_64),
		Version: uint32(elf.EV_CURRENT), Shoff: uint64(ehsize + body.Len()),
		Ehsize: ehsize, Shentsize: shentsize,
		Shnum: uint16(len(headers)), Shstrndx: uint16(len(headers) - 1),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var out bytes.Buffer
	_ = binary.Write(&out, binary.LittleEndian, hdr)
	out.Write(body.Bytes())
	_ = binary.Write(&out, binary.LittleEndian, headers)
	return out.Bytes()
}

// makeModule builds a fake kernel module whose .modinfo holds fields,
// each "key=value".
func makeModule(fields ...string) []byte {
	var info []byte
	for _, f := range fields {
		info = append(info, f...)
		info = append(info, 0)
	}
	return makeELF(
		testSection{name: ".text", typ: elf.SHT_PROGBITS, data: []byte{0xc3}},
		testSection{name: ".modinfo", typ: elf.SHT_PROGBITS, data: info},
	)
}

// compress encodes data as the extension of name asks: .xz, .zst, .gz,
// or not at all.
func compress(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch {
	case strings.HasSuffix(name, ".xz"):
		// Like the kernel's own: xz --check=crc32.
		w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, data)
	case strings.HasSuffix(name, ".zst"):
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, data)
	case strings.HasSuffix(name, ".gz"):
		mustWrite(t, gzip.NewWriter(&buf), data)
	default:
		return data
	}
	return buf.Bytes()
}

type writeCloser interface {
	Write([]byte) (int, error)
	Close() error
}

func mustWrite(t *testing.T, w writeCloser, data []byte) {
	t.Helper()
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeFile writes data to dir/rel, creating directories.
func writeFile(t *testing.T, dir, rel string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeBzImage returns bytes with the bzImage setup header magic and,
// when version is not "", a kernel_version string.
func fakeBzImage(version string) []byte {
	img := make([]byte, 0x400)
	copy(img[setupHeaderMagicOff:], "HdrS")
	if version != "" {
		binary.LittleEndian.PutUint16(img[kernelVersionOff:], 0x100)
		copy(img[0x300:], version+" (builder@example) #1 SMP\x00")
	}
	return img
}
