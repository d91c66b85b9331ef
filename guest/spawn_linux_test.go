package guest

import (
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
)

// capBnd returns the CapBnd value of a /proc status file's text.
func capBnd(t *testing.T, status string) string {
	t.Helper()
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:\t"); ok {
			return v
		}
	}
	t.Fatalf("no CapBnd line in:\n%s", status)
	return ""
}

// TestSpawnerBoundingSet: a process the spawner starts has only the kept
// capabilities in its bounding set, while one started from another thread
// of the same process has that thread's full set. Dropping from the
// bounding set takes CAP_SETPCAP: run as root.
func TestSpawnerBoundingSet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (CAP_SETPCAP), as the tests run in CI")
	}
	// This goroutine's thread is not the spawner's: it stays this one's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	full := capBnd(t, string(b))
	sp, err := newSpawner([]string{"CHOWN", "NET_BIND_SERVICE"})
	if err != nil {
		t.Fatal(err)
	}
	// CAP_CHOWN is 0, CAP_NET_BIND_SERVICE 10.
	if got := childCapBnd(t, sp.start); got != "0000000000000401" {
		t.Errorf("spawned process's bounding set = %s, want 0000000000000401 (CHOWN, NET_BIND_SERVICE)", got)
	}
	if got := childCapBnd(t, os.StartProcess); got != full {
		t.Errorf("process started from another thread: bounding set %s, want that thread's %s", got, full)
	}
	if _, err := newSpawner([]string{"NO_SUCH_CAP"}); err == nil {
		t.Error("newSpawner accepted an unknown capability")
	}
}

// childCapBnd starts cat /proc/self/status with start and returns the
// CapBnd it printed.
func childCapBnd(t *testing.T, start func(string, []string, *os.ProcAttr) (*os.Process, error)) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := start("/bin/cat", []string{"cat", "/proc/self/status"}, &os.ProcAttr{Files: []*os.File{nil, w, os.Stderr}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return capBnd(t, string(b))
}
