package qemu

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// elfKernel is an ELF64 file whose loadable segments end at the given
// physical addresses.
func elfKernel(t testing.TB, ends ...uint64) []byte {
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(len(ends)),
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	if err := binary.Write(&b, binary.LittleEndian, h); err != nil {
		t.Fatal(err)
	}
	for _, e := range ends {
		p := elf.Prog64{Type: uint32(elf.PT_LOAD), Paddr: e - 0x1000, Vaddr: 0xffffffff80000000 + e - 0x1000, Memsz: 0x1000}
		if err := binary.Write(&b, binary.LittleEndian, p); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// bzImage is the start of an x86 boot image with the given setup header.
func bzImage(version uint16, pref uint64, initSize uint32) []byte {
	b := make([]byte, 0x300)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], version)
	binary.LittleEndian.PutUint64(b[0x258:], pref)
	binary.LittleEndian.PutUint32(b[0x260:], initSize)
	return b
}

func TestLeastMemory(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	initrd := write("initrd", make([]byte, 2_653_820)) // hello's, 2.53 MiB
	for _, c := range []struct {
		name   string
		kernel []byte
		want   int64 // MiB
	}{
		// nos's net kernel at 16 MiB: its bss ends at 0x1e16000, 30.1 MiB.
		{"elf at 16 MiB", elfKernel(t, 0x1a00000, 0x1e16000, 0x1bc6000), 33},
		{"elf at 2 MiB", elfKernel(t, 0x1016000), 19},
		{"bzImage", bzImage(0x20f, 0x1000000, 0x2000000), 51},
		{"old bzImage", bzImage(0x209, 0x1000000, 0x2000000), 3},
	} {
		got, err := Driver{}.LeastMemory(write(c.name, c.kernel), initrd)
		if err != nil || got != c.want<<20 {
			t.Errorf("%s: LeastMemory = %d MiB, %v; want %d MiB", c.name, got>>20, err, c.want)
		}
	}
	if got, err := (Driver{}).LeastMemory(write("noinitrd", elfKernel(t, 0x1016000)), ""); err != nil || got != 17<<20 {
		t.Errorf("without an initramfs: %d MiB, %v; want 17 MiB", got>>20, err)
	}
	for name, b := range map[string][]byte{
		"empty":   nil,
		"text":    []byte("#!/bin/sh\necho not a kernel\n"),
		"no load": elfKernel(t),
		"short":   elfKernel(t, 0x1016000)[:80],
	} {
		if _, err := (Driver{}).LeastMemory(write(name, b), initrd); err == nil {
			t.Errorf("%s: no error for a file that is not a kernel", name)
		}
	}
}

// FuzzImageEnd: kernel files come from images, which may come from
// anywhere; the parser must not panic or report an end it cannot back.
func FuzzImageEnd(f *testing.F) {
	f.Add(elfKernel(f, 0x1e16000))
	f.Add(bzImage(0x20f, 0x1000000, 0x2000000))
	f.Add([]byte("HdrS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end, err := imageEnd(bytes.NewReader(b))
		if err == nil && (end < 0 || end > 1<<41) {
			t.Fatalf("end %d out of range", end)
		}
	})
}
