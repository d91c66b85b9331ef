package guest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// children are the exec sessions' processes, whose exit statuses reap
// hands over: the init reaps every child, and must not lose theirs.
var children = struct {
	mu sync.Mutex
	m  map[int]chan int
}{m: map[int]chan int{}}

// errNoExec is why an image built with --no-exec refuses nos exec.
var errNoExec = errors.New("exec is disabled in this image (built with nos build --no-exec)")

// execer starts the host's exec sessions beside the application.
type execer struct {
	cfg   *guestapi.Config
	io    *ioPort
	spawn *spawner
}

// start runs one exec session to its end, reporting it with an exit frame.
func (x *execer) start(m guestapi.Message) {
	id := uint32(m.ID)
	if id == guestapi.SessionApp || m.Exec == nil {
		logf("exec: bad request (session %d)", m.ID)
		return
	}
	defer x.io.end(id)
	code, err := x.run(id, m.Exec)
	why := ""
	if err != nil {
		why = err.Error()
		logf("exec %q: %v", m.Exec.Argv, err)
	}
	x.io.exit(id, code, why)
}

func (x *execer) run(id uint32, e *guestapi.Exec) (int, error) {
	if x.cfg.NoExec {
		return guestapi.ExitCannotExecute, errNoExec
	}
	if len(e.Argv) == 0 {
		return guestapi.ExitCannotExecute, errors.New("no command to run")
	}
	env := mergeEnv(x.cfg.Env, e.Env)
	path, err := lookPath(e.Argv[0], env)
	if err != nil {
		return execExitCode(err), err
	}
	dir := e.WorkingDir
	if dir == "" {
		dir = x.cfg.WorkingDir
	}
	if dir == "" {
		dir = "/"
	}
	user := x.cfg.User
	if e.User != nil {
		user = e.User
	}
	sio, err := newStdio(e.TTY, e.Stdin,
		frameWriter{x.io, guestapi.FrameStdout, id}, frameWriter{x.io, guestapi.FrameStderr, id})
	if err != nil {
		return guestapi.ExitCannotExecute, err
	}
	attr := procAttr(&guestapi.Config{User: user, Caps: x.cfg.Caps})
	if e.TTY {
		setWinsize(sio.master, e.Rows, e.Cols)
		attr.Setctty, attr.Ctty = true, 0
	}
	exited := make(chan int, 1)
	// Under the lock, so that reap cannot collect the child before it is
	// known.
	children.mu.Lock()
	p, err := x.spawn.start(path, e.Argv, &os.ProcAttr{Dir: dir, Env: env, Files: sio.files[:], Sys: attr})
	if err == nil {
		children.m[p.Pid] = exited
		_ = p.Release()
	}
	children.mu.Unlock()
	sio.childEnds()
	if err != nil {
		sio.abort()
		return execExitCode(err), fmt.Errorf("starting %s: %w", e.Argv[0], err)
	}
	// Signals stop once the process is reaped: only the instant between
	// the reap and gone being set could reach a reused pid.
	pid := p.Pid
	var mu sync.Mutex
	gone := false
	go x.io.pump(id, sio.stdin, sio.master, func(sig syscall.Signal) {
		mu.Lock()
		defer mu.Unlock()
		if !gone {
			_ = syscall.Kill(pid, sig)
		}
	})
	code := <-exited
	mu.Lock()
	gone = true
	mu.Unlock()
	sio.waitCopies(2 * time.Second)
	if sio.stdin != nil && sio.master == nil {
		sio.stdin.Close()
	}
	return code, nil
}

// mergeEnv is base with over's KEY=VALUE pairs added or replacing.
func mergeEnv(base, over []string) []string {
	env := append([]string(nil), base...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, b := range env {
			if bk, _, _ := strings.Cut(b, "="); bk == k {
				env[i], replaced = kv, true
			}
		}
		if !replaced {
			env = append(env, kv)
		}
	}
	return env
}
