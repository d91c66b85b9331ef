package build

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
		return fmt.Errorf("%s: %v: %w", name, err, ErrNotELF)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s is a %s %s binary; nos images run x86-64 (amd64) Linux programs: rebuild it with GOARCH=amd64: %w", name, ef.Class, ef.Machine, ErrWrongArch)
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
