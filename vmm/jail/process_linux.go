package jail

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Rlimits are limits set on a running process; zero leaves one as it is.
type Rlimits struct {
	OpenFiles uint64 // RLIMIT_NOFILE
	FileSize  uint64 // RLIMIT_FSIZE, bytes
}

// Apply sets the limits on process pid (soft and hard alike, so the
// process cannot raise them again).
func (r Rlimits) Apply(pid int) error {
	for _, l := range []struct {
		res   int
		name  string
		value uint64
	}{{unix.RLIMIT_NOFILE, "open files", r.OpenFiles}, {unix.RLIMIT_FSIZE, "file size", r.FileSize}} {
		if l.value == 0 {
			continue
		}
		lim := unix.Rlimit{Cur: l.value, Max: l.value}
		if err := unix.Prlimit(pid, l.res, &lim, nil); err != nil {
			return fmt.Errorf("rlimit %s: %w", l.name, err)
		}
	}
	return nil
}

// CloseInherited marks every descriptor of this process from 3 up
// close-on-exec, so a child started next inherits only what it is given
// explicitly (Go opens its own files close-on-exec; a descriptor this
// process inherited from its parent is not).
func CloseInherited() error {
	return unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
}
