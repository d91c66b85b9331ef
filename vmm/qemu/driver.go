package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/vmm"
	"github.com/nosproject/nos/vmm/jail"
	"github.com/nosproject/nos/vmm/passt"
	"github.com/nosproject/nos/vmm/virtiofs"
)

// Driver starts machines with QEMU's microvm. The zero value looks QEMU up
// on PATH.
type Driver struct {
	// Binary is the path of qemu-system-x86_64; "" looks it up on PATH.
	Binary string
}

var _ vmm.Driver = Driver{}

// ErrNotInstalled is wrapped by Check's error when QEMU is missing.
var ErrNotInstalled = errors.New("QEMU not installed")

// Name is how users know the hypervisor.
func (Driver) Name() string { return "QEMU" }

func (d Driver) binary() (string, error) {
	if d.Binary != "" {
		return d.Binary, nil
	}
	p, err := exec.LookPath(Binary)
	if err != nil {
		return "", fmt.Errorf("%s not found: install QEMU with `sudo apt-get install qemu-system-x86`: %w", Binary, ErrNotInstalled)
	}
	return p, nil
}

// Check tells whether QEMU is installed.
func (d Driver) Check(ctx context.Context) error {
	_, err := d.binary()
	return err
}

// Start boots m. Every file and channel is handed to QEMU as an open
// descriptor; with m.Confine, QEMU runs as the confinement's user, in its
// cgroup and under its rlimits.
func (d Driver) Start(ctx context.Context, m vmm.Machine) (vmm.Process, error) {
	bin, err := d.binary()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := openFiles(m)
	if err != nil {
		return nil, err
	}
	defer f.closeGuestSide()
	p := &process{done: make(chan struct{}), conns: f.host}
	if err := p.startShares(m.Shares, f); err != nil {
		f.closeHostSide()
		return nil, err
	}
	for _, n := range m.NICs { // in fdOrder, after the shares
		if n.TapFile == nil {
			continue
		}
		fd, err := unix.Dup(int(n.TapFile.Fd()))
		if err != nil {
			f.closeHostSide()
			p.stopShares()
			return nil, fmt.Errorf("tap %s: %w", n.Tap, err)
		}
		unix.CloseOnExec(fd)
		f.extra = append(f.extra, os.NewFile(uintptr(fd), n.Tap))
	}
	if err := p.startProxies(m, f); err != nil { // in fdOrder, after the taps
		f.closeHostSide()
		p.stopShares()
		return nil, err
	}
	if m.Saveable { // in fdOrder, after the proxies
		host, guest, err := socketPair("qmp")
		if err != nil {
			f.closeHostSide()
			p.stopShares()
			return nil, err
		}
		if p.qmp, err = newQMP(host); err != nil {
			host.Close()
			guest.Close()
			f.closeHostSide()
			p.stopShares()
			return nil, err
		}
		p.qmpConn = host
		f.extra = append(f.extra, guest)
		if m.Restore != nil {
			fd, err := unix.Dup(int(m.Restore.Fd()))
			if err != nil {
				host.Close()
				f.closeHostSide()
				p.stopShares()
				return nil, fmt.Errorf("the saved state: %w", err)
			}
			unix.CloseOnExec(fd)
			f.extra = append(f.extra, os.NewFile(uintptr(fd), "state"))
			p.restoring = true
		}
	}

	cmd := exec.Command(bin, Command(m, Access{ByFD: true, Sandbox: true})...)
	cmd.ExtraFiles = f.extra
	p.confined.Seccomp = true
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	// Own process group: a terminal's Ctrl-C is for nos, which stops the
	// guest gracefully. Pdeathsig: QEMU must not outlive whoever watches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	c := m.Confine
	var cg *jail.Cgroup
	if c != nil {
		if c.UID != 0 {
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: []uint32{}}
			if c.BindLowPorts {
				cmd.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_NET_BIND_SERVICE}
			}
			p.confined.UID, p.confined.GID = c.UID, c.GID
		}
		if c.Cgroup != "" {
			cg, err = jail.NewCgroup(c.Cgroup, jail.Limits{MemoryBytes: c.MemoryLimit, CPUs: c.CPUs})
			if err != nil {
				p.confined.Notes = append(p.confined.Notes, "no cgroup: "+err.Error())
				cg = nil
			} else if fd, err := cg.FD(); err == nil && fd != nil {
				defer fd.Close()
				cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(fd.Fd())
			}
		}
	}
	if err := jail.CloseInherited(); err != nil {
		p.confined.Notes = append(p.confined.Notes, "inherited descriptors not closed: "+err.Error())
	}
	if err := cmd.Start(); err != nil {
		f.closeHostSide()
		p.stopShares()
		if p.qmpConn != nil {
			p.qmpConn.Close()
		}
		if cg != nil {
			_ = cg.Remove()
		}
		return nil, fmt.Errorf("starting QEMU: %w", err)
	}
	p.cmd = cmd
	if c != nil {
		p.applyLimits(c, cg)
	}
	go p.wait(cg)
	return p, nil
}

// applyLimits puts the started process in its cgroup (cgroup v1, where it
// cannot start there) and sets its rlimits; what fails is noted.
func (p *process) applyLimits(c *vmm.Confinement, cg *jail.Cgroup) {
	pid := p.cmd.Process.Pid
	if cg != nil {
		if !p.cmd.SysProcAttr.UseCgroupFD {
			if err := cg.Attach(pid); err != nil {
				p.confined.Notes = append(p.confined.Notes, "not in its cgroup: "+err.Error())
			}
		}
		p.confined.Cgroup = cg.Rel
	}
	rl := jail.Rlimits{OpenFiles: c.MaxOpenFiles, FileSize: c.MaxFileSize}
	if rl != (jail.Rlimits{}) {
		switch err := rl.Apply(pid); {
		case err == nil, rl.Inherited():
			p.confined.Rlimits = true
		default:
			p.confined.Notes = append(p.confined.Notes, err.Error()+" (and the caller's own limits are higher)")
		}
	}
}

// startShares starts a virtiofsd for each shared directory; QEMU inherits
// the connected ends of their sockets, in fdOrder after the disks.
func (p *process) startShares(shares []vmm.Share, f *files) error {
	for _, sh := range shares {
		srv, err := virtiofs.Start(virtiofs.Share{Source: sh.Source, ReadOnly: sh.ReadOnly, Log: prefixWriter{"virtiofsd: ", &p.out}})
		if err != nil {
			p.stopShares()
			return fmt.Errorf("sharing %s: %w", sh.Source, err)
		}
		p.shares = append(p.shares, srv)
		f.extra = append(f.extra, srv.Conn())
	}
	return nil
}

// startProxies starts a passt for each user-mode NIC that asks for one;
// QEMU inherits the connected ends of their sockets, in fdOrder after the
// taps. passt runs as the hypervisor's user: its sockets are the guest's
// connections, which the guard table filters by that user.
func (p *process) startProxies(m vmm.Machine, f *files) error {
	for _, n := range m.NICs {
		if n.User == nil || n.User.Proxy != vmm.ProxyPasst {
			continue
		}
		c := passt.Config{
			Guest: vmm.UserNetGuestIP, Prefix: 24, Gateway: vmm.UserNetGateway, DNS: vmm.UserNetDNS,
			MapGateway: n.User.HostLoopback,
			Log:        prefixWriter{"passt: ", &p.out},
		}
		if m.Confine != nil {
			c.RunAs, c.RunAsGroup = m.Confine.UID, m.Confine.GID
		}
		for _, fw := range n.User.Forwards {
			c.Forwards = append(c.Forwards, passt.Forward{Proto: fw.Proto, HostIP: fw.HostIP, HostPort: fw.HostPort, GuestPort: fw.GuestPort})
		}
		srv, err := passt.Start(c)
		if err != nil {
			p.stopShares()
			return fmt.Errorf("the user-mode network: %w", err)
		}
		p.shares = append(p.shares, srv)
		f.extra = append(f.extra, srv.Conn())
	}
	return nil
}

// stopShares ends the device daemons (file systems, network proxies): they
// exit when QEMU's end of their socket closes, or are killed.
func (p *process) stopShares() {
	for _, s := range p.shares {
		_ = s.Stop(2 * time.Second)
	}
	p.shares = nil
}

// files are the descriptors of one start: what QEMU inherits (extra, in
// fdOrder) and the host ends of the guest channels.
type files struct {
	extra []*os.File
	host  []net.Conn
}

func openFiles(m vmm.Machine) (f *files, err error) {
	f = &files{}
	defer func() {
		if err != nil {
			f.closeGuestSide()
			f.closeHostSide()
		}
	}()
	open := func(path string, flag int) error {
		fl, err := os.OpenFile(path, flag, 0o600)
		if err != nil {
			return err
		}
		f.extra = append(f.extra, fl)
		return nil
	}
	if err := open(m.Kernel, os.O_RDONLY); err != nil {
		return f, fmt.Errorf("the kernel: %w", err)
	}
	if err := open(m.Initrd, os.O_RDONLY); err != nil {
		return f, fmt.Errorf("the initramfs: %w", err)
	}
	if err := open(m.ConsoleLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE); err != nil {
		return f, fmt.Errorf("the console log: %w", err)
	}
	for _, c := range m.Channels {
		host, guest, err := socketPair(c.Name)
		if err != nil {
			return f, err
		}
		f.host = append(f.host, host)
		f.extra = append(f.extra, guest)
	}
	for _, d := range m.Disks { // in fdOrder: read-only, then read-write, then shares and taps
		if err := open(d.Path, os.O_RDONLY); err != nil {
			return f, fmt.Errorf("disk: %w", err)
		}
		if !d.ReadOnly {
			if err := open(d.Path, os.O_RDWR); err != nil {
				return f, fmt.Errorf("disk: %w", err)
			}
		}
	}
	return f, nil
}

// socketPair returns a connected pair: the host's end as a net.Conn, the
// guest's as the file QEMU inherits.
func socketPair(name string) (net.Conn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("channel %s: %w", name, err)
	}
	hf := os.NewFile(uintptr(fds[0]), name+"-host")
	defer hf.Close() // FileConn dups it
	host, err := net.FileConn(hf)
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("channel %s: %w", name, err)
	}
	return host, os.NewFile(uintptr(fds[1]), name), nil
}

// closeGuestSide closes this process's copies of what QEMU inherited: the
// guest ends of the channels must be QEMU's alone, so that they read EOF
// when it exits.
func (f *files) closeGuestSide() {
	for _, x := range f.extra {
		x.Close()
	}
	f.extra = nil
}

func (f *files) closeHostSide() {
	for _, c := range f.host {
		c.Close()
	}
}

// daemon is a helper process serving one of the VM's devices.
type daemon interface {
	Stop(grace time.Duration) error
}

// process is a running QEMU.
type process struct {
	cmd      *exec.Cmd
	conns    []net.Conn
	shares   []daemon // virtiofsd and passt: they end with the VM
	out      lockedBuffer
	confined vmm.Confined
	done     chan struct{}
	exit     vmm.Exit
	// qmp is the machine protocol of a Saveable machine (nil otherwise);
	// restoring is set until a Restore's state is loaded.
	qmp       *qmp
	qmpConn   net.Conn
	restoring bool
}

var _ vmm.Process = (*process)(nil)

func (p *process) PID() int               { return p.cmd.Process.Pid }
func (p *process) Channels() []net.Conn   { return p.conns }
func (p *process) Done() <-chan struct{}  { return p.done }
func (p *process) Confined() vmm.Confined { return p.confined }
func (p *process) Stop() error            { return p.signal(syscall.SIGTERM) }
func (p *process) Kill() error            { return p.signal(syscall.SIGKILL) }
func (p *process) Wait() vmm.Exit         { <-p.done; return p.exit }
func (p *process) signal(s syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (p *process) wait(cg *jail.Cgroup) {
	err := p.cmd.Wait()
	p.stopShares()
	if p.qmpConn != nil {
		p.qmpConn.Close()
	}
	x := vmm.Exit{Err: err, Output: vmm.LastLine(p.out.String(), "")}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			x.Signal = ws.Signal()
		}
	}
	if x.Output == "" && err != nil {
		x.Output = err.Error()
	}
	if cg != nil {
		_ = cg.Remove() // empty now; a leftover is reused by the next boot
	}
	p.exit = x
	close(p.done)
}

// lockedBuffer collects QEMU's own output (its errors), at most 64 KiB.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 64<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// prefixWriter writes to w with each write prefixed.
type prefixWriter struct {
	prefix string
	w      *lockedBuffer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	p.w.Write(append([]byte(p.prefix), b...))
	return len(b), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
