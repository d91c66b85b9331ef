package guest

import (
	"context"
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
