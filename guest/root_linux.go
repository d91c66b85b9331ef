package guest

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nosproject/nos/guestapi"
	"golang.org/x/sys/unix"
)

// newRoot is where the application's root filesystem is mounted before it
// becomes the root.
const newRoot = "/newroot"

// movedMounts are the init's mounts that move into the new root, which
// must have these directories (nos build makes them).
var movedMounts = []string{"/dev", "/proc", "/sys", "/run", "/tmp"}

// Where a writable root's layers are mounted: on the initramfs, beside
// the new root, so that once the new root is moved over / they are out of
// the application's sight, kept alive by the overlay that uses them.
const (
	lowerDir   = "/lower"   // the read-only root filesystem
	overlayDir = "/overlay" // the tmpfs holding the upper layer and overlayfs's work directory
)

// rootMounts is how the new root is made, in order: the root device
// read-only at newRoot, or, for a writable root, the device at lowerDir, a
// size-capped tmpfs at overlayDir and an overlay of the two at newRoot.
// The upper and work directories are made in the tmpfs between the last
// two mounts.
func rootMounts(r *guestapi.Root) []mount {
	if r.Tag != "" {
		m := mount{Source: r.Tag, Target: newRoot, FSType: "virtiofs", Flags: unix.MS_NODEV, Mode: 0o755}
		if !r.Writable {
			m.Flags |= unix.MS_RDONLY
		}
		return []mount{m}
	}
	ro := mount{Source: r.Device, Target: newRoot, FSType: r.FSType, Flags: unix.MS_RDONLY | unix.MS_NODEV, Mode: 0o755}
	if !r.Writable {
		return []mount{ro}
	}
	lower := ro
	lower.Target = lowerDir
	return []mount{
		lower,
		{Source: "tmpfs", Target: overlayDir, FSType: "tmpfs", Flags: unix.MS_NODEV, Data: tmpfsData(0o755, r.TmpfsSize, guestapi.DefaultRootTmpfsPercent), Mode: 0o755},
		{Source: "overlay", Target: newRoot, FSType: "overlay", Flags: unix.MS_NODEV, Mode: 0o755,
			Data: "lowerdir=" + lowerDir + ",upperdir=" + overlayDir + "/upper,workdir=" + overlayDir + "/work"},
	}
}

// tmpfsData is a tmpfs's mount options: its root's mode and its size in
// bytes, or else percent of the memory (0: the kernel's default, half).
func tmpfsData(mode uint32, size int64, percent int) string {
	s := fmt.Sprintf("mode=%04o", mode)
	switch {
	case size > 0:
		s += fmt.Sprintf(",size=%d", size)
	case percent > 0:
		s += fmt.Sprintf(",size=%d%%", percent)
	}
	return s
}

// switchRoot mounts the root device (read-only, or under a writable
// overlay) and makes it the root of the init and so of the application, as
// switch_root does: the kernel's initramfs cannot be unmounted or pivoted
// away, so the new root is moved over it, and the initramfs's files are
// deleted first to give their memory back.
func switchRoot(r *guestapi.Root) error {
	if r.Tag == "" {
		if err := waitDevice(r.Device); err != nil {
			return err
		}
	}
	for _, m := range rootMounts(r) {
		if err := os.MkdirAll(m.Target, m.Mode); err != nil {
			return fmt.Errorf("creating %s: %w", m.Target, err)
		}
		err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data)
		switch {
		case err != nil && m.FSType == "overlay" && errors.Is(err, unix.ENODEV):
			return errors.New("the kernel has no overlayfs, which a writable root needs: build the image again on a kernel built by this nos (`nos kernel build --features net,blk`), or run it with --read-only")
		case err != nil && m.Target == overlayDir:
			return fmt.Errorf("mounting the writable root's tmpfs (%s): %w", m.Data, err)
		case err != nil && m.FSType == "virtiofs" && errors.Is(err, unix.ENODEV):
			return errors.New("the kernel has no virtiofs, which a shared root needs: use a kernel built by this nos with `nos kernel build --features net,blk`")
		case err != nil && m.FSType == "virtiofs":
			return fmt.Errorf("mounting the shared root (virtiofs tag %s): %w", r.Tag, err)
		case err != nil && m.FSType == "overlay":
			return fmt.Errorf("mounting the writable root's overlay (%s): %w", m.Data, err)
		case err != nil:
			return fmt.Errorf("mounting the root filesystem %s (%s): %w", r.Device, r.FSType, err)
		}
		if m.Target == overlayDir {
			if err := prepareUpper(); err != nil {
				return err
			}
		}
	}
	for _, m := range movedMounts {
		target := newRoot + m
		if r.Tag != "" && r.Writable {
			// A container's rootfs need not have the mount points (runc
			// makes them too); a read-only one must.
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("making %s in the shared root: %w", m, err)
			}
		}
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

// prepareUpper makes the upper and work directories in the writable
// root's tmpfs, and checks that the tmpfs takes the trusted.* xattrs
// overlayfs marks opaque directories with: without them the overlay mounts,
// but removing a directory of the image fails later with EIO, far from
// the cause.
func prepareUpper() error {
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(overlayDir+"/"+d, 0o755); err != nil {
			return fmt.Errorf("making the writable root's %s directory: %w", d, err)
		}
	}
	const probe = "trusted.nos"
	err := unix.Setxattr(overlayDir+"/work", probe, []byte("1"), 0)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return errors.New("the kernel's tmpfs has no xattrs (CONFIG_TMPFS_XATTR), which a writable root needs: build the image again on a kernel built by this nos (`nos kernel build --features net,blk`), or run it with --read-only")
	}
	if err != nil {
		return fmt.Errorf("setting an xattr on the writable root's tmpfs: %w", err)
	}
	return unix.Removexattr(overlayDir+"/work", probe)
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
// staying on the initramfs's own filesystem: a writable root's lowerDir
// and overlayDir are mount points, on other filesystems, and are kept. The
// running init keeps its (deleted) executable.
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

// partLabelWait bounds the wait for a root partition named by label:
// NVMe and SCSI disks may probe seconds after the init starts.
const partLabelWait = 30 * time.Second

// deviceByPartLabel waits for the partition whose GPT name is label and
// returns its device node.
func deviceByPartLabel(label string) (string, error) {
	deadline := time.Now().Add(partLabelWait)
	for {
		if name, ok := partitionByLabel("/sys/class/block", label); ok {
			return "/dev/" + name, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no partition named %q appeared within %v: does the kernel have the disk's driver (virtio-blk, virtio-scsi, NVMe) and GPT partitions?", label, partLabelWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// partitionByLabel finds, among the block devices in sysBlock
// (/sys/class/block), the one whose uevent says PARTNAME=label, and
// returns its DEVNAME (else its directory's name).
func partitionByLabel(sysBlock, label string) (string, bool) {
	des, _ := os.ReadDir(sysBlock)
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(sysBlock, de.Name(), "uevent"))
		if err != nil {
			continue
		}
		var devname, partname string
		named := false // a disk, or a partition of an MBR table, has no PARTNAME
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "DEVNAME="); ok {
				devname = v
			}
			if v, ok := strings.CutPrefix(line, "PARTNAME="); ok {
				partname, named = v, true
			}
		}
		if named && partname == label {
			return cmp.Or(devname, de.Name()), true
		}
	}
	return "", false
}
