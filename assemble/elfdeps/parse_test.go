package elfdeps

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// TestParseLimits feeds parseELF objects whose sizes and offsets are out
// of bounds: each must give a corruptError, not a big allocation.
func TestParseLimits(t *testing.T) {
	le := binary.LittleEndian
	base := prog("libc.so.6") // PT_LOAD, PT_INTERP, PT_DYNAMIC
	phdr := func(i int) int { return ehdr64Size + i*phdr64Size }
	var many []string
	for i := 0; i <= maxNeeded; i++ {
		many = append(many, "lib"+strconv.Itoa(i)+".so")
	}
	cases := []struct {
		name  string
		b     []byte
		want  string
		patch func(b []byte)
	}{
		{"huge dynamic", mkELF(base), "PT_DYNAMIC of 4294967296 bytes", func(b []byte) { le.PutUint64(b[phdr(2)+32:], 1<<32) }},
		{"dynamic past the end", mkELF(base), "PT_DYNAMIC beyond the end", func(b []byte) { le.PutUint64(b[phdr(2)+8:], 1<<40) }},
		{"dynamic offset overflow", mkELF(base), "PT_DYNAMIC beyond the end", func(b []byte) { le.PutUint64(b[phdr(2)+8:], ^uint64(0)-4) }},
		{"huge interp", mkELF(base), "PT_INTERP of", func(b []byte) { le.PutUint64(b[phdr(1)+32:], 1<<40) }},
		{"interp without NUL", mkELF(base), "not NUL-terminated", func(b []byte) { le.PutUint64(b[phdr(1)+32:], uint64(len(testInterp))) }},
		{"PN_XNUM", mkELF(base), "too many program headers", func(b []byte) { le.PutUint16(b[56:], 0xffff) }},
		{"phentsize", mkELF(base), "program header size", func(b []byte) { le.PutUint16(b[54:], 32) }},
		{"phoff overflow", mkELF(base), "beyond the end of the file", func(b []byte) { le.PutUint64(b[32:], ^uint64(0)-8) }},
		{"strtab outside loads", mkELF(base), "outside the loadable segments", func(b []byte) { le.PutUint64(b[phdr(0)+16:], 1<<40) }},
		{"load past the end", mkELF(base), "PT_LOAD beyond the end", func(b []byte) { le.PutUint64(b[phdr(0)+32:], 1<<40) }},
		{"too many needed", mkELF(elfSpec{Entry: 1, Interp: testInterp, Needed: many}), "more than 1024 DT_NEEDED", nil},
		{"bad class", mkELF(base), "invalid ELF class", func(b []byte) { b[elf.EI_CLASS] = 7 }},
		{"bad data", mkELF(base), "invalid ELF data encoding", func(b []byte) { b[elf.EI_DATA] = 0 }},
		{"bad version", mkELF(base), "invalid ELF version", func(b []byte) { b[elf.EI_VERSION] = 2 }},
		{"short 32-bit", mkELF32(elf.EM_386)[:18], "truncated ELF header", nil},
	}
	for _, c := range cases {
		b := c.b
		if c.patch != nil {
			c.patch(b)
		}
		_, err := parseELF(bytes.NewReader(b), int64(len(b)))
		var ce *corruptError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want a corrupt ELF error with %q", c.name, err, c.want)
		}
	}

	// Strings: an offset past DT_STRSZ, and a string running past it.
	b := mkELF(base)
	info, err := parseELF(bytes.NewReader(b), int64(len(b)))
	if err != nil || info.Needed[0] != "libc.so.6" {
		t.Fatalf("%+v, %v", info, err)
	}
	for strsz, want := range map[uint64]string{1: "outside the string table", 5: "not NUL-terminated"} {
		b := mkELF(base)
		i := bytes.Index(b, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, uint64(elf.DT_STRSZ)), 0)[:8])
		if i < 0 {
			t.Fatal("no DT_STRSZ")
		}
		le.PutUint64(b[i+8:], strsz)
		if _, err := parseELF(bytes.NewReader(b), int64(len(b))); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DT_STRSZ %d: err = %v, want %q", strsz, err, want)
		}
	}
}

// TestArchErrors checks the architecture descriptions.
func TestArchErrors(t *testing.T) {
	for _, c := range []struct {
		e    archError
		want string
	}{
		{archError{Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB, Machine: elf.EM_AARCH64}, "an arm64 (EM_AARCH64) ELF"},
		{archError{Class: elf.ELFCLASS32, Data: elf.ELFDATA2LSB, Machine: elf.EM_386}, "a 32-bit x86 (ELFCLASS32, EM_386) ELF"},
		{archError{Class: elf.ELFCLASS32, Data: elf.ELFDATA2LSB, Machine: elf.EM_X86_64}, "a 32-bit x32 (ELFCLASS32, EM_X86_64) ELF"},
		{archError{Class: elf.ELFCLASS64, Data: elf.ELFDATA2MSB, Machine: elf.EM_S390}, "an s390x (EM_S390) ELF"},
		{archError{Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB, Machine: elf.EM_RISCV}, "a riscv64 (EM_RISCV) ELF"},
		{archError{Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB, Machine: elf.EM_X86_64, OSABI: elf.ELFOSABI_FREEBSD}, "a FreeBSD (ELFOSABI_FREEBSD) ELF"},
		{archError{Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB, Machine: elf.Machine(9999)}, "an unknown machine 9999 ELF"},
		{archError{Class: elf.ELFCLASS64, Data: elf.ELFDATA2MSB, Machine: elf.EM_SPARC}, "an EM_SPARC ELF"},
		{archError{Class: elf.ELFCLASS32, Data: elf.ELFDATA2MSB, Machine: elf.EM_SPARC}, "a 32-bit (ELFCLASS32, EM_SPARC) ELF"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
}

func TestEscapeNonPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain /path":    "plain /path",
		"a\nb":           `a\nb`,
		"nul\x00":        `nul\x00`,
		"bad\xffutf8":    `bad\xffutf8`,
		"ünïcödé":        "ünïcödé",
		"esc\x1b[31mred": `esc\x1b[31mred`,
	} {
		if got := escapeNonPrintable(in); got != want {
			t.Errorf("escapeNonPrintable(%q) = %q, want %q", in, got, want)
		}
	}
}
