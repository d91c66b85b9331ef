package ociruntime

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// The container's terminal (process.terminal, create --console-socket).
// As runc does, create makes a pseudo-terminal on the host and sends its
// master over the engine's unix socket (one message, the descriptor in
// SCM_RIGHTS); the engine (conmon, containerd's shim) copies between the
// master and the user. The slave is the supervisor's stdin, stdout,
// stderr and controlling terminal. The app's real terminal is the one
// nos-init makes in the guest (guestapi.Config.TTY): the host slave is
// set raw, so it only carries bytes, and the guest's terminal does the
// echo, line editing and signal characters (Ctrl-C is the guest's
// SIGINT).

// openPTY makes a pseudo-terminal pair through /dev/ptmx.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// makeRaw sets f's terminal raw (cfmakeraw): no echo, no line editing,
// no signal characters, no output processing.
func makeRaw(f *os.File) error {
	fd := int(f.Fd())
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// termSize is f's terminal size; zero when f is no terminal.
func termSize(f *os.File) (rows, cols uint16) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0
	}
	return ws.Row, ws.Col
}

func setTermSize(f *os.File, rows, cols uint16) error {
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
}

// sendConsole sends master to the unix socket at path: one message whose
// data is the master's name and whose SCM_RIGHTS is its descriptor, as
// runc sends it.
func sendConsole(path string, master *os.File) error {
	c, err := net.Dial("unix", path)
	if err != nil {
		return fmt.Errorf("--console-socket: %w", err)
	}
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("--console-socket %s is not a unix socket", path)
	}
	_, _, err = uc.WriteMsgUnix([]byte(master.Name()), unix.UnixRights(int(master.Fd())), nil)
	if err != nil {
		return fmt.Errorf("--console-socket: sending the terminal: %w", err)
	}
	return nil
}

// newConsole makes the container's terminal, sized rows × cols when they
// are not zero, sends its master to socketPath and returns the slave,
// raw.
func newConsole(socketPath string, rows, cols uint16) (*os.File, error) {
	m, s, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("the container's terminal: %w", err)
	}
	defer m.Close()
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := makeRaw(s); err != nil {
		return nil, fmt.Errorf("the container's terminal: %w", err)
	}
	if rows != 0 && cols != 0 {
		if err := setTermSize(s, rows, cols); err != nil {
			return nil, fmt.Errorf("the container's terminal: %w", err)
		}
	}
	if err := sendConsole(socketPath, m); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// isStreamInput says whether f is a pipe, FIFO or socket: the stdin an
// engine gives the runtime when the container reads it (podman run -i,
// ctr/docker -i); without -i it is /dev/null.
func isStreamInput(f *os.File) bool {
	if f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0
}
