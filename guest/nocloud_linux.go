package guest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nosproject/nos/guestapi"
	"golang.org/x/sys/unix"
)

// noCloud is what a NoCloud disk holds for this guest.
type noCloud struct {
	Device   string
	Meta     noCloudMeta
	UserData []byte // nil when the disk has no user-data file
}

// findCidata returns the block device (as /dev/name) whose filesystem is
// labelled cidata, and the type to mount it with, or "" when none is:
// it reads the superblock of every device in sysBlock
// (/sys/class/block), disks and partitions alike.
func findCidata(sysBlock, devDir string) (dev, fsType string) {
	des, _ := os.ReadDir(sysBlock)
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") {
			continue
		}
		p := filepath.Join(devDir, name)
		f, err := os.Open(p)
		if err != nil {
			continue // no media (an empty CD drive), or not a node here
		}
		label, typ := fsLabel(f)
		f.Close()
		if isCidata(label) {
			return p, typ
		}
	}
	return "", ""
}

// readNoCloud mounts the cidata disk read-only in a temporary directory,
// reads user-data and meta-data, and unmounts it. It returns nil when no
// disk is labelled cidata.
func readNoCloud() (*noCloud, error) {
	dev, fsType := findCidata("/sys/class/block", "/dev")
	if dev == "" {
		return nil, nil
	}
	dir, err := os.MkdirTemp("/run", "nos-cidata-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	if err := unix.Mount(dev, dir, fsType, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return nil, fmt.Errorf("mounting the NoCloud disk %s (%s): %w", dev, fsType, err)
	}
	defer unix.Unmount(dir, 0)
	nc := &noCloud{Device: dev}
	if nc.UserData, err = readBounded(filepath.Join(dir, "user-data"), guestapi.MaxUserData); err != nil {
		return nil, err
	}
	meta, err := readBounded(filepath.Join(dir, "meta-data"), maxMetaData)
	if err != nil {
		return nil, err
	}
	nc.Meta = parseMetaData(meta)
	return nc, nil
}

// readBounded reads a file of at most limit bytes; a missing file is nil.
func readBounded(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Base(path), err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes", filepath.Base(path), limit)
	}
	return b, nil
}
