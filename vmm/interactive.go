package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/nosproject/nos/guestapi"
)

// ErrNoIO is a request for the interactive streams of a VM booted
// without them (an image whose init predates them).
var ErrNoIO = errors.New("the VM has no interactive streams")

// InteractiveChannels are GuestChannels and the interactive streams'
// port (guestapi.PortIO), for inits of image.InitAPIInteractive.
func InteractiveChannels() []Channel {
	return append(GuestChannels(), Channel{Name: guestapi.PortIO})
}

// MuxedChannels is the one channel of inits of image.InitAPIMux
// (guestapi.PortMux), which carries what GuestChannels and
// InteractiveChannels carry.
func MuxedChannels() []Channel {
	return []Channel{{Name: guestapi.PortMux}}
}

// Muxed reports whether m's guest talks over guestapi.PortMux.
func (m Machine) Muxed() bool {
	return len(m.Channels) == 1 && m.Channels[0].Name == guestapi.PortMux
}

// HasIO reports whether m's guest has the interactive streams.
func (m Machine) HasIO() bool { return len(m.Channels) == 4 || m.Muxed() }

// ioMux is the host's end of guestapi.PortIO.
type ioMux struct {
	conn net.Conn
	wmu  sync.Mutex

	mu       sync.Mutex
	next     uint32
	sessions map[uint32]*ExecSession
	closed   bool
}

// ExecSession is a process started in the guest by Exec.
type ExecSession struct {
	id             uint32
	mux            *ioMux
	stdout, stderr io.Writer
	done           chan struct{}
	code           int
	why            string
	err            error
}

// ID is the session's number on the I/O port.
func (x *ExecSession) ID() uint32 { return x.id }

// Done is closed when the session has ended.
func (x *ExecSession) Done() <-chan struct{} { return x.done }

// Wait returns the process's exit code and, when it could not run, why;
// ErrVMExited when the VM ended first.
func (x *ExecSession) Wait() (code int, why string, err error) {
	<-x.done
	return x.code, x.why, x.err
}

// Input sends stdin, its end or a terminal size to the session.
func (x *ExecSession) Input(f guestapi.Frame) error {
	f.Session = x.id
	return x.mux.write(f)
}

func (m *ioMux) write(f guestapi.Frame) error {
	switch f.Kind {
	case guestapi.FrameStdin, guestapi.FrameEOF, guestapi.FrameResize:
	default:
		return fmt.Errorf("frame kind %d is not the host's to send", f.Kind)
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return guestapi.WriteFrames(m.conn, f.Kind, f.Session, f.Data)
}

// read routes the guest's frames until the port ends, then ends every
// session still open.
func (m *ioMux) read() {
	for {
		f, err := guestapi.ReadFrame(m.conn)
		if err != nil {
			break
		}
		m.mu.Lock()
		x := m.sessions[f.Session]
		m.mu.Unlock()
		if x == nil {
			continue // late, or not ours
		}
		switch f.Kind {
		case guestapi.FrameStdout:
			_, _ = x.stdout.Write(f.Data)
		case guestapi.FrameStderr:
			_, _ = x.stderr.Write(f.Data)
		case guestapi.FrameExit:
			code, why, err := f.Exit()
			if err != nil {
				continue
			}
			m.finish(x, code, why, nil)
		}
	}
	m.mu.Lock()
	m.closed = true
	var open []*ExecSession
	for _, x := range m.sessions {
		open = append(open, x)
	}
	m.mu.Unlock()
	for _, x := range open {
		m.finish(x, ExitKilled, "", ErrVMExited)
	}
}

func (m *ioMux) finish(x *ExecSession, code int, why string, err error) {
	m.mu.Lock()
	_, ok := m.sessions[x.id]
	delete(m.sessions, x.id)
	m.mu.Unlock()
	if ok {
		x.code, x.why, x.err = code, why, err
		close(x.done)
	}
}

// newSession registers a session before its exec message is sent, so
// that no frame of it is missed.
func (m *ioMux) newSession(stdout, stderr io.Writer) (*ExecSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrVMExited
	}
	m.next++
	x := &ExecSession{id: m.next, mux: m, stdout: stdout, stderr: stderr, done: make(chan struct{})}
	m.sessions[x.id] = x
	return x, nil
}

type execRequest struct {
	msg   guestapi.Message
	reply chan error
}

// HasIO says whether the VM has the interactive streams.
func (v *VM) HasIO() bool { return v.io != nil }

// Input sends stdin, its end or a terminal size to the application
// (session guestapi.SessionApp).
func (v *VM) Input(f guestapi.Frame) error {
	if v.io == nil {
		return ErrNoIO
	}
	f.Session = guestapi.SessionApp
	return v.io.write(f)
}

// Exec starts a process in the guest beside the application; its output
// goes to stdout and stderr (the writers are called from one goroutine,
// in order) until the session ends.
func (v *VM) Exec(ctx context.Context, e guestapi.Exec, stdout, stderr io.Writer) (*ExecSession, error) {
	if v.io == nil {
		return nil, ErrNoIO
	}
	x, err := v.io.newSession(stdout, stderr)
	if err != nil {
		return nil, err
	}
	req := execRequest{msg: guestapi.Message{Type: guestapi.TypeExec, ID: int(x.id), Exec: &e}, reply: make(chan error, 1)}
	select {
	case v.execs <- req:
		err = <-req.reply
	case <-v.done:
		err = ErrVMExited
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		v.io.finish(x, 0, "", err)
		return nil, err
	}
	return x, nil
}
