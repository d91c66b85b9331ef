package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosproject/nos/internal/buildstamp"
	"github.com/nosproject/nos/internal/home"

	"github.com/nosproject/nos/kernel"
)

var (
	binDir     string // holds nos and nos-init, side by side as installed
	nosBin     string
	repoRoot   string
	kernelPath string
	// accel is the accelerator tests boot with; TCG unless NOS_TEST_ACCEL says.
	accel = "tcg"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // boot tests skip themselves in -short mode
	}
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	os.RemoveAll(binDir)
	os.Exit(code)
}

func setup() (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return 1, err
	}
	repoRoot = filepath.Dir(wd)
	if binDir, err = os.MkdirTemp("", "nos-e2e-bin-"); err != nil {
		return 1, err
	}
	nosBin = filepath.Join(binDir, "nos")
	// As `make build` does: nos and nos-monitor with one build stamp, so
	// that every instance of the tests runs under nos-monitor.
	stamp := "-ldflags=" + buildstamp.Flag(fmt.Sprintf("e2e-%d", time.Now().UnixNano()))
	for _, b := range []struct {
		out, pkg string
		flags    []string
	}{
		{nosBin, "./cmd/nos", []string{stamp}},
		{filepath.Join(binDir, "nos-monitor"), "./cmd/nos-monitor", []string{stamp}},
		{filepath.Join(binDir, "nos-init"), "./cmd/nos-init", nil},
	} {
		cmd := exec.Command("go", append(append([]string{"build", "-trimpath"}, b.flags...), "-o", b.out, b.pkg)...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 1, fmt.Errorf("building %s: %v\n%s", b.pkg, err, out)
		}
	}
	if a := os.Getenv("NOS_TEST_ACCEL"); a != "" {
		accel = a
	}
	if kernelPath = os.Getenv("NOS_TEST_KERNEL"); kernelPath != "" {
		return 0, nil
	}
	l, err := home.Default()
	if err != nil {
		return 1, err
	}
	k, err := kernel.Chain{kernel.Cache{Dir: l.FetchedKernels()}, kernel.Host{}}.Find(context.Background())
	if err != nil {
		return 1, fmt.Errorf("the integration tests boot a real kernel: %w (run `make deps`, or set NOS_TEST_KERNEL)", err)
	}
	kernelPath = k.Path
	return 0, nil
}

// needVM skips boot tests in -short mode (make test-unit); make test runs them.
func needVM(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM; not in -short mode")
	}
}

// nosEnv is one nos home directory and the environment nos runs with.
type nosEnv struct {
	t    *testing.T
	home string
	env  []string
	// netns, when set, is the network namespace nos runs in (ip netns
	// exec): the network tests make bridges only there.
	netns string
	// asUser, when set, runs nos as that user (setpriv), not as root.
	asUser []string
}

func newEnv(t *testing.T) *nosEnv {
	t.Helper()
	needVM(t)
	home := t.TempDir()
	return &nosEnv{t: t, home: home, env: append(envWithout("NOS_HOME"), "NOS_HOME="+home)}
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// nos runs the nos binary to completion.
func (e *nosEnv) nos(args ...string) result {
	e.t.Helper()
	return e.nosWithin(3*time.Minute, args...)
}

// nosWithin runs the nos binary to completion, killing it after timeout.
func (e *nosEnv) nosWithin(timeout time.Duration, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nosBin, args...)
	if e.netns != "" {
		cmd = exec.CommandContext(ctx, "ip", append(append(append([]string{"netns", "exec", e.netns}, e.asUser...), nosBin), args...)...)
	}
	cmd.Dir = repoRoot
	cmd.Env = e.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var xe *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &xe):
		r.code = xe.ExitCode()
	default:
		e.t.Fatalf("nos %v: %v", args, err)
	}
	return r
}

// build builds src as name and returns the digest.
func (e *nosEnv) build(name, src string, extra ...string) string {
	e.t.Helper()
	args := append([]string{"build", "--kernel", kernelPath, "-t", name}, extra...)
	r := e.nos(append(args, src)...)
	if r.code != 0 {
		e.t.Fatalf("nos build %s: %v", src, r)
	}
	return strings.TrimSpace(r.stdout)
}

// run boots an image in the foreground and waits for it.
func (e *nosEnv) run(args ...string) result {
	e.t.Helper()
	return e.nos(append([]string{"run", "--accel", accel}, args...)...)
}

// started is a `nos run` in progress.
type started struct {
	cmd      *exec.Cmd
	out, err lockedBuffer
	done     chan struct{}
	code     int
}

func (e *nosEnv) start(args ...string) *started {
	e.t.Helper()
	s := &started{done: make(chan struct{})}
	s.cmd = exec.Command(nosBin, append([]string{"run", "--accel", accel}, args...)...)
	s.cmd.Dir = repoRoot
	s.cmd.Env = e.env
	s.cmd.Stdout = &s.out
	s.cmd.Stderr = &s.err
	if err := s.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		err := s.cmd.Wait()
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			s.code = xe.ExitCode()
		}
		close(s.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

func (s *started) output() (string, string) {
	return s.out.String(), s.err.String()
}

// waitOutput waits until stdout contains want.
func (s *started) waitOutput(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if out, _ := s.output(); strings.Contains(out, want) {
			return
		}
		select {
		case <-s.done:
			out, errs := s.output()
			t.Fatalf("nos run ended (exit %d) before printing %q\nstdout:\n%s\nstderr:\n%s", s.code, want, out, errs)
		case <-time.After(50 * time.Millisecond):
		}
	}
	out, errs := s.output()
	t.Fatalf("no %q within %v\nstdout:\n%s\nstderr:\n%s", want, timeout, out, errs)
}

func (s *started) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
		return s.code
	case <-time.After(timeout):
		out, errs := s.output()
		t.Fatalf("nos run did not end within %v\nstdout:\n%s\nstderr:\n%s", timeout, out, errs)
		return -1
	}
}
