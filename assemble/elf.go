package assemble

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
)

// elfKind is what kind of x86-64 Linux program an ELF file is.
type elfKind int

const (
	staticELF  elfKind = iota + 1 // no interpreter: runs as it is
	dynamicELF                    // has an interpreter (PT_INTERP) and libraries
)

// readELFKind parses the ELF headers of the file at path, once, and tells
// a static from a dynamically linked x86-64 Linux executable; anything
// else is an error wrapping ErrNotELF or ErrWrongArch. (fsutil.IsELF is
// the cheap test of the magic bytes, for files that are known to be some
// kind of kernel image; this is the one parser of ELF headers here.)
func readELFKind(path string) (elfKind, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return readELFKindFrom(path, f)
}

// readELFKindFrom is readELFKind on r, named name in messages. debug/elf
// is not hardened against hostile input, so panics become errors.
func readELFKindFrom(name string, r io.ReaderAt) (kind elfKind, err error) {
	defer func() {
		if p := recover(); p != nil {
			kind, err = 0, fmt.Errorf("%s: malformed ELF file (%v): %w", name, p, ErrNotELF)
		}
	}()
	ef, err := elf.NewFile(r)
	if err != nil {
		return 0, fmt.Errorf("%s is not an ELF program (give a Go package, a program, --rootfs or --from-oci): %w", name, ErrNotELF)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return 0, fmt.Errorf("%s is built for %s (%s); nos images run x86-64 (amd64) Linux programs: build it for amd64 (GOARCH=amd64 for Go): %w", name, archName(ef.Machine), classBits(ef.Class), ErrWrongArch)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return 0, fmt.Errorf("%s is an ELF %s, not an executable: %w", name, ef.Type, ErrNotELF)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return dynamicELF, nil
		}
	}
	// ET_DYN without an interpreter is a static-pie executable, which the
	// kernel runs as it is; a shared library has no entry point.
	if ef.Type == elf.ET_DYN && ef.Entry == 0 {
		return 0, fmt.Errorf("%s is a shared library, not a program: %w", name, ErrNotELF)
	}
	return staticELF, nil
}

// checkStaticELF accepts only a statically linked x86-64 Linux executable.
func checkStaticELF(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return checkStaticELFReader(path, f)
}

func checkStaticELFReader(name string, r io.ReaderAt) error {
	kind, err := readELFKindFrom(name, r)
	if err == nil && kind == dynamicELF {
		err = fmt.Errorf("%s is %w", name, ErrDynamicELF)
	}
	return err
}

// archName names an ELF machine as people do.
func archName(m elf.Machine) string {
	switch m {
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_386:
		return "i386"
	case elf.EM_X86_64:
		return "x86-64"
	case elf.EM_RISCV:
		return "riscv"
	}
	return m.String()
}

func classBits(c elf.Class) string {
	if c == elf.ELFCLASS32 {
		return "32-bit"
	}
	return "64-bit"
}
