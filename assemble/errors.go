package assemble

import "errors"

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
