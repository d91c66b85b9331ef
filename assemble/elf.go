package assemble

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
)

// Errors for applications nos cannot package (yet).
var (
	ErrNotELF      = errors.New("not an ELF executable")
	ErrWrongArch   = errors.New("wrong architecture")
	ErrDynamicELF  = errors.New("dynamically linked")
	ErrNotMain     = errors.New("not a main package")
	ErrNeedsCgo    = errors.New("needs cgo")
	ErrBadSource   = errors.New("cannot build source")
	ErrInitMissing = errors.New("nos-init not found")
)

// checkStaticELF accepts only a statically linked x86-64 Linux executable.
// debug/elf is not hardened against hostile input, so panics become errors.
func checkStaticELF(path string) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return checkStaticELFReader(path, f)
}

func checkStaticELFReader(name string, r io.ReaderAt) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: malformed ELF file (%v): %w", name, p, ErrNotELF)
		}
	}()
	ef, err := elf.NewFile(r)
	if err != nil {
		return fmt.Errorf("%s is not an ELF program (give a Go package, a program, --rootfs or --from-oci): %w", name, ErrNotELF)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s is built for %s (%s); nos images run x86-64 (amd64) Linux programs: build it for amd64 (GOARCH=amd64 for Go): %w", name, archName(ef.Machine), classBits(ef.Class), ErrWrongArch)
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return fmt.Errorf("%s is an ELF %s, not an executable: %w", name, ef.Type, ErrNotELF)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: %w", name, ErrDynamicELF)
		}
	}
	// ET_DYN without an interpreter is a static-pie executable, which the
	// kernel runs as it is; a shared library has no entry point.
	if ef.Type == elf.ET_DYN && ef.Entry == 0 {
		return fmt.Errorf("%s is a shared library, not a program: %w", name, ErrNotELF)
	}
	return nil
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
