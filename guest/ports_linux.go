package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// openPort waits for the virtio serial port with the given name to appear
// (its driver may still be probing) and opens it.
func openPort(ctx context.Context, name string, flag int) (*os.File, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if dev, ok := findPort(name); ok {
			f, err := os.OpenFile(dev, flag, 0)
			if err == nil {
				return f, nil
			}
			if !os.IsNotExist(err) {
				return nil, fmt.Errorf("opening port %s: %w", name, err)
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("virtio port %s did not appear: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}

// findPort maps a port name to its /dev node through sysfs; there is no
// udev to make /dev/virtio-ports/ links.
func findPort(name string) (string, bool) {
	matches, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(m)), true
		}
	}
	return "", false
}

// hidePorts removes the device nodes of every virtio serial port once the
// init holds what it needs: the application, even as root, must not open
// the host's channels (it could forge exit reports and probe results).
// The virtio console driver already refuses a second open of a port
// (EBUSY) while the init holds it; without the node there is nothing to
// open even if the init's descriptor went away. Root without
// capabilities may still unlink and chmod in /dev, which it owns, but
// cannot make a node again (CAP_MKNOD is dropped), and devtmpfs is one
// file system however often it is mounted. The init keeps its open
// descriptors.
func hidePorts() error {
	matches, _ := filepath.Glob("/sys/class/virtio-ports/*")
	var errs []error
	for _, m := range matches {
		if err := os.Remove("/dev/" + filepath.Base(m)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
