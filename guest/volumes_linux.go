package guest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/guestapi"
)

// mounted are the volumes mounted for the application, unmounted in
// reverse order before power-off so that the host knows them clean.
var mounted []string

// copyUpDir is where a new volume is mounted while the image's files are
// copied into it.
const copyUpDir = "/run/nos-copyup"

// mountVolumes mounts the application's volumes. Runs after the root is in
// place, before capabilities are dropped.
func mountVolumes(ms []guestapi.Mount, user *guestapi.User) error {
	for _, m := range ms {
		if !path.IsAbs(m.Target) || path.Clean(m.Target) != m.Target || m.Target == "/" {
			return fmt.Errorf("volume mount point %q: want a clean absolute path other than /", m.Target)
		}
		if m.FSType == "virtiofs" {
			if err := mountShare(m); err != nil {
				return err
			}
			continue
		}
		dev, err := deviceBySerial(m.Serial)
		if err != nil {
			return err
		}
		if m.CopyUp {
			if err := copyUp(dev, m, user); err != nil {
				return fmt.Errorf("copying the image's %s into its new volume: %w", m.Target, err)
			}
		}
		if err := os.MkdirAll(m.Target, 0o755); err != nil {
			return fmt.Errorf("volume mount point %s: %w (the image has no such directory, and its root is read-only)", m.Target, err)
		}
		flags := uintptr(unix.MS_NODEV)
		if m.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount(dev, m.Target, m.FSType, flags, ""); err != nil {
			if errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("mounting the volume at %s: the kernel has no %s file system: build the image with `nos build --features net,blk`", m.Target, m.FSType)
			}
			return fmt.Errorf("mounting the volume at %s (%s on %s): %w", m.Target, m.FSType, dev, err)
		}
		mounted = append(mounted, m.Target)
	}
	return nil
}

// mountShare mounts a host directory the host shares over virtiofs.
func mountShare(m guestapi.Mount) error {
	if m.Tag == "" {
		return fmt.Errorf("host directory for %s: no virtiofs tag", m.Target)
	}
	if err := os.MkdirAll(m.Target, 0o755); err != nil {
		return fmt.Errorf("host directory mount point %s: %w (the image has no such directory, and its root is read-only)", m.Target, err)
	}
	flags := uintptr(unix.MS_NODEV)
	if m.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(m.Tag, m.Target, "virtiofs", flags, ""); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("mounting the host directory at %s: the kernel has no virtiofs: build the image again with `nos build --features net,blk` (blk kernels have virtiofs since issue 10)", m.Target)
		}
		return fmt.Errorf("mounting the host directory at %s (virtiofs tag %s): %w", m.Target, m.Tag, err)
	}
	mounted = append(mounted, m.Target)
	return nil
}

// unmountVolumes unmounts the volumes, newest first; one that stays busy
// is remounted read-only, which flushes it as well.
func unmountVolumes() {
	for i := len(mounted) - 1; i >= 0; i-- {
		t := mounted[i]
		if err := unix.Unmount(t, 0); err != nil {
			logf("unmounting %s: %v; remounting it read-only", t, err)
			if err := unix.Mount("", t, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				logf("remounting %s read-only: %v", t, err)
			}
		}
	}
	mounted = nil
}

// deviceBySerial finds the virtio disk whose serial the host gave it,
// waiting briefly for it to be probed.
func deviceBySerial(serial string) (string, error) {
	for range 200 {
		des, _ := os.ReadDir("/sys/block")
		for _, de := range des {
			b, err := os.ReadFile(filepath.Join("/sys/block", de.Name(), "serial"))
			if err == nil && strings.TrimSpace(string(b)) == serial {
				return "/dev/" + de.Name(), nil
			}
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 10_000_000}, nil)
	}
	return "", fmt.Errorf("no disk with serial %q appeared: does the kernel have virtio-blk? (nos build --features net,blk)", serial)
}

// copyUp fills a new, empty volume with what the image holds at m.Target
// and gives its root the owner and mode of that directory, or the
// application's user when the image has none there.
func copyUp(dev string, m guestapi.Mount, user *guestapi.User) error {
	if err := os.MkdirAll(copyUpDir, 0o700); err != nil {
		return err
	}
	if err := unix.Mount(dev, copyUpDir, m.FSType, unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mounting the new volume: %w", err)
	}
	defer unix.Unmount(copyUpDir, 0)
	var st unix.Stat_t
	err := unix.Lstat(m.Target, &st)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		if err := copyTree(m.Target, copyUpDir); err != nil {
			return err
		}
		if err := os.Lchown(copyUpDir, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		return os.Chmod(copyUpDir, fs.FileMode(st.Mode&0o7777))
	case err == nil:
		return fmt.Errorf("%s is not a directory in the image", m.Target)
	case user != nil:
		return os.Lchown(copyUpDir, int(user.UID), int(user.GID))
	}
	return nil
}

// copyTree copies the tree under src into dst (which exists): directories,
// regular files and symbolic links with their owners and modes; devices,
// sockets and pipes are skipped. The volume's lost+found stays.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*unix.Stat_t)
		switch {
		case fi.IsDir():
			if err := os.Mkdir(to, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyFile(p, to); err != nil {
				return err
			}
		default:
			return nil
		}
		if st != nil {
			if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return os.Chmod(to, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
