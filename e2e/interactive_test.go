package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestInteractiveStdin: nos run -i gives the app our stdin, and its end.
func TestInteractiveStdin(t *testing.T) {
	e := newEnv(t)
	e.build("interact", "./e2e/testdata/interact")
	r := e.nosInput("hello from the host\nsecond line\n", "run", "--rm", "-i", "--accel", accel, "interact", "cat")
	if r.code != 0 {
		t.Fatalf("run -i: %v", r)
	}
	if !strings.Contains(r.stdout, "hello from the host\nsecond line\n") || !strings.Contains(r.stdout, "EOF after 32 bytes, err=<nil>") {
		t.Fatalf("run -i cat: want the input back and EOF after 32 bytes, got %v", r)
	}
	// Without -i the app's stdin is /dev/null: EOF at once.
	r = e.nosInput("ignored\n", "run", "--rm", "--accel", accel, "interact", "cat")
	if r.code != 0 || !strings.Contains(r.stdout, "EOF after 0 bytes") {
		t.Fatalf("run without -i: want EOF after 0 bytes, got %v", r)
	}
}

// TestInteractiveExec: nos exec runs commands beside the app, with their
// stdio and exit codes, and attach -i needs an instance started with -i.
func TestInteractiveExec(t *testing.T) {
	e := newEnv(t)
	e.build("interact", "./e2e/testdata/interact")
	id := e.runDetached("interact", "sleep")
	waitFor(t, "the app", 3*time.Minute, func() bool { return strings.Contains(e.logs(id), "sleeping") })

	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{id, "/app/interact", "exit", "0"}, 0, "exiting 0"},
		{[]string{id, "/app/interact", "exit", "3"}, 3, "exiting 3"},
		{[]string{"-e", "PATH=/app", id, "interact", "winsize"}, 1, "no terminal"},
		// An exec session, like the app, holds no capability the image
		// does not keep (none): its bounding set is empty.
		{[]string{id, "/app/interact", "caps"}, 0, "CapBnd:\t0000000000000000\n"},
	} {
		r := e.nos(append([]string{"exec"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stdout, c.out) {
			t.Errorf("exec %v: want exit %d and %q, got %v", c.args, c.code, c.out, r)
		}
	}
	r := e.nos("exec", id, "no-such-program")
	if r.code != 127 || !strings.Contains(r.stderr, "nos: ") || !strings.Contains(r.stderr, "not found") {
		t.Errorf("exec of a missing program: want 127 and a nos: error, got %v", r)
	}
	r = e.nosInput("piped into exec\n", "exec", "-i", id, "/app/interact", "cat")
	if r.code != 0 || !strings.Contains(r.stdout, "piped into exec\n") || !strings.Contains(r.stdout, "EOF after 16 bytes") {
		t.Errorf("exec -i cat: got %v", r)
	}
	r = e.nos("exec", "-t", id, "/app/interact", "winsize")
	if r.code != 0 || !strings.Contains(r.stdout, "tty ") {
		t.Errorf("exec -t winsize: want a terminal, got %v", r)
	}
	r = e.nos("attach", "-i", id)
	if r.code == 0 || !strings.Contains(r.stderr, "-i") {
		t.Errorf("attach -i to an instance started without -i: want an error, got %v", r)
	}
}

// TestInteractiveNoExec: an image built with --no-exec refuses nos exec.
func TestInteractiveNoExec(t *testing.T) {
	e := newEnv(t)
	e.build("sealed", "./e2e/testdata/interact", "--no-exec")
	id := e.runDetached("sealed", "sleep")
	waitFor(t, "the app", 3*time.Minute, func() bool { return strings.Contains(e.logs(id), "sleeping") })
	r := e.nos("exec", id, "/app/interact", "exit", "0")
	if r.code == 0 || strings.Contains(r.stdout, "exiting") || !strings.HasPrefix(r.stderr, "nos: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "--no-exec") {
		t.Fatalf("exec in a --no-exec image: want a one-line nos: error, got %v", r)
	}
}

// openPTY opens a pseudo-terminal pair of rows × cols on the host.
func openPTY(t *testing.T, rows, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ptyRun is nos running on a terminal we hold the master of.
type ptyRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	master *os.File
	out    lockedBuffer
	done   chan struct{}
	code   int
}

func (e *nosEnv) onPTY(rows, cols uint16, args ...string) *ptyRun {
	e.t.Helper()
	cmd := exec.Command(nosBin, args...)
	cmd.Dir, cmd.Env = repoRoot, e.env
	return runOnPTY(e.t, cmd, rows, cols)
}

// runOnPTY starts cmd on a terminal of rows × cols (its controlling
// terminal, in a session of its own) that we hold the master of.
func runOnPTY(t *testing.T, cmd *exec.Cmd, rows, cols uint16) *ptyRun {
	t.Helper()
	m, s := openPTY(t, rows, cols)
	p := &ptyRun{t: t, master: m, done: make(chan struct{}), cmd: cmd}
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = s, s, s
	p.cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			p.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() {
		err := p.cmd.Wait()
		if xe, ok := err.(*exec.ExitError); ok {
			p.code = xe.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *ptyRun) waitOutput(want string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(p.out.String(), want) {
			return
		}
		select {
		case <-p.done:
			if strings.Contains(p.out.String(), want) {
				return
			}
			p.t.Fatalf("nos ended (exit %d) before printing %q; it printed:\n%s", p.code, want, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	p.t.Fatalf("no %q within %v; got:\n%s", want, timeout, p.out.String())
}

func (p *ptyRun) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("nos did not end within %v; it printed:\n%s", timeout, p.out.String())
		return -1
	}
}

func (p *ptyRun) resize(rows, cols uint16) {
	p.t.Helper()
	if err := unix.IoctlSetWinsize(int(p.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		p.t.Fatal(err)
	}
}

// TestInteractiveTTY: nos run -it gives the app a terminal of our size,
// forwards size changes, passes Ctrl-C as a key, and Ctrl-P Ctrl-Q
// detaches, leaving the instance running for attach.
func TestInteractiveTTY(t *testing.T) {
	e := newEnv(t)
	e.build("interact", "./e2e/testdata/interact")
	p := e.onPTY(33, 101, "run", "--rm", "-t", "--accel", accel, "interact", "winsize")
	p.waitOutput("tty 33x101", 3*time.Minute)
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("run -t winsize: exit %d:\n%s", code, p.out.String())
	}

	p = e.onPTY(24, 80, "run", "-it", "--name", "lines", "--accel", accel, "interact", "lines")
	time.Sleep(time.Second)
	p.master.Write([]byte("one\r"))
	p.waitOutput(`got "one" size 24x80`, 3*time.Minute)
	p.resize(40, 120)
	time.Sleep(500 * time.Millisecond)
	p.master.Write([]byte("two\r"))
	p.waitOutput(`got "two" size 40x120`, time.Minute)
	// Ctrl-P Ctrl-Q: nos ends, the instance runs on.
	p.master.Write([]byte{0x10, 0x11})
	if code := p.wait(time.Minute); code != 0 {
		t.Fatalf("detach: exit %d:\n%s", code, p.out.String())
	}
	t.Cleanup(func() { e.nos("rm", "-f", "lines") })
	if st := e.inspect("lines").State.Status; st != "running" {
		t.Fatalf("after detaching, want the instance running, got %s", st)
	}
	a := e.onPTY(24, 80, "attach", "-i", "lines")
	time.Sleep(time.Second)
	a.master.Write([]byte("quit\r"))
	a.waitOutput(`got "quit"`, time.Minute)
	if code := a.wait(time.Minute); code != 0 {
		t.Fatalf("attach: exit %d:\n%s", code, a.out.String())
	}
}

// TestInteractivePythonREPL: nos run -it gives python3 a working REPL:
// lines are evaluated, Ctrl-C interrupts a loop through the terminal
// (the app gets SIGINT, not nos), Ctrl-D ends it.
func TestInteractivePythonREPL(t *testing.T) {
	python := needProgram(t, "/usr/bin/python3")
	needProgram(t, "mkfs.erofs")
	out, err := command(t, time.Minute, python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))")
	stdlib := strings.TrimSpace(out)
	if err != nil || stdlib == "" {
		t.Fatalf("finding python3's standard library: %v %q", err, out)
	}
	e := newEnv(t)
	e.withBlkKernel()
	e.buildTree("-t", "py", "--add", stdlib, "--entrypoint", `["/usr/bin/python3"]`, python)

	p := e.onPTY(24, 80, "run", "--rm", "-it", "--accel", accel, "py")
	p.waitOutput(">>> ", 3*time.Minute)
	p.master.Write([]byte("print(6*7)\r"))
	p.waitOutput("42\r\n>>> ", time.Minute)
	p.master.Write([]byte("import os; os.get_terminal_size()\r"))
	p.waitOutput("columns=80, lines=24", time.Minute)
	p.master.Write([]byte("while True: pass\r\r"))
	time.Sleep(2 * time.Second)
	p.master.Write([]byte{0x03})
	p.waitOutput("KeyboardInterrupt\r\n>>> ", time.Minute)
	p.master.Write([]byte{0x04})
	// CPython 3.11 ends by SIGINT (130) once a KeyboardInterrupt reached
	// its REPL, on a host's terminal too.
	if code := p.wait(time.Minute); code != 0 && code != 130 {
		t.Fatalf("python REPL after Ctrl-D: exit %d:\n%s", code, p.out.String())
	}
}
