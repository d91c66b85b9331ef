package instance

import (
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/nosproject/nos/vmm"
)

// TestOldFilesLoad reads config.json and state.json as the nos before the
// driver interface wrote them (QEMU's field names and crash kinds).
func TestOldFilesLoad(t *testing.T) {
	var c Config
	old := `{"id":"x","publish":[{"Proto":"tcp","HostIP":"127.0.0.1","HostPort":8080,"GuestPort":80}],"memoryMiB":256}`
	if err := json.Unmarshal([]byte(old), &c); err != nil {
		t.Fatal(err)
	}
	if want := (vmm.Forward{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8080, GuestPort: 80}); len(c.Publish) != 1 || c.Publish[0] != want {
		t.Errorf("publish = %+v, want %+v", c.Publish, want)
	}
	if _, err := driver(c.Hypervisor); err != nil {
		t.Errorf("an old instance names no hypervisor and must get QEMU: %v", err)
	}
	c.RootFS, c.Name = "erofs", "old"
	if r := (&monitor{cfg: c, log: slog.New(slog.DiscardHandler)}).guestConfig(vmm.Machine{}).Root; r.Writable || r.TmpfsSize != 0 {
		t.Errorf("an instance made before writable roots must keep its read-only root, got %+v", r)
	}

	var s State
	if err := json.Unmarshal([]byte(`{"status":"crashed","qemuPid":4242,"crashKind":"qemu-killed","exitCode":137}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.VMPID != 4242 || s.CrashKind != CrashHypervisorKilled || s.Hypervisor != "QEMU" || s.ExitCode != 137 || s.Status != StatusCrashed {
		t.Errorf("old state read as %+v", s)
	}
	// The new names win, and are what is written.
	if err := json.Unmarshal([]byte(`{"vmPid":7,"qemuPid":4242}`), &s); err != nil || s.VMPID != 7 {
		t.Errorf("vmPid and qemuPid: %d, %v", s.VMPID, err)
	}
	b, _ := json.Marshal(State{VMPID: 9})
	var back map[string]any
	json.Unmarshal(b, &back)
	if _, ok := back["qemuPid"]; ok || back["vmPid"] != float64(9) {
		t.Errorf("written as %s", b)
	}
}

func TestBindsLowPort(t *testing.T) {
	if bindsLowPort([]vmm.Forward{{HostPort: 8080}, {HostPort: 5353}}) {
		t.Error("8080 and 5353 need no privilege")
	}
	start := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		start, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if got := bindsLowPort([]vmm.Forward{{HostPort: 8080}, {HostPort: start - 1}}); got != (start > 1) {
		t.Errorf("port %d below the host's unprivileged start %d: %v", start-1, start, got)
	}
}
