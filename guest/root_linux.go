package guest

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nosproject/nos/guestapi"
	"golang.org/x/sys/unix"
)

// newRoot is where the application's root filesystem is mounted before it
// becomes the root.
const newRoot = "/newroot"

// movedMounts are the init's mounts that move into the new root, which
// must have these directories (nos build makes them).
var movedMounts = []string{"/dev", "/proc", "/sys", "/run", "/tmp"}

// switchRoot mounts the root device read-only and makes it the root of
// the init and so of the application, as switch_root does: the kernel's
// initramfs cannot be unmounted or pivoted away, so the new root is moved
// over it, and the initramfs's files are deleted first to give their
// memory back.
func switchRoot(r *guestapi.Root) error {
	if err := waitDevice(r.Device); err != nil {
		return err
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(r.Device, newRoot, r.FSType, unix.MS_RDONLY|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mounting the root filesystem %s (%s): %w", r.Device, r.FSType, err)
	}
	for _, m := range movedMounts {
		target := newRoot + m
		if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
			return fmt.Errorf("the image's root filesystem has no %s directory", m)
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s into the root filesystem: %w", m, err)
		}
	}
	freeInitramfs()
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(newRoot, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the root filesystem to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("entering the root filesystem: %w", err)
	}
	return unix.Chdir("/")
}

// waitDevice waits briefly for a device node: the disk may be probed
// after the init starts.
func waitDevice(dev string) error {
	for range 200 {
		if _, err := os.Stat(dev); err == nil {
			return nil
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 10_000_000}, nil)
	}
	return fmt.Errorf("the root device %s did not appear: does the kernel have virtio-blk?", dev)
}

// freeInitramfs deletes what the initramfs holds besides the new root,
// staying on the initramfs's own filesystem. The running init keeps its
// (deleted) executable.
func freeInitramfs() {
	var root unix.Stat_t
	if unix.Lstat("/", &root) != nil {
		return
	}
	des, err := os.ReadDir("/")
	if err != nil {
		return
	}
	for _, de := range des {
		p := filepath.Join("/", de.Name())
		var st unix.Stat_t
		if p == newRoot || unix.Lstat(p, &st) != nil || st.Dev != root.Dev {
			continue
		}
		_ = os.RemoveAll(p)
	}
}
