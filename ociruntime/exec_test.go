package ociruntime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nosproject/nos/guestapi"
)

func TestParseExec(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "process.json")
	if err := os.WriteFile(proc, []byte(`{"terminal":true,"consoleSize":{"height":30,"width":100},"user":{"uid":1000,"gid":1000,"additionalGids":[1000,27]},
"args":["/bin/ls","-l"],"env":["PATH=/bin","A=b"],"cwd":"/srv"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// conmon's and the shim's form.
	f, err := parseExec([]string{"--process", proc, "--detach", "--pid-file", "/run/p", "--console-socket", "/run/c.sock", "c1"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := execProcess(f)
	if err != nil {
		t.Fatal(err)
	}
	want := guestapi.Exec{Argv: []string{"/bin/ls", "-l"}, Env: []string{"PATH=/bin", "A=b"}, WorkingDir: "/srv",
		User: &guestapi.User{UID: 1000, GID: 1000, Groups: []uint32{27}}, TTY: true, Rows: 30, Cols: 100}
	if f.id != "c1" || !f.detach || f.pidFile != "/run/p" || f.consoleSocket != "/run/c.sock" || !execEqual(x, want) {
		t.Errorf("flags %+v, exec %+v", f, x)
	}
	// runc's command-line form; flags after the id are the command's.
	f, err = parseExec([]string{"-t", "--cwd", "/tmp", "-e", "K=V", "-u", "5:6", "c2", "cat", "-n", "--tty"})
	if err != nil {
		t.Fatal(err)
	}
	if x, err = execProcess(f); err != nil {
		t.Fatal(err)
	}
	want = guestapi.Exec{Argv: []string{"cat", "-n", "--tty"}, Env: []string{"K=V"}, WorkingDir: "/tmp", User: &guestapi.User{UID: 5, GID: 6}, TTY: true}
	if f.id != "c2" || !execEqual(x, want) {
		t.Errorf("flags %+v, exec %+v", f, x)
	}
	for _, bad := range [][]string{
		{}, {"c1"}, {"--process", proc, "c1", "ls"}, {"--bogus", "c1", "ls"}, {"../x", "ls"},
	} {
		if _, err := parseExec(bad); err == nil {
			t.Errorf("parseExec(%q) accepted", bad)
		}
	}
	for _, body := range []string{`{"args":[]}`, `{"args":["ls"],"cwd":"rel"}`, `{"args":["ls"],"env":["NOEQUALS"]}`, `{"args":"ls"}`, `not json`} {
		if err := os.WriteFile(proc, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := parseExec([]string{"--process", proc, "c1"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := execProcess(f); err == nil {
			t.Errorf("process %s accepted", body)
		}
	}
	if _, err := execProcess(execFlags{id: "c", argv: []string{"ls"}, user: "root"}); err == nil {
		t.Error("--user root accepted (want numeric)")
	}
}

func execEqual(a, b guestapi.Exec) bool {
	return slices.Equal(a.Argv, b.Argv) && slices.Equal(a.Env, b.Env) && a.WorkingDir == b.WorkingDir &&
		a.TTY == b.TTY && a.Rows == b.Rows && a.Cols == b.Cols && a.Stdin == b.Stdin &&
		(a.User == nil) == (b.User == nil) && (a.User == nil || a.User.UID == b.User.UID && a.User.GID == b.User.GID && slices.Equal(a.User.Groups, b.User.Groups))
}

// exec of an unknown container says "does not exist"; of one not running,
// that it is not; a terminal without --console-socket is a usage error.
func TestExecRefused(t *testing.T) {
	st := store{t.TempDir()}
	if _, err := cmdExec(st, []string{"nope", "ls"}, Stdio{}); err == nil || !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("exec of an unknown container: %v", err)
	}
	if err := os.MkdirAll(st.dir("c1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := st.write(&record{ID: "c1", Status: "created"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cmdExec(st, []string{"c1", "ls"}, Stdio{}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("exec of a created container: %v", err)
	}
	var u usageError
	if _, err := cmdExec(st, []string{"-t", "c1", "ls"}, Stdio{}); !errors.As(err, &u) || !strings.Contains(err.Error(), "--console-socket") {
		t.Errorf("exec -t without a console socket: %v", err)
	}
}

// FuzzExecProcess: any process.json is refused or gives a request with a
// command, absolute or empty working directory and KEY=VALUE environment.
func FuzzExecProcess(f *testing.F) {
	f.Add([]byte(`{"args":["/bin/ls"],"cwd":"/","env":["A=b"],"terminal":true,"consoleSize":{"height":1,"width":2}}`))
	f.Add([]byte(`{"args":[""],"user":{"uid":4294967295,"additionalGids":[1,1]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		proc := filepath.Join(t.TempDir(), "p.json")
		if err := os.WriteFile(proc, b, 0o644); err != nil {
			t.Fatal(err)
		}
		x, err := execProcess(execFlags{id: "c", process: proc})
		if err != nil {
			return
		}
		if len(x.Argv) == 0 || x.Argv[0] == "" || (x.WorkingDir != "" && !strings.HasPrefix(x.WorkingDir, "/")) || x.User == nil {
			t.Fatalf("accepted %+v", x)
		}
		for _, e := range x.Env {
			if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
				t.Fatalf("env %q", e)
			}
		}
	})
}

// Hooks get the state on stdin, their args and env; a failure or a
// timeout is an error naming the hook.
func TestRunHooks(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	one := 1
	st := specs.State{Version: specs.Version, ID: "c1", Status: specs.StateCreated, Pid: 42, Bundle: "/b"}
	ok := specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", `cat > "$1"; echo " $0 $X" >> "$1"`, "arg0", out}, Env: []string{"X=y"}}
	if err := runHooks("prestart", []specs.Hook{ok}, st); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), `"id":"c1"`) || !strings.Contains(string(b), `"pid":42`) || !strings.Contains(string(b), " arg0 y") {
		t.Errorf("the hook saw %s", b)
	}
	err := runHooks("poststop", []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo broken >&2; exit 3"}}}, st)
	if err == nil || !strings.Contains(err.Error(), "poststop hook 0") || !strings.Contains(err.Error(), "broken") {
		t.Errorf("failing hook: %v", err)
	}
	err = runHooks("createRuntime", []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "10"}, Timeout: &one}}, st)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("slow hook: %v", err)
	}
}
