package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// images is one nos home with the test images built once, shared by the
// boot tests that only read it.
var (
	imagesOnce sync.Once
	shared     *nosEnv
)

func sharedEnv(t *testing.T) *nosEnv {
	t.Helper()
	needVM(t)
	imagesOnce.Do(func() {
		e := &nosEnv{t: t}
		e.home = mustTempDir(t)
		e.env = append(envWithout("NOS_HOME"), "NOS_HOME="+e.home)
		e.build("hello", "./examples/hello")
		e.build("probe", "./e2e/testdata/probe", "-e", "FROM_IMAGE=image", "-e", "OVERRIDDEN=image")
		e.build("httpserver", "./examples/httpserver", "--port", "8080")
		shared = e
	})
	if shared == nil {
		t.Fatal("building the shared test images failed")
	}
	return &nosEnv{t: t, home: shared.home, env: shared.env}
}

func TestHelloOutputArgsAndExitCode(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	r := e.run("--rm", "hello", "a", "b c")
	if r.code != 0 || r.stdout != "Hello, world!\nargs: [a b c]\n" {
		t.Fatalf("want the greeting and the args on stdout, exit 0; got %v", r)
	}
	if strings.Contains(r.stdout+r.stderr, "Linux version") {
		t.Errorf("kernel boot messages reached the terminal:\n%v", r)
	}
	r = e.run("--name", "hello-exit3", "-e", "EXIT_CODE=3", "hello")
	if r.code != 3 {
		t.Fatalf("want exit code 3 from the application, got %v", r)
	}
	// Images boot quiet: the console holds the init's report, not the
	// kernel's boot messages.
	if c := e.nos("logs", "--console", "hello-exit3"); !strings.Contains(c.stdout, "nos-init: up in") || strings.Contains(c.stdout, "Linux version") {
		t.Fatalf("the console log should have nos-init's report and no kernel boot messages: %v", c)
	}
	if r := e.nos("rm", "hello-exit3"); r.code != 0 {
		t.Fatalf("rm: %v", r)
	}
}

func TestRuntimeEnvAndSecretsStayOffCmdline(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	const secret = "s3cret-value-42"
	r := e.run("--rm", "-e", "TOKEN="+secret, "-e", "OVERRIDDEN=run", "probe", "env", "TOKEN", "FROM_IMAGE", "OVERRIDDEN")
	want := "TOKEN=" + secret + "\nFROM_IMAGE=image\nOVERRIDDEN=run\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("want %q, got %v", want, r)
	}
	r = e.run("--rm", "-e", "TOKEN="+secret, "probe", "cmdline")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "cmdline: ") {
		t.Fatalf("probe cmdline: %v", r)
	}
	if strings.Contains(r.stdout, secret) {
		t.Fatalf("secret on the kernel command line: %s", r.stdout)
	}
}

func TestGuestSystem(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	before := time.Now()
	r := e.run("--rm", "--name", "probe-host", "probe", "system")
	after := time.Now()
	if r.code != 0 {
		t.Fatalf("probe system: %v", r)
	}
	// The guest's clock is the host's: set by the init from the config.
	var ms int64
	i := strings.Index(r.stdout, "now: ")
	if i < 0 {
		t.Fatalf("no clock reading:\n%s", r.stdout)
	}
	if _, err := fmt.Sscanf(r.stdout[i:], "now: %d", &ms); err != nil {
		t.Fatalf("no clock reading: %v\n%s", err, r.stdout)
	}
	if guest := time.UnixMilli(ms); guest.Before(before.Add(-time.Second)) || guest.After(after.Add(time.Second)) {
		t.Errorf("guest clock %v outside the run [%v, %v]", guest, before, after)
	}
	for _, want := range []string{
		"hostname: probe-host",
		"pid: ", // the app is not PID 1: the init is
		"zone: Europe/Paris",
		"certs: true",
		"if: lo [127.0.0.1/8",
		"if: eth0 [10.0.2.15/24",
		// eth0 announced its address when it came up, so QEMU's NAT sends
		// a published port's early connection on at once.
		"arp_notify: eth0 1",
		`resolv: "nameserver 10.0.2.3\n"`,
		// The image keeps no capability: root in the guest holds none,
		// and can gain none.
		"CapBnd:\t0000000000000000\n", "CapEff:\t0000000000000000\n",
		"path: /proc/self true", "path: /sys/kernel true", "path: /dev/null true", "path: /tmp true", "path: /run true",
		fmt.Sprintf("year: %d", time.Now().Year()),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("guest output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "pid: 1 ") {
		t.Errorf("the application runs as PID 1; the init should:\n%s", r.stdout)
	}
}

func TestStdoutAndStderrStaySeparate(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	r := e.run("--rm", "probe", "stderr")
	if r.stdout != "to stdout\n" || !strings.Contains(r.stderr, "to stderr\n") {
		t.Fatalf("streams mixed up: %v", r)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	if r := e.run("--rm", "probe", "exit", "7"); r.code != 7 {
		t.Fatalf("want exit 7, got %v", r)
	}
	r := e.run("--rm", "--entrypoint", "/no/such/program", "probe")
	if r.code != 127 || !strings.Contains(r.stderr, "/no/such/program") {
		t.Fatalf("want exit 127 and a message naming the program, got %v", r)
	}
}

func TestHTTPThroughPublishedPortAndGracefulStop(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	port := freePort(t)
	s := e.start("-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "-e", "GREETING=hi from the test", "httpserver")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	body := waitHTTP(t, s, url, 2*time.Minute)
	if !strings.Contains(body, "hi from the test") {
		t.Fatalf("unexpected body %q", body)
	}
	// Ctrl-C: the app gets SIGTERM, shuts down, and nos exits with its code.
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := s.wait(t, time.Minute)
	_, errs := s.output()
	if code != 0 || !strings.Contains(errs, "stopping") || !strings.Contains(errs, "stopped") {
		t.Fatalf("want a graceful stop with exit 0, got exit %d, stderr:\n%s", code, errs)
	}
	// The host port is released.
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("host port still taken after the VM stopped: %v", err)
	}
	l.Close()
}

func TestInterruptDeliversSIGTERMThenSecondForcesOff(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	s := e.start("--rm", "probe", "term")
	s.waitOutput(t, "waiting", 2*time.Minute)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t, time.Minute); code != 0 {
		t.Fatalf("want exit 0 after SIGTERM, got %d", code)
	}
	if out, _ := s.output(); !strings.Contains(out, "got terminated") {
		t.Fatalf("the app did not get SIGTERM: %q", out)
	}

	s = e.start("--rm", "probe", "ignore-term")
	s.waitOutput(t, "waiting", 2*time.Minute)
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(time.Second)
	select {
	case <-s.done:
		t.Fatal("an app that ignores SIGTERM stopped at the first interrupt")
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	if code := s.wait(t, 30*time.Second); code != 137 {
		t.Fatalf("want exit 137 after forcing off, got %d", code)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until it answers 200, failing early if the nos run
// s (when not nil) ends first.
func waitHTTP(t *testing.T, s *started, url string, timeout time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		var done <-chan struct{}
		if s != nil {
			done = s.done
		}
		select {
		case <-done:
			out, errs := s.output()
			t.Fatalf("nos run ended (exit %d) before serving\nstdout:\n%s\nstderr:\n%s", s.code, out, errs)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("no HTTP 200 from %s within %v: %v", url, timeout, last)
	return ""
}

func mustTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(binDir, "home-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func envWithout(keys ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(kv, k+"=") }) {
			out = append(out, kv)
		}
	}
	return out
}
