package guest

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nosproject/nos/guestapi"
)

func TestReadStandalone(t *testing.T) {
	dir := t.TempDir()
	if cfg, err := readStandalone(filepath.Join(dir, "missing.json")); cfg != nil || err != nil {
		t.Fatalf("no file: got %v, %v; want nil, nil (a managed guest)", cfg, err)
	}
	p := filepath.Join(dir, "standalone.json")
	os.WriteFile(p, []byte(`{"argv":["/app/web"],"env":["A=1"],"hostname":"web","network":{"interface":"eth0","address":"10.0.2.15/24","gateway":"10.0.2.2","dns":["10.0.2.3"]}}`), 0o644)
	cfg, err := readStandalone(p)
	if err != nil {
		t.Fatal(err)
	}
	want := &guestapi.Config{Argv: []string{"/app/web"}, Env: []string{"A=1"}, Hostname: "web",
		Network: &guestapi.Network{Interface: "eth0", Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}}}
	if d := cmp.Diff(want, cfg); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}
	os.WriteFile(p, []byte(`{"argv":`), 0o644)
	if _, err := readStandalone(p); err == nil {
		t.Error("a truncated config was accepted")
	}
}

// A guest without a host reads EOF on its control port: the reader closes
// msgs, as when a host goes away, and what the init sends is dropped.
func TestNoHost(t *testing.T) {
	c := newControl(noHost{}, nil)
	c.send(guestapi.Message{Type: guestapi.TypeReady})
	select {
	case _, ok := <-c.msgs:
		if ok {
			t.Fatal("a message from nowhere")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("msgs not closed")
	}
}

func inputEvent(typ, code uint16, value int32) []byte {
	ev := make([]byte, inputEventSize)
	binary.LittleEndian.PutUint16(ev[16:], typ)
	binary.LittleEndian.PutUint16(ev[18:], code)
	binary.LittleEndian.PutUint32(ev[20:], uint32(value))
	return ev
}

func TestPowerButton(t *testing.T) {
	dir := t.TempDir()
	var events []byte
	events = append(events, inputEvent(evKey, keyPower, 0)...) // release
	events = append(events, inputEvent(0, 0, 0)...)            // EV_SYN
	events = append(events, inputEvent(evKey, 30, 1)...)       // KEY_A
	events = append(events, inputEvent(evKey, keyPower, 1)...) // press
	events = append(events, inputEvent(0, 0, 0)...)
	os.WriteFile(filepath.Join(dir, "event0"), events, 0o644)
	os.WriteFile(filepath.Join(dir, "mice"), inputEvent(evKey, keyPower, 1), 0o644)
	pressed := make(chan struct{}, 4)
	watchPowerButton(dir, 0, func() { pressed <- struct{}{} })
	select {
	case <-pressed:
	case <-time.After(5 * time.Second):
		t.Fatal("no press seen")
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(pressed); n != 0 {
		t.Errorf("%d more presses; want exactly one (mice is not an event device)", n)
	}
	if isPowerPress(inputEvent(evKey, keyPower, 1)[:20]) {
		t.Error("a short event counted as a press")
	}
}
