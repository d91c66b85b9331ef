package guest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// readStandalone returns the config an exporter put in the initramfs
// (guestapi.StandaloneConfig), or nil when there is none: then a nos host
// configures the guest over the control port.
func readStandalone(path string) (*guestapi.Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cfg guestapi.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &cfg, nil
}

// noHost is the control port of a guest no host manages: reading ends at
// once (the init then runs the application without one, as when a host
// goes away), what the init reports goes nowhere.
type noHost struct{}

func (noHost) Read([]byte) (int, error)    { return 0, io.EOF }
func (noHost) Write(p []byte) (int, error) { return len(p), nil }

// Linux input events (linux/input-event-codes.h) as read from
// /dev/input/event*: struct input_event on amd64 is a struct timeval
// (16 bytes), then type, code (uint16) and value (int32).
const (
	inputEventSize = 24
	evKey          = 1
	keyPower       = 116
)

// isPowerPress reports whether ev is a press of the power key: what the
// ACPI button driver reports when the hypervisor presses the power button
// (virsh shutdown).
func isPowerPress(ev []byte) bool {
	if len(ev) != inputEventSize {
		return false
	}
	typ := binary.LittleEndian.Uint16(ev[16:])
	code := binary.LittleEndian.Uint16(ev[18:])
	value := int32(binary.LittleEndian.Uint32(ev[20:]))
	return typ == evKey && code == keyPower && value == 1
}

// watchPowerButton calls press for every power key press on the input
// devices in dir (/dev/input). Devices appear as their drivers probe, so
// it looks again for a while after boot; a kernel without ACPI's button
// driver or evdev has none, and then nothing stops the application but
// itself.
func watchPowerButton(dir string, settle time.Duration, press func()) {
	seen := map[string]bool{}
	deadline := time.Now().Add(settle)
	for {
		devs, _ := filepath.Glob(filepath.Join(dir, "event*"))
		for _, d := range devs {
			if seen[d] {
				continue
			}
			seen[d] = true
			go readPowerKey(d, press)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readPowerKey reads events from one device until it ends.
func readPowerKey(dev string, press func()) {
	f, err := os.Open(dev)
	if err != nil {
		logf("power button: %v", err)
		return
	}
	defer f.Close()
	ev := make([]byte, inputEventSize)
	for {
		if _, err := io.ReadFull(f, ev); err != nil {
			return
		}
		if isPowerPress(ev) {
			press()
		}
	}
}
