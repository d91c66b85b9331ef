package volume

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// NoSpaceError is a volume the file system of the volumes had no room for.
type NoSpaceError struct {
	Name string
	Dir  string // the volumes' directory
	Free int64  // bytes free for the caller, -1 if unknown
	// Copies: the volume was to be filled (--from), which needs room too.
	Copies bool
	Err    error
}

// metadataBound is about the most a new volume takes on the host before
// the guest writes to it: mke2fs's metadata of a sparse file, measured at
// 0.4 MB (64 MiB), 0.7 MB (1 GiB), 4.3 MB (10 GiB) and 5.3 MB (100 GiB).
const metadataBound = 6 << 20

func (e *NoSpaceError) Error() string {
	s := fmt.Sprintf("volume %s: no space left on the file system of the volumes %s", e.Name, e.Dir)
	if e.Free >= 0 {
		s += fmt.Sprintf(": %.1f MiB free", float64(e.Free)/(1<<20))
	}
	s += fmt.Sprintf(", a new volume's file system needs up to %d MiB there", metadataBound>>20)
	if e.Copies {
		s += " plus what --from copies"
	}
	return s + " (free some: nos volume rm, nos system prune; or set NOS_HOME to a larger file system)"
}

func (e *NoSpaceError) Unwrap() error { return e.Err }

// noSpace turns a failure for want of room (an error, or mke2fs's
// output saying so) into a NoSpaceError; others pass unchanged.
func (s *Store) noSpace(name string, copies bool, err error, out string) error {
	full := errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(out, "No space left on device") || strings.Contains(out, "Disk quota exceeded")
	if !full {
		return err
	}
	e := &NoSpaceError{Name: name, Dir: s.Dir, Free: -1, Copies: copies, Err: err}
	var st syscall.Statfs_t
	if syscall.Statfs(s.Dir, &st) == nil {
		e.Free = int64(st.Bavail) * int64(st.Bsize)
	}
	return e
}
