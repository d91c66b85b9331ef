package ociruntime

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/guestapi"
)

// exec runs another process in a running container, as podman exec and
// docker exec (through containerd's shim) ask:
//
//	exec --process FILE [--detach] [--pid-file P] [--console-socket S] ID
//	exec [-t] [--cwd D] [-e K=V]... [-u UID[:GID]] ID COMMAND [ARGS...]
//
// FILE is a runtime-spec Process (args, env, cwd, user, terminal,
// consoleSize). The process runs in the guest beside the app, started by
// nos-init (a TypeExec session on the nos.io port), with the app's root,
// namespaces and limits: the VM's. Its stdio is the runtime's
// descriptors, or with process.terminal a terminal whose master goes over
// --console-socket, as create's does.
//
// The pid in --pid-file (and, with --detach, the process that stays
// after exec returns) is the exec helper: a child of exec, in a session of
// its own, that relays the process's stdio between its descriptors and
// the supervisor and exits with the process's exit code, so that conmon
// or the shim, which reap it, get that code. Without --detach exec itself
// relays and exits with the code.

// execVerb is the hidden command the exec helper runs as.
const execVerb = "__exec"

// execFlags are exec's options.
type execFlags struct {
	process, pidFile, consoleSocket string
	detach, tty                     bool
	cwd, user                       string
	env                             []string
	id                              string
	argv                            []string
}

func parseExec(args []string) (execFlags, error) {
	var f execFlags
	fs := pflag.NewFlagSet("exec", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetInterspersed(false) // flags after ID belong to the command
	fs.StringVarP(&f.process, "process", "p", "", "a runtime-spec process.json")
	fs.BoolVarP(&f.detach, "detach", "d", false, "return once the process runs")
	fs.StringVar(&f.pidFile, "pid-file", "", "where the exec helper's pid goes")
	fs.StringVar(&f.consoleSocket, "console-socket", "", "unix socket for the pty master")
	fs.BoolVarP(&f.tty, "tty", "t", false, "a terminal (without --process)")
	fs.StringVar(&f.cwd, "cwd", "", "working directory (without --process)")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "KEY=VALUE (without --process)")
	fs.StringVarP(&f.user, "user", "u", "", "UID[:GID] (without --process)")
	// runc's other exec flags: accepted, and meaningless for a VM's
	// process or left to the guest's init.
	fs.StringArray("cap", nil, "ignored: the process gets the app's capabilities")
	fs.StringArrayP("additional-gids", "g", nil, "ignored")
	fs.Bool("no-new-privs", false, "ignored")
	fs.Bool("ignore-paused", false, "ignored: a nos VM is never paused")
	fs.String("process-label", "", "ignored")
	fs.String("apparmor", "", "ignored")
	fs.String("cgroup", "", "ignored")
	fs.Int("preserve-fds", 0, "extra descriptors (not passed to the VM)")
	long := []string{"process", "detach", "pid-file", "console-socket", "tty", "cwd", "env", "user", "cap", "additional-gids", "no-new-privs", "ignore-paused", "process-label", "apparmor", "cgroup", "preserve-fds"}
	if err := fs.Parse(normalizeLong(args, long...)); err != nil {
		return f, usageError{"exec: " + err.Error()}
	}
	if fs.NArg() < 1 {
		return f, usageError{"exec takes a container id"}
	}
	f.id, f.argv = fs.Arg(0), fs.Args()[1:]
	switch {
	case f.process != "" && len(f.argv) > 0:
		return f, usageError{"exec: --process and a command both given: use one"}
	case f.process == "" && len(f.argv) == 0:
		return f, usageError{"exec: no command: give --process FILE or a command after the id"}
	}
	return f, checkID(f.id)
}

// execProcess turns the flags into the process to run and whether it
// has a terminal, with its size.
func execProcess(f execFlags) (guestapi.Exec, error) {
	var p specs.Process
	if f.process != "" {
		b, _, err := readSmallFile(f.process, maxConfigSize)
		if err != nil {
			return guestapi.Exec{}, fmt.Errorf("exec: --process: %w", err)
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return guestapi.Exec{}, fmt.Errorf("exec: --process %s: %w", f.process, err)
		}
	} else {
		p = specs.Process{Args: f.argv, Env: f.env, Cwd: f.cwd, Terminal: f.tty}
		if f.user != "" {
			u, g, hasGID := strings.Cut(f.user, ":")
			uid, err := strconv.ParseUint(u, 10, 32)
			if err != nil {
				return guestapi.Exec{}, usageError{fmt.Sprintf("exec: --user %q: want UID[:GID], numeric", f.user)}
			}
			p.User.UID = uint32(uid)
			if hasGID {
				gid, err := strconv.ParseUint(g, 10, 32)
				if err != nil {
					return guestapi.Exec{}, usageError{fmt.Sprintf("exec: --user %q: want UID[:GID], numeric", f.user)}
				}
				p.User.GID = uint32(gid)
			}
		}
	}
	return ExecOf(p)
}

// ExecOf is the guest's exec request for a runtime-spec process.
func ExecOf(p specs.Process) (guestapi.Exec, error) {
	if len(p.Args) == 0 || p.Args[0] == "" {
		return guestapi.Exec{}, fmt.Errorf("exec: process.args is empty")
	}
	for _, a := range p.Args {
		if strings.ContainsRune(a, 0) {
			return guestapi.Exec{}, fmt.Errorf("exec: process.args has a NUL byte")
		}
	}
	if p.Cwd != "" && (!strings.HasPrefix(p.Cwd, "/") || strings.ContainsRune(p.Cwd, 0)) {
		return guestapi.Exec{}, fmt.Errorf("exec: process.cwd %q must be an absolute path", p.Cwd)
	}
	for _, e := range p.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" || strings.ContainsRune(e, 0) {
			return guestapi.Exec{}, fmt.Errorf("exec: process.env entry %q is not KEY=VALUE", e)
		}
	}
	u := guestapi.User{UID: p.User.UID, GID: p.User.GID}
	for _, g := range p.User.AdditionalGids {
		if g != u.GID {
			u.Groups = append(u.Groups, g)
		}
	}
	x := guestapi.Exec{Argv: p.Args, Env: p.Env, WorkingDir: p.Cwd, User: &u, TTY: p.Terminal}
	if cs := p.ConsoleSize; cs != nil && cs.Height > 0 && cs.Width > 0 {
		x.Rows, x.Cols = uint16(min(cs.Height, 65535)), uint16(min(cs.Width, 65535))
	}
	return x, nil
}

func cmdExec(st store, args []string, stdio Stdio) (int, error) {
	f, err := parseExec(args)
	if err != nil {
		return 0, err
	}
	x, err := execProcess(f)
	if err != nil {
		return 0, err
	}
	switch {
	case x.TTY && f.consoleSocket == "":
		return 0, usageError{"exec: process.terminal is true: --console-socket is needed for the terminal's master"}
	case !x.TTY && f.consoleSocket != "":
		return 0, usageError{"exec: --console-socket without process.terminal"}
	}
	r, err := st.read(f.id)
	if err != nil {
		return 0, err
	}
	if s := r.current(); s != specs.StateRunning {
		return 0, fmt.Errorf("cannot exec in container %s: it is %s, not running", f.id, s)
	}
	var tty *os.File
	if x.TTY {
		if tty, err = newConsole(f.consoleSocket, x.Rows, x.Cols); err != nil {
			return 0, err
		}
		defer tty.Close()
		if rows, cols := termSize(tty); rows > 0 && cols > 0 {
			x.Rows, x.Cols = rows, cols
		}
	}
	// With a terminal the process reads it; else a pipe, FIFO or socket
	// as stdin is the engine's -i.
	x.Stdin = x.TTY || isStreamInput(stdio.In)
	if tty != nil {
		// The helper starts the process: the engines size the terminal
		// only once exec has returned (conmon, the shim), and the
		// process should start with that size.
		pid, err := startExecHelper(st, f.id, nil, &x, stdio, tty)
		if err != nil {
			return 0, err
		}
		return finishExec(f, pid)
	}
	c, br, err := openExec(st, f.id, x)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if !f.detach {
		if f.pidFile != "" {
			if err := writePidFile(f.pidFile, os.Getpid()); err != nil {
				return 0, err
			}
		}
		return relayExec(c, br, stdio, false), nil
	}
	pid, err := startExecHelper(st, f.id, c, nil, stdio, nil)
	if err != nil {
		return 0, err
	}
	return finishExec(f, pid)
}

// finishExec writes the helper's pid and, without --detach, waits for it
// and returns its exit code.
func finishExec(f execFlags, pid int) (int, error) {
	if f.pidFile != "" {
		if err := writePidFile(f.pidFile, pid); err != nil {
			_ = unix.Kill(pid, unix.SIGKILL)
			return 0, err
		}
	}
	if !f.detach {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
			return 0, err
		}
		return exitCodeOf(ws), nil
	}
	return 0, nil
}

func exitCodeOf(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// openExec asks the supervisor to start x; once it runs, the connection
// carries its frames.
func openExec(st store, id string, x guestapi.Exec) (*net.UnixConn, *bufio.Reader, error) {
	c, err := net.DialTimeout("unix", socketPath(st.dir(id)), 5*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: its supervisor does not answer: %w", id, err)
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := json.NewEncoder(c).Encode(request{Op: "exec", Exec: &x}); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	var rep reply
	if err == nil {
		err = json.Unmarshal(line, &rep)
	}
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("container %s: no answer from its supervisor: %w", id, err)
	}
	if rep.Error != "" {
		c.Close()
		return nil, nil, fmt.Errorf("container %s: %s", id, rep.Error)
	}
	_ = c.SetDeadline(time.Time{})
	return c.(*net.UnixConn), br, nil
}

// startExecHelper starts the exec helper and returns its pid. Either c
// is the started process's stream, the helper's descriptor 3; or (with
// tty) x is the process to start, sent as JSON on a pipe that is the
// helper's descriptor 3, with the container's root and id as arguments:
// the terminal is then the helper's stdio and controlling terminal (it
// leads tty's session and hears SIGWINCH).
func startExecHelper(st store, id string, c *net.UnixConn, x *guestapi.Exec, stdio Stdio, tty *os.File) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	var fd3, w *os.File
	if c != nil {
		if fd3, err = c.File(); err != nil {
			return 0, err
		}
	} else if fd3, w, err = os.Pipe(); err != nil {
		return 0, err
	}
	defer fd3.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{Name, execVerb},
		Dir:         "/",
		Stdin:       stdio.In,
		Stdout:      stdio.Out,
		Stderr:      stdio.Err,
		ExtraFiles:  []*os.File{fd3},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.Args = append(cmd.Args, "tty", st.root, id)
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, 0
	}
	if err := cmd.Start(); err != nil {
		if w != nil {
			w.Close()
		}
		return 0, fmt.Errorf("starting the exec helper: %w", err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release() // our parent (conmon, the shim) reaps it
	if w != nil {
		err := json.NewEncoder(w).Encode(x)
		w.Close()
		if err != nil {
			_ = unix.Kill(pid, unix.SIGKILL)
			return 0, fmt.Errorf("starting the exec helper: %w", err)
		}
	}
	return pid, nil
}

// ttyWait is how long the helper waits for the engine to size a terminal
// that has no size before it starts the process anyway.
const ttyWait = 3 * time.Second

// execHelper is the helper's body: descriptor 3 is the process's stream,
// or with "tty ROOT ID" the process to start on the terminal that is its
// stdio, once the terminal has a size.
func execHelper(args []string, stdio Stdio) int {
	fd3 := os.NewFile(3, "exec")
	if len(args) == 3 && args[0] == "tty" {
		var x guestapi.Exec
		err := json.NewDecoder(io.LimitReader(fd3, maxConfigSize)).Decode(&x)
		fd3.Close()
		if err != nil {
			fmt.Fprintf(stdio.Err, "%s: exec helper: %v\r\n", Name, err)
			return 255
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		deadline := time.Now().Add(ttyWait)
		for {
			if r, c := termSize(stdio.In); r > 0 && c > 0 {
				x.Rows, x.Cols = r, c
				break
			}
			if time.Now().After(deadline) {
				break
			}
			select {
			case <-winch:
			case <-time.After(20 * time.Millisecond):
			}
		}
		signal.Stop(winch)
		conn, br, err := openExec(store{args[1]}, args[2], x)
		if err != nil {
			fmt.Fprintf(stdio.Err, "%s: exec: %v\r\n", Name, err)
			return 255
		}
		defer conn.Close()
		return relayExec(conn, br, stdio, true)
	}
	c, err := net.FileConn(fd3)
	if err != nil {
		fmt.Fprintf(stdio.Err, "%s: exec helper: %v\n", Name, err)
		return 255
	}
	defer c.Close()
	return relayExec(c, bufio.NewReader(c), stdio, false)
}

// relayExec copies stdin (when the process reads it) to the process and
// its output to stdout and stderr, until its exit frame; it returns the
// exit code (255 when the connection broke first). Signals to the relay
// go to the process; with tty, terminal resizes do too.
func relayExec(c net.Conn, br *bufio.Reader, stdio Stdio, tty bool) int {
	var wmu sync.Mutex
	send := func(f guestapi.Frame) error {
		wmu.Lock()
		defer wmu.Unlock()
		return guestapi.WriteFrames(c, f.Kind, 0, f.Data)
	}
	signal.Ignore(syscall.SIGPIPE)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)
	var size [2]uint16
	if tty {
		size[0], size[1] = termSize(stdio.In)
	}
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGWINCH {
				if !tty {
					continue
				}
				r, cl := termSize(stdio.In)
				if r == 0 || cl == 0 || [2]uint16{r, cl} == size {
					continue
				}
				size = [2]uint16{r, cl}
				_ = send(guestapi.ResizeFrame(0, r, cl))
				continue
			}
			_ = send(guestapi.SignalFrame(0, sig.(syscall.Signal)))
		}
	}()
	if tty || isStreamInput(stdio.In) {
		go func() {
			buf := make([]byte, guestapi.MaxFrameData)
			for {
				n, err := stdio.In.Read(buf)
				if n > 0 && send(guestapi.Frame{Kind: guestapi.FrameStdin, Data: append([]byte(nil), buf[:n]...)}) != nil {
					return
				}
				if err != nil {
					if !tty {
						_ = send(guestapi.Frame{Kind: guestapi.FrameEOF})
					}
					return
				}
			}
		}()
	}
	for {
		f, err := guestapi.ReadFrame(br)
		if err != nil {
			fmt.Fprintf(stdio.Err, "%s: exec: the container's supervisor went away: %v\n", Name, err)
			return 255
		}
		switch f.Kind {
		case guestapi.FrameStdout:
			_, _ = stdio.Out.Write(f.Data)
		case guestapi.FrameStderr:
			_, _ = stdio.Err.Write(f.Data)
		case guestapi.FrameExit:
			code, why, err := f.Exit()
			if err != nil {
				return 255
			}
			if why != "" && code >= guestapi.ExitCannotExecute {
				fmt.Fprintf(stdio.Err, "%s: exec: %s\n", Name, why)
			}
			return code
		}
	}
}

// execSession serves an exec request on the supervisor's socket: c
// becomes the process's stream. Called from serve.
func (s *supervisor) execSession(c net.Conn, br *bufio.Reader, x *guestapi.Exec) {
	answer := func(err error) bool {
		var rep reply
		if err != nil {
			rep.Error = err.Error()
		}
		return json.NewEncoder(c).Encode(rep) == nil && err == nil
	}
	s.mu.Lock()
	vm := s.vm
	s.mu.Unlock()
	switch {
	case x == nil || len(x.Argv) == 0:
		answer(fmt.Errorf("exec without a command"))
		return
	case vm == nil:
		answer(fmt.Errorf("the container is not running"))
		return
	case !vm.HasIO():
		answer(fmt.Errorf("the container's VM has no exec channel"))
		return
	}
	var wmu sync.Mutex
	out := func(kind byte) io.Writer {
		return writerFunc(func(p []byte) (int, error) {
			wmu.Lock()
			defer wmu.Unlock()
			return len(p), guestapi.WriteFrames(c, kind, 0, p)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	sess, err := vm.Exec(ctx, *x, out(guestapi.FrameStdout), out(guestapi.FrameStderr))
	cancel()
	if err != nil {
		s.log.Error("exec", "argv", x.Argv, "err", err)
		answer(err)
		return
	}
	s.log.Info("exec", "argv", x.Argv, "session", sess.ID(), "tty", x.TTY)
	if !answer(nil) {
		return
	}
	_ = c.SetDeadline(time.Time{})
	go func() {
		for {
			f, err := guestapi.ReadFrame(br)
			if err != nil {
				// The relay went away (its caller was killed): the
				// process loses its stdin, as with a closed pipe.
				_ = sess.Input(guestapi.Frame{Kind: guestapi.FrameEOF})
				return
			}
			_ = sess.Input(f)
		}
	}()
	code, why, err := sess.Wait()
	if err != nil {
		why = err.Error()
	}
	s.log.Info("exec ended", "session", sess.ID(), "exit", code, "why", why)
	wmu.Lock()
	_ = guestapi.WriteFrames(c, guestapi.FrameExit, 0, guestapi.ExitFrame(0, code, why).Data)
	wmu.Unlock()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
