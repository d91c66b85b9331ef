// Package virtiofs serves a host directory to a guest through virtiofsd,
// the vhost-user file system daemon Debian ships with QEMU. A driver
// starts one Server per shared directory, hands the hypervisor the
// server's connected vhost-user socket, and stops the server with the VM.
//
// The daemon sandboxes itself: new mount, PID and network namespaces with
// pivot_root(2) into the shared directory, a seccomp filter, and only the
// file-ownership capabilities. A guest therefore names nothing outside the
// directory: ".." at its root is its root, and symbolic links are
// resolved by the guest's kernel against the guest's own tree. nos drops
// two more capabilities (mknod, setfcap): a guest cannot make device nodes
// or file capabilities on the host. Read-only shares are enforced on the
// host: the daemon runs in a mount namespace of its own where the
// directory is a read-only bind mount, so a write fails in the host's
// kernel whatever the guest's mount flags say.
package virtiofs

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Binaries are where distributions install virtiofsd: Debian 12's QEMU
// (the C daemon), then the Rust daemon's package paths.
var Binaries = []string{"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd"}

// ErrNotInstalled is wrapped when no virtiofsd is found.
var ErrNotInstalled = errors.New("virtiofsd not installed")

// Binary finds virtiofsd.
func Binary() (string, error) {
	for _, b := range Binaries {
		if fi, err := os.Stat(b); err == nil && fi.Mode().IsRegular() {
			return b, nil
		}
	}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("host directories need virtiofsd: install QEMU's with `sudo apt-get install qemu-system-x86` (it ships %s): %w", Binaries[0], ErrNotInstalled)
}

// Share is one directory to serve.
type Share struct {
	Source   string // absolute host directory
	ReadOnly bool
	// Log receives the daemon's own messages; nil discards them.
	Log io.Writer
}

// Server is a running virtiofsd.
type Server struct {
	cmd  *exec.Cmd
	conn *os.File
	done chan struct{}
	err  error
}

// OpenFiles is the daemon's descriptor limit: it holds one descriptor per
// file the guest has looked up (and not yet forgotten), so it needs far
// more than the hypervisor, whose limits the monitor lives under.
const OpenFiles = 1 << 16

// Args is virtiofsd's command line for a share whose vhost-user socket is
// inherited as descriptor fd. It is a pure function.
func Args(fd int, s Share) []string {
	return []string{
		fmt.Sprintf("--fd=%d", fd),
		"-o", "source=" + escapeOpt(s.Source),
		// namespace: the daemon's own mount, PID and network namespaces,
		// pivot_root into the share.
		"-o", "sandbox=namespace",
		"-o", "cache=auto",
		"-o", "no_posix_lock", "-o", "no_flock",
		"-o", "modcaps=-mknod:-setfcap",
		"-o", "log_level=warn",
		"--rlimit-nofile=" + strconv.Itoa(OpenFiles),
	}
}

// escapeOpt escapes a value for virtiofsd's -o list (libfuse's syntax:
// a backslash quotes the next character, commas separate options).
func escapeOpt(v string) string {
	return strings.NewReplacer(`\`, `\\`, ",", `\,`).Replace(v)
}

// Start runs virtiofsd for s. The daemon gets a listening socket that
// nobody else can reach (its path is removed as soon as this side has
// connected), so the only client it will ever accept is the hypervisor
// holding Conn.
func Start(s Share) (*Server, error) {
	if !filepath.IsAbs(s.Source) {
		return nil, fmt.Errorf("virtiofs: share %q is not an absolute path", s.Source)
	}
	if fi, err := os.Stat(s.Source); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("virtiofs: share %s is not a directory (%v)", s.Source, err)
	}
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	listener, conn, err := connectedPair()
	if err != nil {
		return nil, err
	}
	defer listener.Close()

	const daemonFD = 3
	var cmd *exec.Cmd
	if s.ReadOnly {
		exe, err := os.Executable()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("virtiofs: finding nos itself for a read-only share: %w", err)
		}
		cmd = exec.Command(exe, append([]string{HelperVerb, s.Source, bin}, Args(daemonFD, s)...)...)
	} else {
		cmd = exec.Command(bin, Args(daemonFD, s)...)
	}
	cmd.ExtraFiles = []*os.File{listener}
	cmd.Stdout, cmd.Stderr = s.Log, s.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if s.ReadOnly {
		// Go makes the new namespace's mounts private before the helper runs.
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("starting virtiofsd: %w", err)
	}
	srv := &Server{cmd: cmd, conn: conn, done: make(chan struct{})}
	go func() { srv.err = cmd.Wait(); close(srv.done) }()
	return srv, nil
}

// connectedPair makes a listening vhost-user socket and connects to it:
// the listener is for virtiofsd, the connection for the hypervisor. The
// socket's path lives only between bind and connect, in a directory only
// this user can enter.
func connectedPair() (listener, conn *os.File, err error) {
	dir, err := os.MkdirTemp("", "nos-virtiofs-")
	if err != nil {
		return nil, nil, fmt.Errorf("virtiofs socket: %w", err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "vhost.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("virtiofs socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	defer l.Close()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("virtiofs socket: %w", err)
	}
	defer c.Close()
	if listener, err = l.File(); err != nil {
		return nil, nil, fmt.Errorf("virtiofs socket: %w", err)
	}
	if conn, err = c.File(); err != nil {
		listener.Close()
		return nil, nil, fmt.Errorf("virtiofs socket: %w", err)
	}
	return listener, conn, nil
}

// Conn is the hypervisor's end of the vhost-user socket. The caller passes
// it on and may close its copy once the hypervisor has it.
func (s *Server) Conn() *os.File { return s.conn }

// PID is the daemon's process (or, for a read-only share, the helper that
// became it).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Done is closed when the daemon has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop ends the daemon: it exits by itself when the hypervisor closes the
// socket; after grace it is killed. It returns how the daemon ended.
func (s *Server) Stop(grace time.Duration) error {
	s.conn.Close()
	select {
	case <-s.done:
	case <-time.After(grace):
		_ = unix.Kill(-s.cmd.Process.Pid, unix.SIGKILL)
		<-s.done
	}
	return s.err
}
