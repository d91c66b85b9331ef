package guest

import (
	"fmt"
	"slices"
	"syscall"

	"github.com/nosproject/nos/guestapi"
)

// setRlimits sets the application's resource limits on the init itself,
// just before it starts the application, which inherits them (and so do
// exec sessions). The init's own needs are small: a few descriptors, a
// handful of processes.
func setRlimits(ls []guestapi.Rlimit) error {
	for _, l := range ls {
		res := slices.Index(guestapi.RlimitNames, l.Type) // the kernel's numbering is the list's order
		if res < 0 {
			return fmt.Errorf("rlimit %q: unknown", l.Type)
		}
		if l.Soft > l.Hard {
			return fmt.Errorf("rlimit %s: soft %d above hard %d", l.Type, l.Soft, l.Hard)
		}
		// syscall.Setrlimit, not unix.Setrlimit: for RLIMIT_NOFILE it also
		// stops the runtime from giving children the limit it found at start.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			return fmt.Errorf("rlimit %s %d:%d: %w", l.Type, l.Soft, l.Hard, err)
		}
	}
	return nil
}
