package virtiofs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// HelperVerb is the hidden first argument with which a program that
// serves read-only shares runs the helper: its main must call
// RunHelper when it sees it (see cmd/nos and cmd/nos-monitor: Start
// runs the helper as a copy of the calling program), before anything else.
const HelperVerb = "__virtiofs-ro"

// RunHelper is the read-only share's helper: started in a mount namespace
// of its own (whose mounts Go has made private), it makes SOURCE a
// read-only, nosuid, nodev bind mount of itself, recursively, then
// becomes virtiofsd. args are SOURCE, the daemon's path and its
// arguments. It returns only on failure; the caller reports the error
// and exits.
func RunHelper(args []string) error {
	return helper(args)
}

func helper(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: %s SOURCE VIRTIOFSD [ARGS...]", HelperVerb)
	}
	src, bin := args[0], args[1]
	if err := unix.Mount(src, src, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting %s: %w", src, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(unix.AT_FDCWD, src, unix.AT_RECURSIVE, attr); err != nil {
		// Kernels before 5.12: the top mount only.
		if err := unix.Mount("", src, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("making %s read-only: %w", src, err)
		}
	}
	return unix.Exec(bin, append([]string{bin}, args[2:]...), os.Environ())
}
