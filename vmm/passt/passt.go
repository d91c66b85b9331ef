// Package passt runs a guest's user-mode network through passt, the
// unprivileged network proxy Debian ships (package passt), instead of
// QEMU's built-in slirp.
//
// Both translate the guest's Ethernet frames to the host's own sockets, so
// the guest's connections leave as the proxy's. The difference nos needs:
// slirp maps the gateway address (10.0.2.2) to the host's loopback and
// QEMU 7.2 has no option to stop that, while passt maps it only when asked
// (--no-map-gw otherwise). Without root, nos has no firewall to keep a
// guest from 127.0.0.1 on the host (network/guard filters by the
// hypervisor's jail user, which only root can make); with passt, the
// loopback is not reached at all.
//
// The proxy gets one end of a connected socket pair (passt -F) and QEMU
// the other (-netdev stream,addr.type=fd): no socket path exists that
// another process could connect to.
package passt

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Binary is passt's name on PATH.
const Binary = "passt"

// ErrNotInstalled is wrapped when passt is not on PATH.
var ErrNotInstalled = errors.New("passt is not installed")

// Path finds passt.
func Path() (string, error) {
	p, err := exec.LookPath(Binary)
	if err != nil {
		return "", fmt.Errorf("%w (install it with `sudo apt-get install passt`)", ErrNotInstalled)
	}
	return p, nil
}

// Forward publishes a guest port on the host.
type Forward struct {
	Proto     string // "tcp" or "udp"
	HostIP    string // "" for every host address
	HostPort  int
	GuestPort int
}

// Config is one guest's network.
type Config struct {
	// Guest, Prefix, Gateway and DNS are the guest's side, as nos-init
	// configures it: passt answers ARP for the gateway and forwards DNS
	// queries sent to DNS to the host's resolvers.
	Guest   string
	Prefix  int
	Gateway string
	DNS     string
	// MapGateway makes connections to the gateway reach the host's
	// loopback (--add-host NAME:host-gateway). Off, the host's loopback
	// is out of the guest's reach.
	MapGateway bool
	Forwards   []Forward
	// Interface is the host interface passt takes its outbound side from;
	// empty: the one of the default route (see OutboundInterface).
	Interface string
	// RunAs, when not zero, is the user passt runs as (passt started as
	// root drops to it; otherwise to nobody).
	RunAs, RunAsGroup uint32
	Log               io.Writer
}

// Args is passt's command line for c, the guest's socket inherited as
// descriptor fd. It is a pure function.
func Args(fd int, c Config) []string {
	a := []string{
		"--foreground", "--quiet", "-4",
		"--fd", strconv.Itoa(fd),
		"--address", c.Guest, "--netmask", strconv.Itoa(c.Prefix),
		"--gateway", c.Gateway,
		"--dns-forward", c.DNS, "--dns", c.DNS,
		// Logs to a file only: without one passt also tries syslog,
		// and says so on every line where there is none.
		"--log-file", "/dev/stderr",
	}
	if !c.MapGateway {
		a = append(a, "--no-map-gw")
	}
	if c.Interface != "" {
		a = append(a, "--interface", c.Interface)
	}
	if c.RunAs != 0 {
		a = append(a, "--runas", fmt.Sprintf("%d:%d", c.RunAs, c.RunAsGroup))
	}
	for _, f := range c.Forwards {
		flag := "--tcp-ports"
		if f.Proto == "udp" {
			flag = "--udp-ports"
		}
		spec := fmt.Sprintf("%d:%d", f.HostPort, f.GuestPort)
		if f.HostIP != "" {
			spec = f.HostIP + "/" + spec
		}
		a = append(a, flag, spec)
	}
	return a
}

// Server is a running passt.
type Server struct {
	cmd  *exec.Cmd
	conn *os.File
	done chan struct{}
	err  error
}

// Start runs passt for c. Conn is the hypervisor's end of its socket.
func Start(c Config) (*Server, error) {
	bin, err := Path()
	if err != nil {
		return nil, err
	}
	if c.Interface == "" {
		c.Interface = OutboundInterface()
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("passt: %w", err)
	}
	theirs := os.NewFile(uintptr(fds[0]), "passt")
	defer theirs.Close()
	conn := os.NewFile(uintptr(fds[1]), "net")
	log := c.Log
	if log == nil {
		log = io.Discard
	}
	cmd := exec.Command(bin, Args(3, c)...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("starting passt: %w", err)
	}
	s := &Server{cmd: cmd, conn: conn, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	// passt checks its options and the host's interfaces before it
	// serves: an early exit is a configuration it refused.
	select {
	case <-s.done:
		conn.Close()
		return nil, fmt.Errorf("passt exited at start (%v): see its messages above", s.err)
	case <-time.After(50 * time.Millisecond):
	}
	return s, nil
}

// Conn is the hypervisor's end of the guest's socket; the caller hands it
// on and closes its own copy.
func (s *Server) Conn() *os.File { return s.conn }

// Stop ends passt: it exits when the hypervisor's end closes; after wait
// it is killed.
func (s *Server) Stop(wait time.Duration) error {
	s.conn.Close()
	select {
	case <-s.done:
		return nil
	case <-time.After(wait):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return nil
}

// OutboundInterface is "" when the host has an IPv4 default route (passt
// takes its interface), else the first interface that is up, not the
// loopback and has an IPv4 address: passt refuses to start without an
// outbound interface, and a host without a default route (offline, or a
// namespace) still has published ports to serve.
func OutboundInterface() string {
	if b, err := os.ReadFile("/proc/net/route"); err == nil && hasDefaultRoute(string(b)) {
		return ""
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return ifc.Name
			}
		}
	}
	return ""
}

// hasDefaultRoute tells whether a /proc/net/route table has a route to
// 0.0.0.0/0.
func hasDefaultRoute(table string) bool {
	for _, l := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(l)
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return true
		}
	}
	return false
}
