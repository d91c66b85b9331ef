package guestapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
)

// PortIO is the virtio serial port that carries the interactive streams
// (see the package documentation): the application's stdin, and the
// stdin, stdout, stderr and exit of processes started with TypeExec. A
// host wires it only for inits of InitAPIInteractive and says so in
// Config.IO; older hosts do not have it and older inits ignore it.
const PortIO = "nos.io"

// Frame kinds on PortIO.
const (
	// FrameStdin (host → guest) is input for the session's stdin.
	FrameStdin byte = 1
	// FrameStdout and FrameStderr (guest → host) are an exec session's
	// output; with a terminal everything is FrameStdout.
	FrameStdout byte = 2
	FrameStderr byte = 3
	// FrameEOF (host → guest) closes the session's stdin: the program
	// reads end of file once what came before is read (with a terminal,
	// the terminal's EOF character, Ctrl-D, is typed).
	FrameEOF byte = 4
	// FrameResize (host → guest) sets the session's terminal size: Data
	// is rows then columns, two big-endian uint16.
	FrameResize byte = 5
	// FrameExit (guest → host) ends an exec session: Data is the exit
	// code, a big-endian int32, followed by why the program could not
	// run, if it could not (UTF-8, maybe empty). It follows the
	// session's last output.
	FrameExit byte = 6
	// FrameSignal (host → guest) sends a signal to an exec session's
	// process: Data is the signal's number, one byte (the exec relay of
	// nos-runtime forwards what its caller sends it). Inits before it
	// ignore it.
	FrameSignal byte = 7
)

// SessionApp is the session of the application itself; exec sessions
// have the IDs the host gave them in Message.ID (never 0).
const SessionApp = 0

// MaxFrameData bounds one frame's data: writers split longer writes, and
// readers refuse longer frames (the guest is untrusted).
const MaxFrameData = 32 << 10

// frameHeader is kind (1 byte), session (uint32), data length (uint32).
const frameHeader = 9

// ErrFrameTooLong is a frame whose length exceeds MaxFrameData.
var ErrFrameTooLong = errors.New("frame longer than the maximum")

// Frame is one unit on PortIO, and on the monitor's interactive streams.
type Frame struct {
	Kind    byte
	Session uint32
	Data    []byte
}

// AppendFrame encodes f after b. f.Data must not exceed MaxFrameData.
func AppendFrame(b []byte, f Frame) []byte {
	b = append(b, f.Kind)
	b = binary.BigEndian.AppendUint32(b, f.Session)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Data)))
	return append(b, f.Data...)
}

// WriteFrames writes data as frames of kind for session, split at
// MaxFrameData; empty data writes one empty frame. Each frame is one
// Write, so writers that serialise Writes interleave whole frames.
func WriteFrames(w io.Writer, kind byte, session uint32, data []byte) error {
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), MaxFrameData)
		if _, err := w.Write(AppendFrame(nil, Frame{Kind: kind, Session: session, Data: data[:n]})); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// ReadFrame reads one frame. Its Data is freshly allocated.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Kind: h[0], Session: binary.BigEndian.Uint32(h[1:5])}
	n := binary.BigEndian.Uint32(h[5:9])
	if n > MaxFrameData {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrFrameTooLong, n)
	}
	f.Data = make([]byte, n)
	if _, err := io.ReadFull(r, f.Data); err != nil {
		return Frame{}, io.ErrUnexpectedEOF
	}
	return f, nil
}

// ResizeFrame is a FrameResize for session.
func ResizeFrame(session uint32, rows, cols uint16) Frame {
	d := binary.BigEndian.AppendUint16(nil, rows)
	return Frame{Kind: FrameResize, Session: session, Data: binary.BigEndian.AppendUint16(d, cols)}
}

// Size decodes a FrameResize.
func (f Frame) Size() (rows, cols uint16, err error) {
	if f.Kind != FrameResize || len(f.Data) != 4 {
		return 0, 0, errors.New("not a resize frame")
	}
	return binary.BigEndian.Uint16(f.Data), binary.BigEndian.Uint16(f.Data[2:]), nil
}

// ExitFrame is a FrameExit for session.
func ExitFrame(session uint32, code int, why string) Frame {
	d := binary.BigEndian.AppendUint32(nil, uint32(int32(code)))
	return Frame{Kind: FrameExit, Session: session, Data: append(d, why...)}
}

// SignalFrame is a FrameSignal for session.
func SignalFrame(session uint32, sig syscall.Signal) Frame {
	return Frame{Kind: FrameSignal, Session: session, Data: []byte{byte(sig)}}
}

// Signal decodes a FrameSignal: a signal from 1 to 64.
func (f Frame) Signal() (syscall.Signal, error) {
	if f.Kind != FrameSignal || len(f.Data) != 1 || f.Data[0] == 0 || f.Data[0] > 64 {
		return 0, errors.New("not a signal frame")
	}
	return syscall.Signal(f.Data[0]), nil
}

// Exit decodes a FrameExit.
func (f Frame) Exit() (code int, why string, err error) {
	if f.Kind != FrameExit || len(f.Data) < 4 {
		return 0, "", errors.New("not an exit frame")
	}
	return int(int32(binary.BigEndian.Uint32(f.Data))), string(f.Data[4:]), nil
}

// Exec is a process to start beside the application (nos exec).
type Exec struct {
	// Argv is the command; Argv[0] is found in the PATH of Env, or of the
	// application's environment.
	Argv []string `json:"argv"`
	// Env is added to the application's environment, overriding it.
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"` // "": the application's
	User       *User    `json:"user,omitempty"`       // nil: the application's
	// Stdin: the process reads FrameStdin of its session; otherwise its
	// stdin is /dev/null.
	Stdin bool `json:"stdin,omitempty"`
	// TTY gives the process a terminal of Rows × Cols as its stdin,
	// stdout, stderr and controlling terminal.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}
