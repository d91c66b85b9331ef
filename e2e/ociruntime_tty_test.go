package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setTerminal gives a bundle's process a terminal of rows × cols.
func setTerminal(t *testing.T, bundle string, rows, cols int) {
	t.Helper()
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = true
	proc["consoleSize"] = map[string]any{"height": rows, "width": cols}
	b, _ = json.Marshal(cfg)
	writeFile(t, p, string(b), 0o644)
}

// TestOCIRuntimeTerminal: with process.terminal, create sends a pty
// master over --console-socket; the app runs on a terminal of
// consoleSize, what is typed into the master reaches it (echoed by the
// guest's terminal), and resizing the master is the app's SIGWINCH. ps
// lists the host processes, the supervisor first.
func TestOCIRuntimeTerminal(t *testing.T) {
	needVM(t)
	t.Parallel()
	bundle := ociBundle(t, "tty")
	setTerminal(t, bundle, 33, 99)
	tr, app := lifecycle(t, bundle, "tty1", "create-tty", "ps", "start", "wait-output:tty rows=", "ps",
		`type:hello\r`, "wait-output:got ", "resize:40x120", "wait-output:winch", "wait", "delete")
	for _, want := range []string{"create-tty: err=<nil> pid=true master=true", "start: err=<nil>", "ps: err=<nil> json=<nil> pids=1 first-is-pid=true", "wait: exit=0 signaled=false", "delete: err=<nil>"} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	// Running: the supervisor, QEMU, virtiofsd.
	if !strings.Contains(tr, "first-is-pid=true") || strings.Count(tr, "pids=1 ") != 1 {
		t.Errorf("ps of the running container lists no QEMU and virtiofsd")
	}
	for _, want := range []string{"tty rows=33 cols=99", "hello\r\n", `got "hello\n" err=<nil>`, "winch rows=40 cols=120"} {
		if !strings.Contains(app, want) {
			t.Errorf("the terminal's output lacks %q", want)
		}
	}
}

// TestOCIRuntimeStdin: a pipe as create's stdin (an engine's -i) is the
// app's stdin, and its end the app's end of file.
func TestOCIRuntimeStdin(t *testing.T) {
	needVM(t)
	t.Parallel()
	bundle := ociBundle(t, "cat")
	tr, app := lifecycle(t, bundle, "stdin1", "create-stdin:some data\nmore", "start", "wait", "delete")
	if !strings.Contains(tr, "create-stdin: err=<nil> pid=true") || !strings.Contains(tr, "wait: exit=0") {
		t.Errorf("transcript: %s", tr)
	}
	if !strings.Contains(app, "some data\nmore\nEOF after 14 bytes err=<nil>") {
		t.Errorf("the app's output: %q", app)
	}
}
