package guest

import (
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/nosproject/nos/guestapi"
	"golang.org/x/sys/unix"
)

// mount is one filesystem the init sets up, as data.
type mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	Mode                   os.FileMode // of Target when it must be created
}

const nodevExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

var mounts = []mount{
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: nodevExec, Mode: 0o555},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nodevExec, Mode: 0o555},
	{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755", Mode: 0o755},
	{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "mode=0620,ptmxmode=0666", Mode: 0o755},
	{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777", Mode: 0o1777},
	{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777", Mode: 0o1777},
	{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755", Mode: 0o755},
}

// mountAll mounts the table; a filesystem that is already mounted (the
// kernel may mount devtmpfs itself) is not an error.
func mountAll() error {
	for _, m := range mounts {
		if err := os.MkdirAll(m.Target, m.Mode); err != nil {
			return fmt.Errorf("creating %s: %w", m.Target, err)
		}
		err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mounting %s on %s: %w", m.FSType, m.Target, err)
		}
	}
	for _, l := range [][2]string{{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}} {
		_ = os.Symlink(l[0], l[1]) // exists already on a re-mounted devtmpfs
	}
	return nil
}

// tmpfsMounts are the extra tmpfs mounts (--tmpfs) as mounts of the table's
// kind, checked again here: the mount points must be absolute and clean.
func tmpfsMounts(ts []guestapi.Tmpfs) ([]mount, error) {
	var ms []mount
	for _, t := range ts {
		if err := t.CheckPath(); err != nil {
			return nil, err
		}
		mode := t.Mode
		if mode == 0 {
			mode = 0o1777
		}
		ms = append(ms, mount{Source: "tmpfs", Target: t.Path, FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV,
			Data: tmpfsData(mode, t.Size, 0), Mode: 0o755})
	}
	return ms, nil
}

// mountTmpfs makes the extra tmpfs mounts in the application's root, once
// it is in place, creating missing mount points (which a read-only root
// cannot have).
func mountTmpfs(ts []guestapi.Tmpfs) error {
	ms, err := tmpfsMounts(ts)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := os.MkdirAll(m.Target, m.Mode); err != nil {
			return fmt.Errorf("--tmpfs %s: creating the mount point: %w", m.Target, err)
		}
		if err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
			return fmt.Errorf("--tmpfs %s: mounting a tmpfs (%s): %w", m.Target, m.Data, err)
		}
	}
	return nil
}

// filesDir holds the copies placeFiles bind-mounts, on the /run tmpfs.
const filesDir = "/run/nos/files"

// placeFiles puts each file at its path in the application's root as a
// bind mount of a copy in filesDir, as a container engine's bind mount of
// a host file would be: writes go to the copy, the root's own file is
// left as it was. A missing mount point is created empty (on a writable
// root; on a read-only one the file is skipped, with a log line).
func placeFiles(fs []guestapi.File) error {
	if len(fs) > guestapi.MaxFiles {
		return fmt.Errorf("%d files to place, over %d", len(fs), guestapi.MaxFiles)
	}
	if len(fs) == 0 {
		return nil
	}
	if err := os.MkdirAll(filesDir, 0o755); err != nil {
		return err
	}
	for i, f := range fs {
		if err := f.Check(); err != nil {
			return err
		}
		mode := os.FileMode(f.Mode & 0o777)
		if f.Mode == 0 {
			mode = 0o644
		}
		src := fmt.Sprintf("%s/%d", filesDir, i)
		if err := os.WriteFile(src, f.Data, mode); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		if err := os.Chmod(src, mode); err != nil { // past the umask
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
		if err := mountPoint(f.Path); err != nil {
			logf("file %s: no mount point (%v): not placed", f.Path, err)
			continue
		}
		if err := unix.Mount(src, f.Path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("file %s: bind-mounting its copy: %w", f.Path, err)
		}
	}
	return nil
}

// mountPoint makes sure p exists as a file to mount over.
func mountPoint(p string) error {
	if fi, err := os.Stat(p); err == nil {
		if fi.IsDir() {
			return errors.New("it is a directory")
		}
		return nil
	}
	if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}
