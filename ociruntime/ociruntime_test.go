package ociruntime

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"github.com/nosproject/nos/guestapi"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to make it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "SIGTERM": syscall.SIGTERM, "sigkill": syscall.SIGKILL, "kill": syscall.SIGKILL,
		"9": syscall.SIGKILL, "15": syscall.SIGTERM, "HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "64": 64,
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "NOPE", "SIG", "TERM9"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) accepted", in)
		}
	}
}

func TestParseGlobals(t *testing.T) {
	g, rest, err := parseGlobals([]string{"--root", "/r", "--log=/l.json", "--log-format", "json", "--systemd-cgroup", "create", "--bundle", "b", "id"})
	if err != nil {
		t.Fatal(err)
	}
	if g.root != "/r" || g.log != "/l.json" || g.logFormat != "json" || !g.systemdCgroup {
		t.Errorf("globals %+v", g)
	}
	if diff := cmp.Diff([]string{"create", "--bundle", "b", "id"}, rest); diff != "" {
		t.Errorf("rest (-want +got):\n%s", diff)
	}
	// runc's flag library takes single-dash long flags.
	if g, _, err := parseGlobals([]string{"-root", "/x", "state", "id"}); err != nil || g.root != "/x" {
		t.Errorf("-root: %+v %v", g, err)
	}
	if g, _, _ := parseGlobals([]string{"state", "id"}); g.root != DefaultRoot() {
		t.Errorf("default root %q", g.root)
	}
	if _, _, err := parseGlobals([]string{"--log-format", "xml", "state", "x"}); err == nil {
		t.Error("--log-format xml accepted")
	}
	if _, _, err := parseGlobals([]string{"--bogus", "state", "x"}); err == nil {
		t.Error("an unknown global flag was accepted")
	}
}

func TestParseCreate(t *testing.T) {
	// conmon's command line.
	c, err := parseCreate([]string{"--bundle", "/b", "--pid-file", "/p", "--no-pivot", "--no-new-keyring", "--preserve-fds=1", "cid"})
	if err != nil {
		t.Fatal(err)
	}
	want := createFlags{bundle: "/b", pidFile: "/p", noPivot: true, noNewKeyring: true, preserveFDs: 1, id: "cid"}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if c, err := parseCreate([]string{"-b", "x", "id"}); err != nil || c.bundle != "x" {
		t.Errorf("-b: %+v %v", c, err)
	}
	for _, args := range [][]string{{}, {"a", "b"}, {"../x"}, {"--nope", "id"}} {
		if _, err := parseCreate(args); err == nil {
			t.Errorf("create %q accepted", args)
		}
	}
}

func TestCheckID(t *testing.T) {
	for _, ok := range []string{"abc", "f48ea28590a5", "a.b-c_d+e"} {
		if err := checkID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "x\x00"} {
		if checkID(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseStartTime(t *testing.T) {
	stat := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615"
	got, err := parseStartTime(stat)
	if err != nil || got != 987654 {
		t.Errorf("parseStartTime = %d, %v", got, err)
	}
	if _, err := parseStartTime("garbage"); err == nil {
		t.Error("garbage accepted")
	}
	self, err := startTime(os.Getpid())
	if err != nil || !alive(os.Getpid(), self) || alive(os.Getpid(), self+1) {
		t.Errorf("alive(self): start %d, %v", self, err)
	}
}

// TestStateJSON: what `state` prints, for each status; a record whose
// supervisor is gone reads as stopped, without a pid.
func TestStateJSON(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	self, _ := startTime(os.Getpid())
	recs := []*record{
		{ID: "c1", Bundle: "/b", Status: specs.StateCreated, Pid: os.Getpid(), PidStart: self, Created: created, Annotations: map[string]string{"a": "b"}},
		{ID: "c2", Bundle: "/b", Status: specs.StateRunning, Pid: os.Getpid(), PidStart: self, Created: created},
		{ID: "c3", Bundle: "/b", Status: specs.StateRunning, Pid: os.Getpid(), PidStart: self + 1, Created: created}, // pid reused
		{ID: "c4", Bundle: "/b", Status: specs.StateStopped, Pid: os.Getpid(), Created: created},
	}
	var buf bytes.Buffer
	for _, r := range recs {
		s := r.ociState()
		if s.Pid != 0 {
			s.Pid = 4242 // the test's own pid varies
		}
		b, _ := json.MarshalIndent(s, "", "  ")
		buf.Write(append(b, '\n'))
	}
	golden(t, "state.golden", buf.Bytes())
}

func TestNotExist(t *testing.T) {
	st := store{t.TempDir()}
	for _, args := range [][]string{{"state", "nope"}, {"start", "nope"}, {"kill", "nope", "KILL"}, {"delete", "nope"}} {
		err := run(globals{root: st.root}, args[0], args[1:], Stdio{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "does not exist") || !errors.Is(err, ErrNotExist) {
			t.Errorf("%v: %v; want an error saying it does not exist", args, err)
		}
	}
	// delete --force of an unknown container succeeds, as runc's does.
	if err := run(globals{root: st.root}, "delete", []string{"--force", "nope"}, Stdio{}, &bytes.Buffer{}); err != nil {
		t.Errorf("delete --force nope: %v", err)
	}
}

func TestRefused(t *testing.T) {
	for _, c := range []string{"pause", "resume", "update", "checkpoint"} {
		err := run(globals{root: t.TempDir()}, c, []string{"x"}, Stdio{}, &bytes.Buffer{})
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v", c, err)
		}
	}
}

// TestErrorLog: an error goes to stderr and, with --log, to the log as a
// JSON line that containerd's shim parses.
func TestErrorLog(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log.json")
	errf, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	code := Main([]string{"--root", t.TempDir(), "--log", log, "--log-format", "json", "state", "missing"}, Stdio{Out: errf, Err: errf})
	if se, _ := os.ReadFile(errf.Name()); code != 1 || !strings.Contains(string(se), "does not exist") {
		t.Fatalf("exit %d, stderr %q", code, se)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var line struct{ Level, Msg, Time string }
	if err := json.Unmarshal(b, &line); err != nil || line.Level != "error" || !strings.Contains(line.Msg, "does not exist") || line.Time == "" {
		t.Errorf("log line %q: %v", b, err)
	}
}

func TestFeatures(t *testing.T) {
	var out bytes.Buffer
	if err := run(globals{}, "features", nil, Stdio{}, &out); err != nil {
		t.Fatal(err)
	}
	var f struct{ OCIVersionMin, OCIVersionMax string }
	if err := json.Unmarshal(out.Bytes(), &f); err != nil || f.OCIVersionMin != "1.0.0" || f.OCIVersionMax != specs.Version {
		t.Errorf("features %s: %v", out.String(), err)
	}
}

// TestPlanGolden: podman's config.json for `podman run --memory 100m
// --cpus 2 --user 1000:1000 -e FOO=bar IMAGE info`, trimmed, and the VM it
// becomes.
func TestPlanGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/podman-config.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	p, err := MakePlan(s, "/bundle", 4)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.MarshalIndent(p, "", "  ")
	golden(t, "podman-plan.golden", append(out, '\n'))
}

func TestPlanResources(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	base := func() *specs.Spec {
		return &specs.Spec{Version: "1.0.2", Root: &specs.Root{Path: "/r"}, Process: &specs.Process{Args: []string{"/a"}, Cwd: "/"}}
	}
	cases := []struct {
		name      string
		res       *specs.LinuxResources
		mem, cpus int
	}{
		{"none", nil, 256, 1},
		{"memory", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(512 << 20)}}, 512, 1},
		{"memory rounds up", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(100<<20 + 1)}}, 101, 1},
		{"memory floor", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(6 << 20)}}, MinMemoryMiB, 1},
		{"unlimited", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}}, 256, 1},
		{"quota 1.5", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(150000), Period: u64(100000)}}, 256, 2},
		{"quota default period", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(300000)}}, 256, 3},
		{"quota capped", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(5000000), Period: u64(100000)}}, 256, 4},
	}
	for _, tc := range cases {
		s := base()
		if tc.res != nil {
			s.Linux = &specs.Linux{Resources: tc.res}
		}
		p, err := MakePlan(s, "/b", 4)
		if err != nil || p.MemoryMiB != tc.mem || p.CPUs != tc.cpus {
			t.Errorf("%s: %d MiB, %d CPUs, %v; want %d, %d", tc.name, p.MemoryMiB, p.CPUs, err, tc.mem, tc.cpus)
		}
	}
}

func TestValidateRefuses(t *testing.T) {
	for name, cfg := range map[string]string{
		"no version":    `{"root":{"path":"r"},"process":{"args":["/a"],"cwd":"/"}}`,
		"version 2":     `{"ociVersion":"2.0.0","root":{"path":"r"},"process":{"args":["/a"],"cwd":"/"}}`,
		"no root":       `{"ociVersion":"1.0.0","process":{"args":["/a"],"cwd":"/"}}`,
		"no process":    `{"ociVersion":"1.0.0","root":{"path":"r"}}`,
		"no args":       `{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"args":[],"cwd":"/"}}`,
		"relative cwd":  `{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"args":["/a"],"cwd":"x"}}`,
		"bad env":       `{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"args":["/a"],"cwd":"/","env":["NOEQUALS"]}}`,
		"wrong type":    `{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"args":"/a","cwd":"/"}}`,
		"trailing data": `{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"args":["/a"],"cwd":"/"}} {}`,
		"bad hostname":  `{"ociVersion":"1.0.0","root":{"path":"r"},"hostname":"a/b","process":{"args":["/a"],"cwd":"/"}}`,
		"NUL in args":   `{"ociVersion":"1.0.0","root":{"path":"r"},"process":{"args":["/a\u0000"],"cwd":"/"}}`,
	} {
		if _, err := ParseConfig([]byte(cfg)); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v; want ErrBadConfig", name, err)
		}
	}
	// Unknown properties are ignored, as the spec requires.
	if _, err := ParseConfig([]byte(`{"ociVersion":"1.2.0","x-future":1,"root":{"path":"r"},"process":{"args":["/a"],"cwd":"/"}}`)); err != nil {
		t.Errorf("unknown property: %v", err)
	}
}

// FuzzParseConfig: no config.json makes the parser, the validation or the
// plan panic, and whatever is accepted makes a plan that keeps what the
// guest relies on: non-empty args, an absolute cwd, memory at or above the
// floor, at least one vCPU, the rootfs absolute.
func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("testdata/podman-config.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":["/a"],"cwd":"/"}}`))
	f.Add([]byte(`{"ociVersion":"1.0.2","root":{"path":"r"},"process":{"args":["/a"],"cwd":"/"},"linux":{"resources":{"memory":{"limit":1},"cpu":{"quota":1,"period":1}}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseConfig(b)
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		p, err := MakePlan(s, "/bundle", 2)
		if err != nil {
			t.Fatalf("a validated config has no plan: %v", err)
		}
		if len(p.Argv) == 0 || p.Argv[0] == "" || !strings.HasPrefix(p.Cwd, "/") || p.MemoryMiB < MinMemoryMiB || p.CPUs < 1 || p.CPUs > 2 || !filepath.IsAbs(p.RootFS) {
			t.Fatalf("bad plan %+v", p)
		}
	})
}

// TestPlanFiles: the engines' bind-mounted files (podman's and docker's
// forms) become copies; other binds are shared at start, tmpfs mounts
// are tmpfs mounts. readFiles takes regular files up to the bound.
func TestPlanFiles(t *testing.T) {
	s := &specs.Spec{
		Version: "1.0.2", Root: &specs.Root{Path: "rootfs"},
		Process: &specs.Process{Args: []string{"/app"}, Cwd: "/"},
		Mounts: []specs.Mount{
			{Destination: "/etc/hosts", Type: "bind", Source: "/e/hosts", Options: []string{"bind", "rprivate"}},
			{Destination: "/etc/resolv.conf", Source: "/e/resolv.conf", Options: []string{"rbind", "rprivate"}}, // docker: no type
			{Destination: "/run/.containerenv", Type: "bind", Source: "containerenv"},                           // relative: to the bundle
			{Destination: "/etc/hostname", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind"}},
		},
	}
	p, err := MakePlan(s, "/bundle", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []PlanFile{{Source: "/e/hosts", Path: "/etc/hosts"}, {Source: "/e/resolv.conf", Path: "/etc/resolv.conf"}, {Source: "/bundle/containerenv", Path: "/run/.containerenv"}}
	if diff := cmp.Diff(want, p.Files); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	// A tmpfs at a copied path is a tmpfs; other binds are shared at start.
	if len(p.Notes) != 0 {
		t.Errorf("notes: %q", p.Notes)
	}
	if diff := cmp.Diff([]guestapi.Tmpfs{{Path: "/etc/hostname"}}, p.Tmpfs); diff != "" {
		t.Errorf("tmpfs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]PlanBind{{Source: "/srv/data", Target: "/data"}}, p.Binds); diff != "" {
		t.Errorf("binds (-want +got):\n%s", diff)
	}

	dir := t.TempDir()
	small, big := filepath.Join(dir, "hosts"), filepath.Join(dir, "big")
	if err := os.WriteFile(small, []byte("127.0.0.1 localhost\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, 64<<10+1), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := []PlanFile{{Source: small, Path: "/etc/hosts"}}
	if err := readFiles(fs); err != nil || string(fs[0].Data) != "127.0.0.1 localhost\n" || fs[0].Mode != 0o640 {
		t.Errorf("readFiles: %v %q %v", err, fs[0].Data, fs[0].Mode)
	}
	for _, src := range []string{big, dir, filepath.Join(dir, "missing")} {
		if err := readFiles([]PlanFile{{Source: src, Path: "/etc/hosts"}}); err == nil {
			t.Errorf("readFiles %s: no error", src)
		}
	}
	cfg := guestConfig(Plan{Files: fs, Argv: []string{"/app"}}, "id")
	if len(cfg.Files) != 1 || cfg.Files[0].Path != "/etc/hosts" || cfg.Files[0].Mode != 0o640 || cfg.Files[0].Check() != nil {
		t.Errorf("guest files: %+v", cfg.Files)
	}
}

// TestPlanMountsAndRlimits: tmpfs sizes and modes, read-only binds,
// rlimits; bad ones refused.
func TestPlanMountsAndRlimits(t *testing.T) {
	s := &specs.Spec{
		Version: "1.0.2", Root: &specs.Root{Path: "rootfs"},
		Process: &specs.Process{Args: []string{"/app"}, Cwd: "/", Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}}},
		Mounts: []specs.Mount{
			{Destination: "/cache", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "size=64m", "mode=1770"}},
			{Destination: "/half", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=50%"}},
			{Destination: "/conf/", Type: "bind", Source: "conf", Options: []string{"rbind", "ro"}},
		},
	}
	p, err := MakePlan(s, "/bundle", 2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]guestapi.Tmpfs{{Path: "/cache", Size: 64 << 20, Mode: 0o1770}, {Path: "/half"}}, p.Tmpfs); diff != "" {
		t.Errorf("tmpfs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]PlanBind{{Source: "/bundle/conf", Target: "/conf", ReadOnly: true}}, p.Binds); diff != "" {
		t.Errorf("binds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]guestapi.Rlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}}, p.Rlimits); diff != "" {
		t.Errorf("rlimits (-want +got):\n%s", diff)
	}
	for _, bad := range []func(*specs.Spec){
		func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1}} },
		func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}
		},
		func(s *specs.Spec) {
			s.Mounts = []specs.Mount{{Destination: "/t", Type: "tmpfs", Options: []string{"size=lots"}}}
		},
		func(s *specs.Spec) {
			s.Mounts = []specs.Mount{{Destination: "/t", Type: "tmpfs", Options: []string{"mode=999"}}}
		},
	} {
		s2 := *s
		p2 := *s.Process
		s2.Process = &p2
		bad(&s2)
		if _, err := MakePlan(&s2, "/bundle", 2); err == nil {
			t.Errorf("accepted rlimits %v mounts %v", s2.Process.Rlimits, s2.Mounts)
		}
	}
}
