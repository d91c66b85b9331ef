package instance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/vmm"
)

// The interactive operations turn their connection to the monitor into a
// stream of guestapi frames once the monitor has answered: the client
// sends FrameStdin, FrameEOF and FrameResize; the monitor sends
// FrameStdout and FrameStderr, and for exec a last FrameExit. Attach ends
// when the VM does; exec when its process does.

// Interactive operations on the monitor's socket.
const (
	opAttach = "attach" // the application's live output, and stdin with Stdin
	opExec   = "exec"   // start Exec in the guest and stream its stdio
)

// Errors of the interactive operations, for errors.Is.
var (
	ErrNoStdin = errors.New("the instance's stdin is closed (it was not started with -i)")
	ErrNoExec  = errors.New("exec is disabled in the instance's image (built with nos build --no-exec)")
	ErrOldInit = errors.New("the instance's image was built by an older nos, whose init cannot do this: build it again with this nos")
)

func init() {
	codeErrors["no-stdin"] = ErrNoStdin
	codeErrors["no-exec"] = ErrNoExec
	codeErrors["old-init"] = ErrOldInit
}

// liveBacklog bounds what an interactive instance's output keeps for its
// first attach, made only once the VM runs.
const liveBacklog = 1 << 20

// live fans the application's output out to the attached clients.
type live struct {
	mu   sync.Mutex
	subs map[*subscriber]bool
	// keep: hold the output for the first attach (interactive
	// instances); backlog is what is held.
	keep     bool
	backlog  []guestapi.Frame
	size     int
	attached chan struct{} // closed at the first attach
}

type subscriber struct {
	ch   chan guestapi.Frame
	gone chan struct{} // closed when it fell behind and was dropped
}

func newLive() *live {
	return &live{subs: map[*subscriber]bool{}, attached: make(chan struct{})}
}

type liveWriter struct {
	l    *live
	kind byte
}

func (l *live) writer(kind byte) io.Writer { return liveWriter{l, kind} }

func (w liveWriter) Write(p []byte) (int, error) {
	f := guestapi.Frame{Kind: w.kind, Data: append([]byte(nil), p...)}
	l := w.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keep && l.size+len(p) <= liveBacklog {
		l.backlog = append(l.backlog, f)
		l.size += len(p)
	}
	for s := range l.subs {
		select {
		case s.ch <- f:
		default: // a client that does not keep up loses its stream
			delete(l.subs, s)
			close(s.gone)
		}
	}
	return len(p), nil
}

func (l *live) subscribe() *subscriber {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &subscriber{ch: make(chan guestapi.Frame, 4096+len(l.backlog)), gone: make(chan struct{})}
	for _, f := range l.backlog {
		s.ch <- f
	}
	if l.keep {
		l.keep, l.backlog, l.size = false, nil, 0
		close(l.attached)
	}
	l.subs[s] = true
	return s
}

func (l *live) unsubscribe(s *subscriber) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subs[s] {
		delete(l.subs, s)
	}
}

// awaitFirstAttach gives the client of an interactive instance that
// ended before it attached a moment to take the output held for it.
func (m *monitor) awaitFirstAttach() {
	m.live.mu.Lock()
	keep := m.live.keep
	m.live.mu.Unlock()
	if !keep {
		return
	}
	select {
	case <-m.live.attached:
		time.Sleep(100 * time.Millisecond)
	case <-time.After(5 * time.Second):
	}
}

// current is the VM of the running boot.
func (m *monitor) current() (*vmm.VM, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.vm == nil {
		return nil, ErrNotRunning
	}
	return m.vm, nil
}

// frameConn writes frames to a client, one at a time, once open.
type frameConn struct {
	mu   sync.Mutex
	w    io.Writer
	open chan struct{}
}

func (c *frameConn) send(f guestapi.Frame) error {
	<-c.open
	c.mu.Lock()
	defer c.mu.Unlock()
	return guestapi.WriteFrames(c.w, f.Kind, 0, f.Data)
}

type frameConnWriter struct {
	c    *frameConn
	kind byte
}

func (w frameConnWriter) Write(p []byte) (int, error) {
	if err := w.c.send(guestapi.Frame{Kind: w.kind, Data: p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// serveStream answers an interactive request, then streams.
func (m *monitor) serveStream(c net.Conn, r io.Reader, req request) {
	_ = c.SetDeadline(time.Time{})
	out := &frameConn{w: c, open: make(chan struct{})}
	answer := func(err error) bool {
		if err := json.NewEncoder(c).Encode(responseFor(err)); err != nil {
			m.log.Warn("answering a request", "op", req.Op, "err", err)
			return false
		}
		close(out.open)
		return err == nil
	}
	vm, err := m.current()
	if err != nil {
		answer(err)
		return
	}
	switch req.Op {
	case opAttach:
		if req.Stdin && !m.cfg.Stdin {
			answer(ErrNoStdin)
			return
		}
		if !answer(nil) {
			return
		}
		m.attach(c, r, vm, out, req.Stdin)
	case opExec:
		switch {
		case req.Exec == nil:
			answer(fmt.Errorf("%w: exec without a command", ErrBadRequest))
			return
		case m.cfg.NoExec:
			answer(ErrNoExec)
			return
		case !vm.HasIO():
			answer(ErrOldInit)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		x, err := vm.Exec(ctx, *req.Exec, frameConnWriter{out, guestapi.FrameStdout}, frameConnWriter{out, guestapi.FrameStderr})
		cancel()
		if err != nil {
			answer(err)
			return
		}
		m.log.Info("exec", "argv", req.Exec.Argv, "session", x.ID(), "tty", req.Exec.TTY)
		if !answer(nil) {
			return
		}
		go func() {
			for {
				f, err := guestapi.ReadFrame(r)
				if err != nil {
					return
				}
				_ = x.Input(f)
			}
		}()
		code, why, err := x.Wait()
		if err != nil {
			why = err.Error()
		}
		m.log.Info("exec ended", "session", x.ID(), "exit", code, "why", why)
		_ = out.send(guestapi.ExitFrame(0, code, why))
	}
}

// attach streams the application's output to the client and, with
// stdin, its input to the application, until the VM ends or the client
// goes (detaches).
func (m *monitor) attach(c net.Conn, r io.Reader, vm *vmm.VM, out *frameConn, stdin bool) {
	sub := m.live.subscribe()
	defer m.live.unsubscribe(sub)
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			f, err := guestapi.ReadFrame(r)
			if err != nil {
				return
			}
			switch f.Kind {
			case guestapi.FrameStdin, guestapi.FrameEOF:
				if stdin {
					_ = vm.Input(f)
				}
			case guestapi.FrameResize:
				if rows, cols, err := f.Size(); err == nil && m.cfg.TTY {
					m.sizeMu.Lock()
					m.rows, m.cols = rows, cols
					m.sizeMu.Unlock()
					_ = vm.Input(f)
				}
			}
		}
	}()
	for {
		select {
		case f := <-sub.ch:
			if out.send(f) != nil {
				return
			}
		case <-vm.Done():
			// Its output is all in by now.
			for {
				select {
				case f := <-sub.ch:
					if out.send(f) != nil {
						return
					}
				default:
					return
				}
			}
		case <-sub.gone:
			return
		case <-gone:
			return
		}
	}
}

// Stream is an interactive connection to an instance's monitor.
type Stream struct {
	c   net.Conn
	r   io.Reader
	wmu sync.Mutex
}

// Send sends stdin, its end or a terminal size.
func (s *Stream) Send(f guestapi.Frame) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return guestapi.WriteFrames(s.c, f.Kind, 0, f.Data)
}

// Recv returns the next frame of output; io.EOF when the stream ended.
func (s *Stream) Recv() (guestapi.Frame, error) { return guestapi.ReadFrame(s.r) }

// Close ends the stream (detaches); the instance runs on.
func (s *Stream) Close() error { return s.c.Close() }

// AttachOptions say what an attach forwards.
type AttachOptions struct {
	Stdin bool
}

// Attach streams the running application's output and, with o.Stdin,
// forwards its stdin.
func Attach(ctx context.Context, in *Instance, o AttachOptions) (*Stream, error) {
	return openStream(ctx, in, request{Op: opAttach, Stdin: o.Stdin})
}

// Exec starts a process in the running instance beside its application;
// the stream ends with its FrameExit.
func Exec(ctx context.Context, in *Instance, e guestapi.Exec) (*Stream, error) {
	if in.Config.NoExec {
		return nil, fmt.Errorf("instance %s: %w", displayName(in), ErrNoExec)
	}
	if in.Config.InitAPI < image.InitAPIInteractive {
		return nil, fmt.Errorf("instance %s: no exec: %w", displayName(in), ErrOldInit)
	}
	return openStream(ctx, in, request{Op: opExec, Exec: &e})
}

func openStream(ctx context.Context, in *Instance, req request) (*Stream, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socketPath(in.Dir, monitorSocket))
	if err != nil {
		if !lockfile.Held(filepath.Join(in.Dir, monitorLock)) {
			return nil, fmt.Errorf("instance %s: %w", displayName(in), ErrNotRunning)
		}
		return nil, fmt.Errorf("reaching the monitor of %s: %w", displayName(in), err)
	}
	_ = c.SetDeadline(time.Now().Add(40 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		c.Close()
		return nil, fmt.Errorf("talking to the monitor: %w", err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("talking to the monitor: %w", err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		c.Close()
		return nil, fmt.Errorf("talking to the monitor: %w", err)
	}
	if err := resp.err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("instance %s: %w", displayName(in), err)
	}
	_ = c.SetDeadline(time.Time{})
	return &Stream{c: c, r: br}, nil
}
