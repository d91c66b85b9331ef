package guest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
	"golang.org/x/sys/unix"
)

// maxSessions bounds the interactive sessions the host can open on the
// I/O port (the application's and exec ones), so that it cannot make the
// init queue frames for sessions without bound.
const maxSessions = 64

// ioPort is the init's end of guestapi.PortIO: it routes the host's
// frames to their sessions and writes the sessions' output.
type ioPort struct {
	wmu sync.Mutex // serialises frames
	w   io.Writer

	mu       sync.Mutex
	sessions map[uint32]*ioSession
	ended    map[uint32]bool
}

// ioSession queues one session's input until its pump takes it.
type ioSession struct {
	in   chan guestapi.Frame
	done chan struct{}
}

func newIOPort(rw io.ReadWriter) *ioPort {
	p := &ioPort{w: rw, sessions: map[uint32]*ioSession{}, ended: map[uint32]bool{}}
	go p.read(rw)
	return p
}

func (p *ioPort) read(r io.Reader) {
	for {
		f, err := guestapi.ReadFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				logf("I/O port: %v", err)
			}
			return
		}
		switch f.Kind {
		case guestapi.FrameStdin, guestapi.FrameEOF, guestapi.FrameResize, guestapi.FrameSignal:
		default:
			continue // the guest's own kinds, or unknown: not for us
		}
		s := p.session(f.Session)
		if s == nil {
			continue
		}
		select {
		case s.in <- f:
		case <-s.done:
		}
	}
}

// session returns the session's queue, making it when it is new: frames
// may arrive before the exec message that starts their session. It is
// nil for a session that ended or one too many.
func (p *ioPort) session(id uint32) *ioSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.sessions[id]; ok {
		return s
	}
	if p.ended[id] || len(p.sessions) >= maxSessions {
		return nil
	}
	s := &ioSession{in: make(chan guestapi.Frame, 64), done: make(chan struct{})}
	p.sessions[id] = s
	return s
}

// end forgets a session; its late frames are dropped.
func (p *ioPort) end(id uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.sessions[id]; ok {
		close(s.done)
		delete(p.sessions, id)
	}
	p.ended[id] = true
}

// send writes data as frames; it is safe for concurrent use.
func (p *ioPort) send(kind byte, id uint32, data []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return guestapi.WriteFrames(p.w, kind, id, data)
}

func (p *ioPort) exit(id uint32, code int, why string) {
	f := guestapi.ExitFrame(id, code, why)
	if err := p.send(f.Kind, id, f.Data); err != nil {
		logf("I/O port: %v", err)
	}
}

// frameWriter writes a stream as frames of one kind.
type frameWriter struct {
	p    *ioPort
	kind byte
	id   uint32
}

func (w frameWriter) Write(b []byte) (int, error) {
	if err := w.p.send(w.kind, w.id, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// pump feeds a session's input to its program: data to stdin (dropped
// when nil), the end of input as stdin's close or, on a terminal, its EOF
// character, sizes to the terminal, signals to signal (dropped when nil).
// It returns when the session ends.
func (p *ioPort) pump(id uint32, stdin io.WriteCloser, tty *os.File, signal func(syscall.Signal)) {
	s := p.session(id)
	if s == nil {
		return
	}
	for {
		var f guestapi.Frame
		select {
		case f = <-s.in:
		case <-s.done:
			return
		}
		switch f.Kind {
		case guestapi.FrameStdin:
			if stdin != nil {
				if _, err := stdin.Write(f.Data); err != nil {
					stdin = nil // the program closed its stdin: drop the rest
				}
			}
		case guestapi.FrameEOF:
			switch {
			case stdin == nil:
			case tty != nil:
				_, _ = tty.Write([]byte{eofChar(tty)})
			default:
				_ = stdin.Close()
				stdin = nil
			}
		case guestapi.FrameResize:
			if rows, cols, err := f.Size(); err == nil && tty != nil {
				setWinsize(tty, rows, cols)
			}
		case guestapi.FrameSignal:
			if sig, err := f.Signal(); err == nil && signal != nil {
				signal(sig)
			}
		}
	}
}

// openPTY opens a pseudo-terminal pair on the init's devpts.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening a terminal: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlocking a terminal: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("naming a terminal: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("opening a terminal: %w", err)
	}
	return m, s, nil
}

func setWinsize(tty *os.File, rows, cols uint16) {
	if rows == 0 || cols == 0 {
		return
	}
	_ = unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
}

// eofChar is the terminal's EOF character (Ctrl-D unless changed).
func eofChar(tty *os.File) byte {
	t, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil || t.Cc[unix.VEOF] == 0 {
		return 4
	}
	return t.Cc[unix.VEOF]
}

// stdio is a program's standard streams as the init sets them up: the
// files the child gets, and what the init must do once it started.
type stdio struct {
	files  [3]*os.File
	close  []*os.File // the child's ends, closed in the init once it runs
	master *os.File   // the terminal's master, with tty
	stdin  io.WriteCloser
	copies sync.WaitGroup
}

// childEnds closes the init's copies of the child's files.
func (s *stdio) childEnds() {
	for _, f := range s.close {
		f.Close()
	}
}

// waitCopies waits for the output copies to drain, at most d: a program
// may leave a child holding its output open.
func (s *stdio) waitCopies(d time.Duration) {
	done := make(chan struct{})
	go func() { s.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// copyOut copies r to w until r ends (a terminal master reads EIO once
// every slave is closed).
func (s *stdio) copyOut(w io.Writer, r *os.File) {
	s.copies.Add(1)
	go func() {
		defer s.copies.Done()
		defer r.Close()
		_, _ = io.Copy(w, r)
	}()
}

// newStdio sets up a program's streams: with tty a terminal for all
// three, its output copied to stdout; otherwise stdout and stderr as
// they are when they are files, through pipes when not. withStdin gives
// the program a pipe the init writes its input to (stdio.stdin), else
// /dev/null (with tty, the input goes to the terminal).
func newStdio(tty, withStdin bool, stdout, stderr io.Writer) (*stdio, error) {
	s := &stdio{}
	if tty {
		m, sl, err := openPTY()
		if err != nil {
			return nil, err
		}
		s.files = [3]*os.File{sl, sl, sl}
		s.close = []*os.File{sl}
		s.master = m
		if withStdin {
			s.stdin = m
		}
		s.copyOut(stdout, m)
		return s, nil
	}
	if withStdin {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		s.files[0], s.stdin = r, w
		s.close = append(s.close, r)
	} else {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		s.files[0] = null
		s.close = append(s.close, null)
	}
	for i, w := range []io.Writer{stdout, stderr} {
		if f, ok := w.(*os.File); ok {
			s.files[i+1] = f
			continue
		}
		r, pw, err := os.Pipe()
		if err != nil {
			s.childEnds()
			s.abort()
			return nil, err
		}
		s.files[i+1] = pw
		s.close = append(s.close, pw)
		s.copyOut(w, r)
	}
	return s, nil
}

// abort releases the init's ends when the program did not start.
func (s *stdio) abort() {
	if s.stdin != nil && s.stdin != io.WriteCloser(s.master) {
		s.stdin.Close()
	}
	if s.master != nil {
		s.master.Close()
	}
}
