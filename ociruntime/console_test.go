package ociruntime

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestConsole: newConsole sends a master over the console socket as runc
// does (one message, SCM_RIGHTS), sized as asked; the slave is raw, so
// what is written into the master reaches the slave unchanged and is
// not echoed, and the slave's output reaches the master unchanged.
func TestConsole(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *os.File, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(4))
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			got <- nil
			return
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			got <- nil
			return
		}
		got <- os.NewFile(uintptr(fds[0]), "master")
	}()
	slave, err := newConsole(sock, 30, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	master := <-got
	if master == nil {
		t.Fatal("no master received")
	}
	defer master.Close()
	if r, c := termSize(slave); r != 30 || c != 100 {
		t.Errorf("size %dx%d, want 30x100", r, c)
	}
	if _, err := master.Write([]byte("hello\r\x03")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = slave.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := slave.Read(buf)
	if err != nil || string(buf[:n]) != "hello\r\x03" {
		t.Errorf("slave read %q, %v; want the bytes unchanged", buf[:n], err)
	}
	if _, err := slave.Write([]byte("out\n")); err != nil {
		t.Fatal(err)
	}
	_ = master.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = master.Read(buf)
	if err != nil || string(buf[:n]) != "out\n" {
		t.Errorf("master read %q, %v; want %q (no echo, no output processing)", buf[:n], err, "out\n")
	}
	// The engine resizes the master: the slave has the new size.
	if err := setTermSize(master, 40, 120); err != nil {
		t.Fatal(err)
	}
	if r, c := termSize(slave); r != 40 || c != 120 {
		t.Errorf("after resize %dx%d, want 40x120", r, c)
	}
}

func TestIsStreamInput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if !isStreamInput(r) || isStreamInput(null) || isStreamInput(nil) {
		t.Errorf("pipe %v, /dev/null %v, nil %v; want true, false, false", isStreamInput(r), isStreamInput(null), isStreamInput(nil))
	}
}

func TestPlanTerminal(t *testing.T) {
	s, err := ParseConfig([]byte(`{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"terminal":true,"consoleSize":{"height":33,"width":99},"args":["/a"],"cwd":"/"}}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(s, "/b", 2)
	if err != nil || !p.Terminal || p.ConsoleRows != 33 || p.ConsoleCols != 99 {
		t.Errorf("plan %+v, %v; want a 33x99 terminal", p, err)
	}
}

// TestCreateConsoleSocket: a terminal needs --console-socket, and
// --console-socket needs a terminal, as runc says.
func TestCreateConsoleSocket(t *testing.T) {
	for _, tc := range []struct {
		terminal bool
		args     []string
		want     string
	}{
		{true, nil, "--console-socket is needed"},
		{false, []string{"--console-socket", "/nonexistent.sock"}, "without process.terminal"},
	} {
		b := t.TempDir()
		cfg, _ := json.Marshal(map[string]any{"ociVersion": "1.0.0", "root": map[string]any{"path": "rootfs"},
			"process": map[string]any{"terminal": tc.terminal, "args": []string{"/a"}, "cwd": "/"}})
		if err := os.WriteFile(filepath.Join(b, "config.json"), cfg, 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"--bundle", b}, tc.args...)
		err := run(globals{root: t.TempDir()}, "create", append(args, "c1"), Stdio{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("terminal=%v %v: %v; want %q", tc.terminal, tc.args, err, tc.want)
		}
	}
}

func TestStatParent(t *testing.T) {
	for in, want := range map[string]int{
		"123 (qemu-system-x86) S 45 123 123 0 -1": 45,
		"7 (a) b) (c) R 1 7 7 0":                  1,
		"9 (nos-runtime) S 0 9 9":                 0,
	} {
		if got, ok := statParent([]byte(in)); !ok || got != want {
			t.Errorf("%q: %d %v; want %d", in, got, ok, want)
		}
	}
	if _, ok := statParent([]byte("garbage")); ok {
		t.Error("garbage parsed")
	}
}

func TestProcessTree(t *testing.T) {
	parent := map[int]int{1: 0, 10: 1, 20: 10, 21: 10, 30: 21, 40: 1}
	if got := processTree(10, parent); !slices.Equal(got, []int{10, 20, 21, 30}) {
		t.Errorf("tree of 10: %v", got)
	}
	if got := processTree(99, parent); got != nil {
		t.Errorf("tree of a gone pid: %v", got)
	}
	// This process is in its own tree.
	if got := processTree(os.Getpid(), readParents("/proc")); len(got) == 0 || got[0] != os.Getpid() {
		t.Errorf("tree of this process: %v", got)
	}
}
