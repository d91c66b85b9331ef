package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/internal/buildstamp"
)

// inspected is the part of `nos inspect INSTANCE` the tests read.
type inspected struct {
	ID           string
	Name         string
	MonitorAlive bool
	Config       struct {
		Restart  struct{ Name string }
		Networks []struct {
			Network string `json:"network"`
			Addr    string `json:"addr"`
		} `json:"networks"`
		Labels map[string]string `json:"labels"`
	}
	State struct {
		Status       string
		MonitorPID   int `json:"monitorPid"`
		QEMUPID      int `json:"vmPid"`
		ExitCode     int `json:"exitCode"`
		Error        string
		RestartCount int `json:"restartCount"`
		StartedAt    time.Time
		FinishedAt   time.Time
		Health       *struct{ Status string }
		Snapshot     string
	}
}

func (e *nosEnv) inspect(ref string) inspected {
	e.t.Helper()
	r := e.nos("inspect", ref)
	var out []inspected
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out) != 1 {
		e.t.Fatalf("inspect %s: %v", ref, r)
	}
	return out[0]
}

// runDetached starts an instance with run -d and returns its ID; the
// instance is force-removed when the test ends.
func (e *nosEnv) runDetached(args ...string) string {
	e.t.Helper()
	r := e.nos(append([]string{"run", "-d", "--accel", accel}, args...)...)
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		e.t.Fatalf("run -d: want a 64-hex ID, got %v", r)
	}
	e.t.Cleanup(func() { e.nos("rm", "-f", id) })
	return id
}

// dump logs what nos knows about an instance, to explain a failure.
func (e *nosEnv) dump(ref string) {
	e.t.Helper()
	r := e.nos("inspect", ref)
	e.t.Logf("inspect %s:\n%s%s", ref, r.stdout, r.stderr)
	var out []struct{ Dir string }
	if json.Unmarshal([]byte(r.stdout), &out) == nil && len(out) == 1 {
		for _, f := range []string{"monitor.log", "console.log", "app.log"} {
			b, _ := os.ReadFile(out[0].Dir + "/" + f)
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			e.t.Logf("%s:\n%s", f, b)
		}
	}
}

// waitApp waits until the instance's log has the line the probe prints when
// it is ready.
func (e *nosEnv) waitApp(ref string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if strings.Count(e.logs(ref), "waiting") >= n {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.dump(ref)
	e.t.Fatalf("instance %s: the app did not start (%d)", ref, n)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func (e *nosEnv) logs(args ...string) string {
	e.t.Helper()
	r := e.nos(append([]string{"logs"}, args...)...)
	if r.code != 0 {
		e.t.Fatalf("logs: %v", r)
	}
	return r.stdout + r.stderr
}

func TestDetachedServiceLifecycle(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	port := freePort(t)
	id := e.runDetached("--name", "web-"+itoa(port), "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "--health-http", "/healthz", "--health-interval", "500ms", "httpserver")
	name := "web-" + itoa(port)

	// Reachable, listed, addressable by name, ID and prefix.
	body := waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", port), 2*time.Minute)
	if !strings.Contains(body, "Hello from a nos VM") {
		t.Fatalf("body %q", body)
	}
	r := e.nos("ps")
	if !strings.Contains(r.stdout, id[:12]) || !strings.Contains(r.stdout, name) || !strings.Contains(r.stdout, "Up ") || !strings.Contains(r.stdout, fmt.Sprintf("127.0.0.1:%d->8080/tcp", port)) {
		t.Fatalf("ps: %v", r)
	}
	waitFor(t, "healthy", time.Minute, func() bool { return strings.Contains(e.nos("ps").stdout, "(healthy)") })
	if got := e.inspect(id[:8]); got.Name != name || got.State.Status != "running" || !got.MonitorAlive || got.State.QEMUPID == 0 {
		t.Fatalf("inspect by prefix: %+v", got)
	}
	if r := e.nos("ps", "-q"); !strings.Contains(r.stdout, id[:12]) {
		t.Fatalf("ps -q: %v", r)
	}
	if r := e.nos("ps", "--format", "{{.Names}} {{.State}}"); !strings.Contains(r.stdout, name+" running") {
		t.Fatalf("ps --format: %v", r)
	}

	// logs -f follows output that comes later; --timestamps prefixes times.
	follow := exec.Command(nosBin, "logs", "-f", name)
	follow.Env = e.env
	var fout lockedBuffer
	follow.Stdout, follow.Stderr = &fout, &fout
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logs("--timestamps", name), "listening on :8080") {
		t.Fatal("logs lack the start-up line")
	}
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\S+ \d{4}/`).MatchString(e.logs("-t", "--tail", "1", name)) {
		t.Fatal("logs --timestamps --tail 1 lacks a timestamp")
	}

	// A graceful stop: SIGTERM reaches the app, which exits 0.
	start := time.Now()
	if r := e.nos("stop", name); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	t.Logf("nos stop took %v", time.Since(start))
	done := make(chan error, 1)
	go func() { done <- follow.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = follow.Process.Kill()
		t.Fatal("logs -f did not end when the instance stopped")
	}
	if !strings.Contains(fout.String(), "stopped") {
		t.Fatalf("logs -f missed the shutdown lines: %q", fout.String())
	}
	got := e.inspect(name)
	if got.State.Status != "exited" || got.State.ExitCode != 0 || got.MonitorAlive || got.State.FinishedAt.Before(got.State.StartedAt) {
		t.Fatalf("after stop: %+v", got)
	}
	if r := e.nos("ps", "-a"); !strings.Contains(r.stdout, "Exited (0)") {
		t.Fatalf("ps -a after stop: %v", r)
	}
	if r := e.nos("ps"); strings.Contains(r.stdout, id[:12]) {
		t.Fatalf("stopped instance in ps without -a: %v", r)
	}
	if r := e.nos("wait", name); strings.TrimSpace(r.stdout) != "0" {
		t.Fatalf("wait: %v", r)
	}
	if !strings.Contains(e.logs(name), "stopping") {
		t.Fatal("logs not kept after exit")
	}
	// Its host port is free again, and it can be started again.
	l, err := netListen(port)
	if err != nil {
		t.Fatalf("host port still taken: %v", err)
	}
	l.Close()
	if r := e.nos("start", name); r.code != 0 {
		t.Fatalf("start: %v", r)
	}
	waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", port), 2*time.Minute)
	if r := e.nos("rm", name); r.code == 0 || !strings.Contains(r.stderr, "rm -f") {
		t.Fatalf("rm of a running instance without -f should fail: %v", r)
	}
	if r := e.nos("rm", "-f", name); r.code != 0 {
		t.Fatalf("rm -f: %v", r)
	}
	if r := e.nos("ps", "-a", "-q"); strings.Contains(r.stdout, id[:12]) {
		t.Fatalf("removed instance still listed: %v", r)
	}
}

func TestStopDeliversSIGTERMAndKillForcesOff(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	id := e.runDetached("probe", "term")
	e.waitApp(id, 1)
	if r := e.nos("stop", "-t", "20", id); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	if out := e.logs(id); !strings.Contains(out, "got terminated") {
		t.Fatalf("the app did not record SIGTERM: %q", out)
	}
	if got := e.inspect(id); got.State.ExitCode != 0 || got.State.Status != "exited" {
		t.Fatalf("after stop: %+v", got.State)
	}

	id2 := e.runDetached("probe", "ignore-term")
	e.waitApp(id2, 1)
	if r := e.nos("kill", id2); r.code != 0 {
		t.Fatalf("kill: %v", r)
	}
	if got := e.inspect(id2); got.State.ExitCode != 137 || got.MonitorAlive {
		t.Fatalf("after kill: %+v", got.State)
	}
}

func TestRestartOnFailureCountsAndGivesUp(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	id := e.runDetached("--restart", "on-failure:2", "probe", "exit", "3")
	if r := e.nos("wait", id); strings.TrimSpace(r.stdout) != "3" {
		t.Fatalf("wait: %v", r)
	}
	got := e.inspect(id)
	if got.State.RestartCount != 2 || got.State.Status != "exited" || got.State.ExitCode != 3 {
		t.Fatalf("want 2 restarts then exited (3): %+v", got.State)
	}
	if r := e.nos("ps", "-a"); !strings.Contains(r.stdout, "Exited (3)") {
		t.Fatalf("ps -a: %v", r)
	}
}

func TestRestartAlwaysSurvivesKilledQEMUAndStopHolds(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	id := e.runDetached("--restart", "always", "probe", "term")
	e.waitApp(id, 1)
	first := e.inspect(id).State.QEMUPID
	if first == 0 {
		t.Fatal("no QEMU PID recorded")
	}
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a restart after QEMU was killed", 2*time.Minute, func() bool {
		s := e.inspect(id).State
		return s.RestartCount >= 1 && s.Status == "running" && s.QEMUPID != 0 && s.QEMUPID != first
	})
	e.waitApp(id, 2)
	// A stopped always-instance stays stopped.
	if r := e.nos("stop", id); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	time.Sleep(2 * time.Second)
	if got := e.inspect(id); got.MonitorAlive || got.State.Status != "exited" {
		t.Fatalf("restarted after stop: %+v", got)
	}
}

func TestUnlessStoppedStaysStopped(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	id := e.runDetached("--restart", "unless-stopped", "probe", "term")
	e.waitApp(id, 1)
	if r := e.nos("stop", id); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	time.Sleep(2 * time.Second)
	if got := e.inspect(id); got.MonitorAlive || got.State.Status != "exited" || got.State.RestartCount != 0 {
		t.Fatalf("unless-stopped restarted after stop: %+v", got)
	}
	// restart brings a stopped instance back; its logs carry over.
	if r := e.nos("restart", "-t", "5", id); r.code != 0 {
		t.Fatalf("restart: %v", r)
	}
	e.waitApp(id, 2)
	if r := e.nos("restart", "-t", "-1", id); r.code == 0 || !strings.Contains(r.stderr, "--time") {
		t.Fatalf("restart -t -1 must be refused: %v", r)
	}
}

func TestKilledQEMUAndKilledMonitorAreReportedTruthfully(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	id := e.runDetached("probe", "term")
	e.waitApp(id, 1)
	st := e.inspect(id).State
	_ = syscall.Kill(st.QEMUPID, syscall.SIGKILL)
	waitFor(t, "the crash to be recorded", time.Minute, func() bool { return e.inspect(id).State.Status == "crashed" })
	got := e.inspect(id)
	if got.State.ExitCode == 0 || !strings.Contains(got.State.Error, "QEMU was killed") {
		t.Fatalf("a killed QEMU must not look like success: %+v", got.State)
	}
	if r := e.nos("ps", "-a"); !strings.Contains(r.stdout, "Crashed (QEMU killed)") {
		t.Fatalf("ps -a: %v", r)
	}

	// kill -9 of the monitor: QEMU goes with it, ps says so, start recovers.
	if r := e.nos("start", id); r.code != 0 {
		t.Fatalf("start: %v", r)
	}
	e.waitApp(id, 2)
	st = e.inspect(id).State
	if err := syscall.Kill(st.MonitorPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ps to notice the dead monitor", 30*time.Second, func() bool {
		return strings.Contains(e.nos("ps", "-a").stdout, "Crashed (monitor died)")
	})
	waitFor(t, "QEMU to die with its monitor", 30*time.Second, func() bool { return syscall.Kill(st.QEMUPID, 0) != nil })
	if r := e.nos("start", id); r.code != 0 {
		t.Fatalf("start after a dead monitor: %v", r)
	}
	if r := e.nos("rm", "-f", id); r.code != 0 {
		t.Fatalf("rm -f: %v", r)
	}
}

func TestAutoRemove(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	r := e.nos("run", "-d", "--rm", "--accel", accel, "hello")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 {
		t.Fatalf("run -d --rm: %v", r)
	}
	waitFor(t, "the instance to remove itself", 2*time.Minute, func() bool {
		return !strings.Contains(e.nos("ps", "-a", "-q").stdout, id[:12])
	})
	r = e.run("--rm", "--name", "fg-rm", "hello")
	if r.code != 0 || strings.Contains(e.nos("ps", "-a").stdout, "fg-rm") {
		t.Fatalf("foreground --rm: %v", r)
	}
}

func TestInstanceBadInput(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	port := freePort(t)
	id := e.runDetached("--name", "taken-"+itoa(port), "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "probe", "term")
	e.waitApp(id, 1)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"stop", "nosuchinstance"}, "no such instance"},
		{[]string{"logs", "nosuchinstance"}, "no such instance"},
		{[]string{"run", "-d", "--accel", accel, "--name", "taken-" + itoa(port), "hello"}, "already in use"},
		{[]string{"rm", id}, "rm -f"},
		{[]string{"start", id}, "already running"},
		{[]string{"run", "-d", "--restart", "sometimes", "hello"}, "on-failure"},
		{[]string{"run", "-d", "--restart", "always:3", "hello"}, "only on-failure"},
		{[]string{"run", "-d", "--rm", "--restart", "always", "hello"}, "conflict"},
		{[]string{"run", "-d", "--accel", accel, "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "hello"}, "in use"},
		{[]string{"logs", "--tail", "x", id}, "--tail"},
		{[]string{"kill", "-s", "NOPE", id}, "not a signal"},
	}
	// Other tests share this NOS_HOME and create and remove instances
	// meanwhile, so comparing whole listings would be racy: every refused
	// run gets a name of its own, and none of those names may appear.
	refused := "refused-" + itoa(port) + "-"
	for i, c := range cases {
		args := c.args
		if args[0] == "run" && !slices.Contains(args, "--name") {
			args = append([]string{"run", "--name", refused + itoa(i)}, args[1:]...)
		}
		r := e.nos(args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || !strings.HasPrefix(r.stderr, "nos: ") {
			t.Errorf("%v: want a failure mentioning %q, got %v", args, c.want, r)
		}
	}
	ps := e.nos("ps", "-a").stdout
	if strings.Contains(ps, refused) || strings.Count(ps, "taken-"+itoa(port)) != 1 {
		t.Errorf("bad input changed the instances:\n%s", ps)
	}
	if got := e.inspect(id); got.State.Status != "running" {
		t.Errorf("bad input disturbed a running instance: %+v", got.State)
	}
}

// TestRacingCommands runs twenty nos commands at once on the same
// instances and checks that the state they leave is consistent.
func TestRacingCommands(t *testing.T) {
	t.Parallel()
	home := newEnv(t) // its own home, so the counts below are exact
	home.build("probe", "./e2e/testdata/probe")
	var wg sync.WaitGroup
	names := []string{"r1", "r2", "r3", "r4"}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n := names[i%len(names)]
			switch i % 5 {
			case 0, 1:
				home.nos("run", "-d", "--accel", accel, "--name", n, "probe", "term")
			case 2:
				home.nos("stop", "-t", "5", n)
			case 3:
				home.nos("rm", "-f", n)
			case 4:
				home.nos("ps", "-a")
			}
		}(i)
	}
	wg.Wait()
	// Every listed instance is readable and its name unique; rm -f clears all.
	r := home.nos("ps", "-a", "--format", "{{.Names}}")
	seen := map[string]bool{}
	for _, n := range strings.Fields(r.stdout) {
		if seen[n] {
			t.Errorf("name %s used twice: %v", n, r)
		}
		seen[n] = true
		home.inspect(n)
	}
	for _, n := range names {
		home.nos("rm", "-f", n)
	}
	if r := home.nos("ps", "-a", "-q"); strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("instances left after rm -f: %v", r)
	}
	ents, _ := os.ReadDir(home.home + "/instances")
	for _, d := range ents {
		if d.IsDir() {
			t.Errorf("instance directory left behind: %s", d.Name())
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }

func netListen(port int) (net.Listener, error) {
	return net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
}

func TestConsoleLogIsCapped(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	id := e.runDetached("--name", "flood-"+itoa(freePort(t)), "probe", "flood-console", "3")
	r := e.nos("wait", id)
	if strings.TrimSpace(r.stdout) != "0" {
		e.dump(id)
		t.Fatalf("wait: %v", r)
	}
	dir := e.inspectDir(id)
	var total int64
	for _, f := range []string{"console.log", "console.log.1"} {
		if fi, err := os.Stat(dir + "/" + f); err == nil {
			total += fi.Size()
		}
	}
	if _, err := os.Stat(dir + "/console.log.1"); err != nil || total > 5<<20 {
		t.Fatalf("console log not capped: %d bytes in console.log and console.log.1 (%v)", total, err)
	}
}

func (e *nosEnv) inspectDir(ref string) string {
	e.t.Helper()
	var out []struct{ Dir string }
	r := e.nos("inspect", ref)
	if json.Unmarshal([]byte(r.stdout), &out) != nil || len(out) != 1 || out[0].Dir == "" {
		e.t.Fatalf("inspect %s: %v", ref, r)
	}
	return out[0].Dir
}

func TestHealthCheckReportsUnhealthy(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	// Nothing listens on guest port 9999.
	id := e.runDetached("--health-tcp", "9999", "--health-interval", "300ms", "--health-retries", "2", "probe", "term")
	e.waitApp(id, 1)
	waitFor(t, "unhealthy", time.Minute, func() bool { return strings.Contains(e.nos("ps").stdout, "(unhealthy)") })
	if h := e.inspect(id).State.Health; h == nil || h.Status != "unhealthy" {
		t.Fatalf("inspect health: %+v", h)
	}
}

// TestMonitorProgram: a nos and a nos-monitor of one build (as make build
// makes them, and as these tests are built) run every instance under
// nos-monitor; a nos-monitor of another build hands the instance over to
// the nos that started it (`nos __monitor`), which runs it as before.
func TestMonitorProgram(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	argv := func(id string) []string {
		t.Helper()
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", e.inspect(id).State.MonitorPID))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	id := e.runDetached("probe", "term")
	e.waitApp(id, 1)
	if a := argv(id); a[0] != filepath.Join(filepath.Dir(nosBin), "nos-monitor") || !slices.Contains(a, id) {
		t.Errorf("the monitor of one build is not nos-monitor: %q", a)
	}

	other := t.TempDir()
	nos := filepath.Join(other, "nos")
	if out, err := exec.Command("cp", nosBin, nos).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags="+buildstamp.Flag("another-build"), "-o", filepath.Join(other, "nos-monitor"), "./cmd/nos-monitor")
	build.Dir, build.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a nos-monitor of another build: %v\n%s", err, out)
	}
	run := exec.Command(nos, "run", "-d", "--accel", accel, "probe", "term")
	run.Env = e.env
	out, err := run.Output()
	skewed := strings.TrimSpace(string(out))
	if err != nil || len(skewed) != 64 {
		t.Fatalf("run -d with a nos-monitor of another build: %v %q", err, out)
	}
	t.Cleanup(func() { e.nos("rm", "-f", skewed) })
	e.waitApp(skewed, 1)
	if a := argv(skewed); a[0] != nos || !slices.Contains(a, instance.MonitorVerb) || !slices.Contains(a, skewed) {
		t.Errorf("a nos-monitor of another build must hand over to nos __monitor: %q", a)
	}
	if st := e.inspect(skewed).State.Status; st != "running" {
		t.Errorf("the handed-over instance is %s, want running", st)
	}
}
