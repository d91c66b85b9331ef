package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/instance/logfile"
	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/network/guard"
	"github.com/nosproject/nos/network/netdns"
	"github.com/nosproject/nos/vmm"
	"github.com/nosproject/nos/vmm/jail"
	"github.com/nosproject/nos/volume"
)

// The monitor is a small per-instance process (like containerd's shim or
// podman's conmon): it boots the VM, writes the application's output to the
// instance's log, keeps state.json true, serves stop and kill requests on a
// unix socket, applies the restart policy and runs the health check. It
// holds monitor.lock for its whole life, so anyone can tell whether it is
// alive without trusting a PID. No daemon: each instance has its own. It
// logs what it does (boots, exits, restarts, health changes, every failed
// state write) to monitor.log.

// monitor is the running monitor's own state.
type monitor struct {
	home home.Layout
	dir  string
	cfg  Config
	drv  vmm.Driver
	log  *slog.Logger
	rl   jail.Rlimits // the hypervisor's, which the monitor lives under too

	mu      sync.Mutex
	stopped bool    // stop or kill was requested: no more restarts
	vm      *vmm.VM // the current boot, while one runs
	wake    chan struct{}
	// rows and cols are the application's terminal size, as last set.
	sizeMu     sync.Mutex
	rows, cols uint16
	// live is the application's output as it comes, for attach.
	live *live
}

// MonitorVerb is the hidden command-line verb of the monitor process:
// `nos --home DIR __monitor ID`, and nos-monitor's last two arguments.
const MonitorVerb = "__monitor"

// MonitorMain is the body of the monitor process for instance id.
func MonitorMain(ctx context.Context, h home.Layout, id string) error {
	is, err := Open(h)
	if err != nil {
		return err
	}
	dir := is.dir(id)
	lockCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	unlock, err := lockfile.Lock(lockCtx, filepath.Join(dir, monitorLock), false)
	cancel()
	if err != nil {
		return fmt.Errorf("another monitor runs this instance: %w", err)
	}
	defer unlock()
	logf, err := os.OpenFile(filepath.Join(dir, monitorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	m := &monitor{home: h, dir: dir, wake: make(chan struct{}, 1), log: slog.New(slog.NewTextHandler(logf, nil)), live: newLive()}
	if err := readJSON(filepath.Join(dir, configFile), &m.cfg); err != nil {
		m.log.Error("reading the config", "err", err)
		return err
	}
	if m.drv, err = driver(m.cfg.Hypervisor); err != nil {
		m.log.Error("no hypervisor", "err", err)
		return err
	}
	m.rows, m.cols = m.cfg.Rows, m.cfg.Cols
	m.live.keep = m.cfg.Stdin || m.cfg.TTY
	m.log.Info("monitor started", "pid", os.Getpid(), "instance", id, "hypervisor", m.drv.Name())
	// The monitor lives under its hypervisor's rlimits, so the hypervisor
	// inherits them even where nos may not set another user's limits
	// (no CAP_SYS_RESOURCE, as in many containers).
	m.rl = m.rlimits()
	self := m.rl
	if len(m.cfg.Binds) > 0 {
		// virtiofsd, which the monitor starts too, holds a descriptor per
		// file the guest looks up: it must not inherit QEMU's 256. QEMU
		// then gets its limit by prlimit(2) alone, or a note says not.
		self.OpenFiles = 0
	}
	if err := self.ApplySelf(); err != nil {
		m.log.Warn("rlimits", "err", err)
	}
	m.update(ctx, "monitor pid", func(s *State) { s.MonitorPID = os.Getpid() })

	sock := socketPath(dir, monitorSocket)
	_ = os.MkdirAll(filepath.Dir(sock), 0o700) // its failure shows as Listen's
	_ = os.Remove(sock)                        // a dead monitor's socket; Listen says if it matters
	l, err := net.Listen("unix", sock)
	if err != nil {
		m.log.Error("monitor socket", "err", err)
		return fmt.Errorf("monitor socket: %w", err)
	}
	defer removeSocketDir(dir)
	defer os.Remove(sock)
	defer l.Close()
	go m.serve(l)

	// SIGTERM to the monitor (a host shutting down, a supervisor) stops the
	// instance gracefully rather than letting the VM die with the monitor.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP)
	go func() {
		for s := range sigs {
			m.log.Info("signal: stopping the instance", "signal", s.String())
			if err := m.handle(request{Op: opStop, Timeout: m.cfg.StopTimeout}); err != nil {
				m.log.Warn("stop on signal", "err", err)
			}
		}
	}()

	err = m.loop(ctx)
	if err != nil {
		m.log.Error("monitor failed", "err", err)
	}
	m.log.Info("monitor exiting")
	if m.cfg.AutoRemove {
		m.autoRemove(is)
	}
	return err
}

// autoRemove deletes the instance when it ends (--rm).
func (m *monitor) autoRemove(is *Instances) {
	unlockAll, err := is.lockAll(context.Background())
	if err != nil {
		m.log.Error("--rm: locking the instances", "err", err)
		return
	}
	defer unlockAll()
	if err := removeDir(m.dir); err != nil {
		m.log.Error("--rm: removing the instance", "err", err)
	}
	if err := is.leaveNetworks(context.Background(), &Instance{Config: m.cfg}); err != nil {
		m.log.Error("--rm: releasing network addresses", "err", err)
	}
}

// stateWriteTimeout bounds one state write. State writes happen even when
// the monitor is shutting down (its context cancelled): the file must say
// how the instance ended.
const stateWriteTimeout = 10 * time.Second

// update changes state.json; a failure is logged with what was written.
func (m *monitor) update(ctx context.Context, what string, fn func(*State)) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateWriteTimeout)
	defer cancel()
	if err := UpdateState(wctx, m.dir, fn); err != nil {
		m.log.Error("state write failed", "what", what, "err", err)
	}
}

// loop boots the VM until the policy says to stop.
func (m *monitor) loop(ctx context.Context) error {
	logs, err := logfile.Create(m.dir, logfile.Options{})
	if err != nil {
		return err
	}
	defer logs.Close()
	if err := m.drv.Check(ctx); err != nil {
		m.update(ctx, "hypervisor missing", func(s *State) {
			s.Status, s.Error, s.CrashKind, s.ExitCode, s.FinishedAt = StatusCrashed, err.Error(), CrashHypervisorFailed, ExitGuestError, time.Now().UTC()
		})
		return err
	}
	consecutive := 0
	for {
		began := time.Now()
		o, err := m.boot(ctx, logs)
		if err == nil && o.RestoreFailed && !m.isStopped() {
			continue // boot removed the state: the next boot is cold
		}
		if err != nil {
			m.log.Error("boot failed", "err", err)
			o = vmm.Outcome{ExitCode: ExitGuestError, Crash: err.Error(), CrashKind: CrashHypervisorFailed}
			if errors.Is(err, errSetup) {
				o.CrashKind = CrashSetupFailed
			}
		}
		m.log.Info("VM ended", "exit", o.ExitCode, "crash", o.Crash, "kind", o.CrashKind, "forced", o.Forced, "ran", time.Since(began).Round(time.Millisecond))
		if o.BadMessages > 0 {
			m.log.Warn("the guest sent control lines that were not messages: skipped", "lines", o.BadMessages)
		}
		if o.DroppedFrames > 0 {
			m.log.Warn("the guest wrote on channels it had closed: dropped", "frames", o.DroppedFrames)
		}
		if o.StreamError != "" {
			m.log.Warn("the guest's port was not read to its end", "err", o.StreamError)
		}
		restarts := m.recordEnd(ctx, o)
		if !m.cfg.Restart.ShouldRestart(o.ExitCode, o.Crash != "", m.isStopped(), restarts) {
			return nil
		}
		if time.Since(began) >= BackoffReset {
			consecutive = 0
		}
		delay := Backoff(consecutive)
		consecutive++
		m.log.Info("restarting", "policy", m.cfg.Restart.Name, "delay", delay, "restarts", restarts+1)
		m.update(ctx, "restarting", func(s *State) { s.Status = StatusRestarting; s.RestartCount++ })
		select {
		case <-time.After(delay):
		case <-m.wake:
		case <-ctx.Done():
			m.update(ctx, "shutdown", func(s *State) { s.Status = StatusExited })
			return nil
		}
		if m.isStopped() {
			m.update(ctx, "stopped while restarting", func(s *State) { s.Status = StatusExited })
			return nil
		}
	}
}

// recordEnd writes how a boot ended and returns the restart count.
func (m *monitor) recordEnd(ctx context.Context, o vmm.Outcome) int {
	var restarts int
	m.update(ctx, "VM ended", func(s *State) {
		s.Status = StatusExited
		if o.Crash != "" {
			s.Status = StatusCrashed
		}
		s.ExitCode, s.Error, s.CrashKind, s.FinishedAt, s.VMPID = o.ExitCode, o.Crash, o.CrashKind, time.Now().UTC(), 0
		if s.Health != nil {
			s.Health.Status = HealthUnhealthy
		}
		restarts = s.RestartCount
	})
	return restarts
}

// boot runs the VM once.
func (m *monitor) boot(ctx context.Context, logs *logfile.Writer) (o vmm.Outcome, err error) {
	atts, err := m.attachVolumes(ctx)
	if err != nil {
		return vmm.Outcome{}, err
	}
	defer func() { m.detachVolumes(atts, err == nil && o.Crash == "" && !o.Forced) }()
	nb, err := m.attachNetworks()
	if err != nil {
		return vmm.Outcome{}, fmt.Errorf("%w: %w", errSetup, err)
	}
	defer nb.close()
	mach := m.machine(nb, atts...)
	for i := range mach.Shares {
		src, err := resolveBind(m.cfg.Binds[i])
		if err != nil {
			return vmm.Outcome{}, fmt.Errorf("%w: %w", errSetup, err)
		}
		mach.Shares[i].Source = src
		m.log.Info("sharing a host directory", "source", src, "target", m.cfg.Binds[i].Target, "readOnly", m.cfg.Binds[i].ReadOnly)
	}
	logOut, logErr := logs.Stream("stdout"), logs.Stream("stderr")
	defer logOut.Close()
	defer logErr.Close()
	lossyOut, lossyErr := newLossyLog(logOut, m.log, "stdout"), newLossyLog(logErr, m.log, "stderr")
	defer lossyOut.report()
	defer lossyErr.report()
	stdout := io.MultiWriter(lossyOut, m.live.writer(guestapi.FrameStdout))
	stderr := io.MultiWriter(lossyErr, m.live.writer(guestapi.FrameStderr))

	var snap *snapshotPlan
	guest := vmm.Guest{Config: m.guestConfig(mach, atts...), Stdout: stdout, Stderr: stderr}
	if m.cfg.Snapshot {
		if snap, err = m.planSnapshot(ctx, mach); err != nil {
			m.log.Warn("snapshot: booting cold", "err", err)
		} else {
			defer snap.close()
			mach.Saveable, mach.Restore = true, snap.restore
			guest.Restore = &guestapi.Restore{Hostname: guest.Config.Hostname, Generation: 1}
		}
	}

	// A cold boot's firewall table goes in while QEMU starts and the
	// kernel boots: the init brings no NIC up and starts nothing before it
	// has its config, which Hold keeps back until the table is there. A
	// restored guest's app runs at once: its table goes in first.
	guardDone := make(chan struct{})
	var unguard func()
	if mach.Restore != nil {
		if unguard, err = m.guard(mach); err != nil {
			return vmm.Outcome{}, fmt.Errorf("%w: %w", errSetup, err)
		}
		close(guardDone)
	} else {
		guarded := make(chan error, 1)
		guest.Hold = guarded
		go func(mach vmm.Machine) {
			defer close(guardDone)
			var err error
			unguard, err = m.guard(mach)
			guarded <- err
		}(mach)
	}
	defer func() {
		<-guardDone
		if unguard != nil {
			unguard()
		}
	}()

	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return vmm.Outcome{ExitCode: ExitKilled, Forced: true}, nil
	}
	vm, err := vmm.Boot(ctx, m.drv, mach, guest)
	if err != nil {
		m.mu.Unlock()
		return vmm.Outcome{}, err
	}
	m.vm = vm
	m.mu.Unlock()
	defer func() { m.mu.Lock(); m.vm = nil; m.mu.Unlock() }()
	m.setActive(ctx, true)
	defer m.setActive(ctx, false)
	if err := m.publish(nb); err != nil {
		m.log.Error("publishing ports", "err", err)
		vm.Kill()
		vm.Wait()
		return vmm.Outcome{}, fmt.Errorf("%w: %w", errSetup, err)
	}

	confined := confinementNotes(m.cfg, vm.Confined())
	m.log.Info("VM started", "pid", vm.PID(), "accel", m.cfg.Accel, "seccomp", confined.Seccomp, "uid", confined.UID, "cgroup", confined.Cgroup, "rlimits", confined.Rlimits, "notes", confined.Notes)
	restored := mach.Restore != nil
	if restored {
		m.log.Info("starting from a saved state", "key", snap.key[:12])
	}
	m.update(ctx, "VM started", func(s *State) {
		s.Status, s.VMPID, s.StartedAt, s.Error, s.CrashKind, s.Accel = StatusRunning, vm.PID(), time.Now().UTC(), "", "", m.cfg.Accel
		s.Snapshot = ""
		if restored {
			s.Snapshot = SnapshotRestored
		}
		s.FinishedAt = time.Time{}
		s.Hypervisor, s.Confined = m.drv.Name(), &confined
		if m.cfg.Health != nil {
			s.Health = &HealthState{Status: HealthStarting}
		}
	})
	hctx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	if hc := m.cfg.Health; hc != nil {
		p := &prober{check: *hc, vm: vm, dir: m.dir, log: m.log}
		go p.run(hctx)
	}
	go m.capConsole(hctx, mach.ConsoleLog)
	if snap != nil && !restored {
		go m.saveWhenReady(hctx, vm, snap)
	}
	o = vm.Wait()
	if o.HoldError != "" {
		m.awaitFirstAttach()
		return o, fmt.Errorf("%w: %s", errSetup, o.HoldError)
	}
	if o.RestoreFailed {
		m.log.Warn("the saved state did not load: removed; booting cold", "err", o.Crash)
		snap.discard()
	}
	m.awaitFirstAttach()
	return o, nil
}

// Disk serials the guest finds its disks by.
const (
	rootSerial        = "nos-root"
	volumeSerialStart = "nos-vol-"
)

// machine describes the VM of this instance, with the volumes attached
// for this boot; the guest's side of it is in guestConfig.
func (m *monitor) machine(nb *netBoot, atts ...*volume.Attachment) vmm.Machine {
	mach := vmm.Machine{
		Accel:      m.cfg.Accel,
		MemoryMiB:  m.cfg.MemoryMiB,
		CPUs:       m.cfg.CPUs,
		Kernel:     filepath.Join(m.dir, kernelFile),
		Initrd:     filepath.Join(m.dir, initrdFile),
		Cmdline:    m.cfg.Cmdline,
		ConsoleLog: filepath.Join(m.dir, consoleFile),
		Channels:   vmm.GuestChannels(),
		Confine:    confinement(m.cfg, m.rl),
		// TCG's translation buffer: see vmm.DefaultTCGBufferMiB.
		TCGBufferMiB: vmm.DefaultTCGBufferMiB(),
		// Free guest memory goes back to the host: see vmm.FreePageReporting.
		FreePageReporting: vmm.DefaultFreePageReporting(),
	}
	switch {
	case m.cfg.InitAPI >= image.InitAPIMux:
		mach.Channels = vmm.MuxedChannels()
	case m.cfg.InitAPI >= image.InitAPIInteractive:
		mach.Channels = vmm.InteractiveChannels()
	}
	switch {
	case len(m.cfg.Networks) > 0:
		mach.NICs = m.nics(nb)
	case !m.cfg.NoNetwork:
		mach.NICs = []vmm.NIC{{User: &vmm.UserNet{
			Forwards: slices.Clone(m.cfg.Publish), Proxy: m.cfg.UserProxy,
			HostLoopback: reachesHost(m.cfg.Hosts),
		}}}
	}
	if m.cfg.RootFS != "" {
		mach.Disks = []vmm.Disk{{Path: filepath.Join(m.dir, rootDiskFile), Format: vmm.FormatRaw, ReadOnly: true, Serial: rootSerial}}
	}
	for i, a := range atts {
		// writeback: the guest sees a volatile write cache and flushes it
		// on fsync (ext4 issues FLUSH), which QEMU turns into fdatasync on
		// the host file; writes the guest did not flush may sit in the
		// host's page cache, which outlives QEMU.
		mach.Disks = append(mach.Disks, vmm.Disk{
			Path: a.Volume.Disk(), Format: vmm.FormatRaw, ReadOnly: a.ReadOnly,
			Cache: "writeback", Serial: volumeSerialStart + strconv.Itoa(i),
		})
	}
	for i, b := range m.cfg.Binds {
		mach.Shares = append(mach.Shares, vmm.Share{Tag: shareTag(i), Source: b.Source, ReadOnly: b.ReadOnly})
	}
	return mach
}

// guestConfig is what the init gets: the launch spec, and the network and
// root disk of the machine it runs in.
func (m *monitor) guestConfig(mach vmm.Machine, atts ...*volume.Attachment) *guestapi.Config {
	seed := make([]byte, 64)
	if _, err := randRead(seed); err != nil {
		m.log.Warn("no entropy seed for the guest", "err", err)
	}
	hostname := m.cfg.Name
	if hostname == "" {
		hostname = m.cfg.ID[:12]
	}
	g := &guestapi.Config{
		Argv: m.cfg.Entrypoint, Env: m.cfg.Env, WorkingDir: m.cfg.WorkingDir, Hostname: hostname,
		Network:  guestNetwork(mach),
		Networks: guestNetworks(m.cfg.Networks),
		Seed:     seed,
		Time:     time.Now(),
		User:     m.cfg.User,
		Caps:     m.cfg.Caps,
		Hosts:    guestHosts(m.cfg.Hosts),
	}
	if g.Network == nil && len(g.Networks) > 0 {
		first := g.Networks[0] // for an older init, which reads one NIC
		g.Network = &first
	}
	if m.cfg.RootFS != "" {
		g.Root = &guestapi.Root{Device: "/dev/vda", FSType: m.cfg.RootFS, Serial: rootSerial}
		g.Root.Writable, g.Root.TmpfsSize = m.cfg.WritableRoot, m.cfg.RootTmpfsSize
	}
	for i, a := range atts {
		g.Mounts = append(g.Mounts, guestapi.Mount{
			Serial: volumeSerialStart + strconv.Itoa(i), Target: m.cfg.Volumes[i].Target,
			FSType: "ext4", ReadOnly: a.ReadOnly, CopyUp: a.CopyUp,
		})
	}
	for i, b := range m.cfg.Binds {
		g.Mounts = append(g.Mounts, guestapi.Mount{Tag: shareTag(i), Target: b.Target, FSType: "virtiofs", ReadOnly: b.ReadOnly})
	}
	// Parents before what is mounted inside them, as docker orders them.
	slices.SortStableFunc(g.Mounts, func(a, b guestapi.Mount) int {
		return strings.Count(a.Target, "/") - strings.Count(b.Target, "/")
	})
	g.Tmpfs = m.cfg.Tmpfs
	if mach.HasIO() {
		g.IO, g.NoExec = true, m.cfg.NoExec
		g.Stdin, g.TTY = m.cfg.Stdin, m.cfg.TTY
		m.sizeMu.Lock()
		g.Rows, g.Cols = m.rows, m.cols
		m.sizeMu.Unlock()
	}
	return g
}

// attachVolumes takes this instance's volumes for a boot; a volume
// another instance holds fails the boot, naming the holder.
func (m *monitor) attachVolumes(ctx context.Context) ([]*volume.Attachment, error) {
	if len(m.cfg.Volumes) == 0 {
		return nil, nil
	}
	st, err := volume.Open(m.home.Volumes())
	if err != nil {
		return nil, err
	}
	var atts []*volume.Attachment
	for _, vm := range m.cfg.Volumes {
		a, err := st.Attach(ctx, vm.Name, m.cfg.ID, vm.ReadOnly)
		if err != nil {
			m.detachVolumes(atts, true)
			return nil, fmt.Errorf("%w: %w", errSetup, err)
		}
		if a.Checked != "" {
			m.log.Info("volume checked: its last use did not end cleanly", "volume", vm.Name, "e2fsck", a.Checked)
		}
		m.log.Info("volume attached", "volume", vm.Name, "target", vm.Target, "readOnly", vm.ReadOnly, "copyUp", a.CopyUp)
		atts = append(atts, a)
	}
	return atts, nil
}

// detachVolumes releases the volumes; clean says the guest unmounted them.
func (m *monitor) detachVolumes(atts []*volume.Attachment, clean bool) {
	for _, a := range atts {
		if err := a.Detach(clean); err != nil {
			m.log.Error("detaching a volume", "volume", a.Volume.Name, "err", err)
		}
		m.log.Info("volume detached", "volume", a.Volume.Name, "clean", clean)
	}
}

// guard keeps the guest of a user-mode NIC from the host's loopback and
// addresses (see network/guard), unless the instance names the host
// (--add-host NAME:host-gateway) with no --host-port; the returned func
// removes the table when the VM is gone. Private networks are guarded by
// their bridge's table. Without a jail user (nos not run as root) there is
// nothing to tell the hypervisor's sockets apart by: confinementNotes says
// so.
func (m *monitor) guard(mach vmm.Machine) (func(), error) {
	if len(mach.NICs) == 0 || mach.NICs[0].User == nil || m.cfg.JailUID == 0 {
		return func() {}, nil
	}
	table := guard.TableName(m.cfg.ID)
	if reachesHost(m.cfg.Hosts) && len(m.cfg.HostPorts) == 0 {
		_ = guard.Remove(table)
		m.log.Info("the guest may reach the host's addresses (--add-host host-gateway)")
		return func() {}, nil
	}
	s := guard.Spec{Table: table, UID: m.cfg.JailUID}
	conf, _ := os.ReadFile("/etc/resolv.conf") // where slirp sends the guest's DNS
	for _, up := range netdns.Upstreams(conf) {
		s.Nameservers = append(s.Nameservers, up.Addr())
	}
	if reachesHost(m.cfg.Hosts) {
		s.Ports = m.cfg.HostPorts
	}
	if err := guard.Apply(s); err != nil {
		return nil, fmt.Errorf("%w (is nftables in the kernel? an instance made with --add-host NAME:%s may reach the host and needs no filter)", err, HostGateway)
	}
	m.log.Info("the guest is kept from the host's addresses", "table", table, "openPorts", s.Ports)
	return func() {
		if err := guard.Remove(table); err != nil {
			m.log.Warn("removing the guard table", "table", table, "err", err)
		}
	}, nil
}

// guestHosts are the guest's extra /etc/hosts entries, host-gateway
// being the user-mode network's gateway (QEMU maps it to the host).
func guestHosts(hosts []HostEntry) []guestapi.Host {
	var out []guestapi.Host
	for _, h := range hosts {
		ip := h.IP
		if ip == HostGateway {
			ip = vmm.UserNetGateway
		}
		out = append(out, guestapi.Host{Name: h.Name, IP: ip})
	}
	return out
}

// guestNetwork is the one place the guest's network configuration is
// made: from the machine's first NIC.
func guestNetwork(mach vmm.Machine) *guestapi.Network {
	if len(mach.NICs) == 0 {
		return nil
	}
	if mach.NICs[0].User == nil {
		return nil // private networks: guestConfig sets Networks
	}
	return vmm.UserNetGuest("eth0")
}

// consoleCap bounds the console log: a guest that floods its serial port
// cannot fill the host's disk. The log holds at most this much plus one
// rotated copy.
const consoleCap = 2 << 20

// capConsole rotates the console log when it grows past consoleCap. The
// hypervisor appends (O_APPEND), so truncating the file under it is safe;
// what it writes between the copy and the truncation is lost.
func (m *monitor) capConsole(ctx context.Context, path string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Size() <= consoleCap {
			continue
		}
		if err := copyFile(path, path+".1.tmp"); err != nil {
			m.log.Warn("rotating the console log", "err", err)
		} else if err := os.Rename(path+".1.tmp", path+".1"); err != nil {
			m.log.Warn("rotating the console log", "err", err)
		}
		if err := os.Truncate(path, 0); err != nil {
			m.log.Error("capping the console log", "err", err)
		}
	}
}

func (m *monitor) isStopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// serve answers requests on the monitor's socket until it is closed.
func (m *monitor) serve(l net.Listener) {
	var wait time.Duration // after a failed accept
	refused := 0
	for {
		c, err := l.Accept()
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED) {
			// Out of descriptors or memory for a moment: the client waits
			// in the backlog; the socket must outlive it.
			if refused == 0 {
				m.log.Warn("monitor socket: cannot accept, retrying", "err", err)
			}
			refused++
			wait = min(max(2*wait, 5*time.Millisecond), time.Second)
			time.Sleep(wait)
			continue
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.log.Error("monitor socket", "err", err)
			}
			return
		}
		if refused > 0 {
			m.log.Info("monitor socket: accepting again", "failed", refused)
			refused, wait = 0, 0
		}
		go m.serveConn(c)
	}
}

func (m *monitor) handle(req request) error {
	switch req.Op {
	case opStop:
		m.log.Info("stop requested", "timeout", req.Timeout)
		vm := m.markStopped()
		if vm != nil {
			vm.Signal(syscall.SIGTERM)
			go func() {
				select {
				case <-time.After(req.Timeout):
					m.log.Info("stop timeout: forcing the VM off")
					vm.Kill()
				case <-vm.Done():
				}
			}()
		}
		return nil
	case opKill:
		sig := syscall.Signal(req.Signal)
		if sig == 0 || sig == syscall.SIGKILL {
			m.log.Info("kill requested")
			if vm := m.markStopped(); vm != nil {
				vm.Kill()
			}
			return nil
		}
		m.mu.Lock()
		vm := m.vm
		m.mu.Unlock()
		if vm == nil {
			return ErrNotRunning
		}
		m.log.Info("signal requested", "signal", sig.String())
		vm.Signal(sig)
		return nil
	}
	return fmt.Errorf("%w: unknown operation %q", ErrBadRequest, req.Op)
}

// markStopped records that the user stopped the instance and returns the
// running VM, if any.
func (m *monitor) markStopped() *vmm.VM {
	m.mu.Lock()
	m.stopped = true
	vm := m.vm
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	m.update(context.Background(), "stopped by user", func(s *State) { s.StoppedByUser = true })
	return vm
}

// removeSocketDir removes the private directory socketPath made for the
// sockets of instance directory dir, if it made one and it is empty: a
// monitor's sockets lived there, and each run --rm left one behind.
func removeSocketDir(dir string) {
	if d := filepath.Dir(socketPath(dir, monitorSocket)); d != dir {
		_ = os.Remove(d)
	}
}

// socketPath keeps unix socket paths under the 108-byte limit: in the
// instance directory when it is short enough, else in a private directory
// under the system's temp dir named after it, which the monitor makes
// (and removes when it ends: removeSocketDir). Callers that dial make
// nothing.
func socketPath(dir, name string) string {
	p := filepath.Join(dir, name)
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(dir))
	short := filepath.Join(os.TempDir(), "nos-"+hex.EncodeToString(sum[:8]))
	return filepath.Join(short, name)
}
