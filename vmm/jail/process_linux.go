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
// process cannot raise them again). Another user's process needs
// CAP_SYS_RESOURCE, which a container often lacks: see Inherited.
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

// ApplySelf sets the limits on the calling process, which children then
// inherit. Lowering one's own limits needs no privilege.
func (r Rlimits) ApplySelf() error { return r.Apply(0) }

// Inherited reports whether the calling process's own hard limits are
// already within r, so that every child it starts is too.
func (r Rlimits) Inherited() bool {
	for _, l := range []struct {
		res   int
		value uint64
	}{{unix.RLIMIT_NOFILE, r.OpenFiles}, {unix.RLIMIT_FSIZE, r.FileSize}} {
		if l.value == 0 {
			continue
		}
		var cur unix.Rlimit
		if unix.Getrlimit(l.res, &cur) != nil || cur.Max > l.value {
			return false
		}
	}
	return true
}

// CloseInherited marks every descriptor of this process from 3 up
// close-on-exec, so a child started next inherits only what it is given
// explicitly (Go opens its own files close-on-exec; a descriptor this
// process inherited from its parent is not).
func CloseInherited() error {
	return unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
}
