package instance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/instance/logfile"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/vmm/qemu"
)

// The monitor is a small per-instance process (like containerd's shim or
// podman's conmon): it boots the VM, writes the application's output to the
// instance's log, keeps state.json true, serves stop and kill requests on a
// unix socket, applies the restart policy and runs the health check. It
// holds monitor.lock for its whole life, so anyone can tell whether it is
// alive without trusting a PID. No daemon: each instance has its own.

// request is one call on the monitor's socket.
type request struct {
	Op      string        `json:"op"` // "stop" or "kill"
	Timeout time.Duration `json:"timeout,omitempty"`
	Signal  int           `json:"signal,omitempty"`
}

type response struct {
	Error string `json:"error,omitempty"`
}

// monitor is the running monitor's own state.
type monitor struct {
	dir string
	cfg Config

	mu      sync.Mutex
	stopped bool      // stop or kill was requested: no more restarts
	vm      vmControl // the current boot's control, while one runs
	running bool
	wake    chan struct{} // interrupts a restart delay
}

// MonitorMain is the body of the monitor process for instance id.
func MonitorMain(ctx context.Context, home, id string) error {
	is, err := Open(home)
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
	m := &monitor{dir: dir, wake: make(chan struct{}, 1)}
	if err := readJSON(filepath.Join(dir, configFile), &m.cfg); err != nil {
		return err
	}
	_ = UpdateState(ctx, dir, func(s *State) { s.MonitorPID = os.Getpid() })

	sock := socketPath(dir, "monitor.sock")
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("monitor socket: %w", err)
	}
	defer os.Remove(sock)
	defer l.Close()
	go m.serve(l)

	// SIGTERM to the monitor (a host shutting down, a supervisor) stops the
	// instance gracefully rather than letting QEMU die with the monitor.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP)
	go func() {
		for range sigs {
			_ = m.handle(request{Op: "stop", Timeout: m.cfg.StopTimeout})
		}
	}()

	err = m.loop(ctx)
	if m.cfg.AutoRemove {
		if unlockAll, lerr := is.lockAll(context.Background()); lerr == nil {
			_ = removeDir(dir)
			unlockAll()
		}
	}
	return err
}

// loop boots the VM until the policy says to stop.
func (m *monitor) loop(ctx context.Context) error {
	logs, err := logfile.Create(m.dir, logfile.Options{})
	if err != nil {
		return err
	}
	defer logs.Close()
	qemuPath, err := exec.LookPath(qemu.Binary)
	if err != nil {
		_ = UpdateState(ctx, m.dir, func(s *State) {
			s.Status, s.Error, s.CrashKind, s.ExitCode, s.FinishedAt = StatusCrashed, "QEMU is not installed", CrashQEMUFailed, ExitGuestError, time.Now().UTC()
		})
		return err
	}
	consecutive := 0
	for {
		began := time.Now()
		o, err := m.boot(ctx, qemuPath, logs)
		if err != nil {
			o = outcome{ExitCode: ExitGuestError, Crash: err.Error(), CrashKind: CrashQEMUFailed}
		}
		var restarts int
		_ = UpdateState(ctx, m.dir, func(s *State) {
			s.Status = StatusExited
			if o.Crash != "" {
				s.Status = StatusCrashed
			}
			s.ExitCode, s.Error, s.CrashKind, s.FinishedAt, s.QEMUPID = o.ExitCode, o.Crash, o.CrashKind, time.Now().UTC(), 0
			if s.Health != nil {
				s.Health.Status = HealthUnhealthy
			}
			restarts = s.RestartCount
		})
		if !m.cfg.Restart.ShouldRestart(o.ExitCode, o.Crash != "", m.isStopped(), restarts) {
			return nil
		}
		if time.Since(began) >= BackoffReset {
			consecutive = 0
		}
		delay := Backoff(consecutive)
		consecutive++
		_ = UpdateState(ctx, m.dir, func(s *State) { s.Status = StatusRestarting; s.RestartCount++ })
		select {
		case <-time.After(delay):
		case <-m.wake:
		case <-ctx.Done():
			return nil
		}
		if m.isStopped() {
			_ = UpdateState(ctx, m.dir, func(s *State) { s.Status = StatusExited })
			return nil
		}
	}
}

// boot runs the VM once.
func (m *monitor) boot(ctx context.Context, qemuPath string, logs *logfile.Writer) (outcome, error) {
	sockDir, err := os.MkdirTemp("", "nos-vm-")
	if err != nil {
		return outcome{}, err
	}
	defer os.RemoveAll(sockDir)
	mach := qemu.Machine{
		Accel:         m.cfg.Accel,
		MemoryMiB:     m.cfg.MemoryMiB,
		CPUs:          m.cfg.CPUs,
		Kernel:        filepath.Join(m.dir, kernelFile),
		Initrd:        filepath.Join(m.dir, initrdFile),
		Cmdline:       m.cfg.Cmdline,
		ConsoleLog:    filepath.Join(m.dir, consoleFile),
		ControlSocket: filepath.Join(sockDir, "ctl"),
		StdoutSocket:  filepath.Join(sockDir, "out"),
		StderrSocket:  filepath.Join(sockDir, "err"),
		Net:           &qemu.UserNet{Forwards: append([]qemu.Forward(nil), m.cfg.Publish...)},
	}
	if m.cfg.NoNetwork {
		mach.Net = nil
	}
	if m.cfg.RootFS != "" {
		mach.RootDisk = filepath.Join(m.dir, rootDiskFile)
	}
	var health *prober
	if hc := m.cfg.Health; hc != nil && mach.Net != nil {
		port, err := freeLoopbackPort()
		if err != nil {
			return outcome{}, err
		}
		mach.Net.Forwards = append(mach.Net.Forwards, qemu.Forward{Proto: "tcp", HostIP: "127.0.0.1", HostPort: port, GuestPort: hc.Port})
		health = &prober{check: *hc, addr: fmt.Sprintf("127.0.0.1:%d", port), dir: m.dir}
	}
	stdout, stderr := logs.Stream("stdout"), logs.Stream("stderr")
	defer stdout.Close()
	defer stderr.Close()

	ctl := newVMControl()
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return outcome{ExitCode: ExitKilled, Forced: true}, nil
	}
	m.vm, m.running = ctl, true
	m.mu.Unlock()
	defer func() { m.mu.Lock(); m.running = false; m.mu.Unlock() }()

	hctx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	run := vmRun{
		QEMU: qemuPath, Machine: mach, Guest: m.guestConfig(), Stdout: stdout, Stderr: stderr, Control: ctl,
		Started: func(pid int) {
			_ = UpdateState(ctx, m.dir, func(s *State) {
				s.Status, s.QEMUPID, s.StartedAt, s.Error, s.CrashKind, s.Accel = StatusRunning, pid, time.Now().UTC(), "", "", m.cfg.Accel
				s.FinishedAt = time.Time{}
				if health != nil {
					s.Health = &HealthState{Status: HealthStarting}
				}
			})
			if health != nil {
				go health.run(hctx)
			}
			go capConsole(hctx, mach.ConsoleLog)
		},
	}
	return run.run()
}

// consoleCap bounds the console log: a guest that floods its serial port
// cannot fill the host's disk. The log holds at most this much plus one
// rotated copy.
const consoleCap = 2 << 20

// capConsole rotates the console log when it grows past consoleCap. QEMU
// appends (O_APPEND), so truncating the file under it is safe; what QEMU
// writes between the copy and the truncation is lost.
func capConsole(ctx context.Context, path string) {
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
		if err := copyFile(path, path+".1.tmp"); err == nil {
			_ = os.Rename(path+".1.tmp", path+".1")
		}
		_ = os.Truncate(path, 0)
	}
}

func (m *monitor) guestConfig() *guestapi.Config {
	seed := make([]byte, 64)
	_, _ = randRead(seed)
	hostname := m.cfg.Name
	if hostname == "" {
		hostname = m.cfg.ID[:12]
	}
	g := &guestapi.Config{
		Argv: m.cfg.Entrypoint, Env: m.cfg.Env, WorkingDir: m.cfg.WorkingDir, Hostname: hostname,
		Network: &guestapi.Network{Interface: "eth0", Address: qemu.GuestAddress, Gateway: qemu.GuestGateway, DNS: []string{qemu.GuestDNS}},
		Seed:    seed,
		Time:    time.Now(),
	}
	if m.cfg.NoNetwork {
		g.Network = nil
	}
	if m.cfg.RootFS != "" {
		g.Root = &guestapi.Root{Device: "/dev/vda", FSType: m.cfg.RootFS}
	}
	g.User, g.Caps = m.cfg.User, m.cfg.Caps
	return g
}

func (m *monitor) isStopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// serve answers stop and kill requests.
func (m *monitor) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var req request
			resp := response{}
			if err := json.NewDecoder(c).Decode(&req); err != nil {
				resp.Error = "bad request: " + err.Error()
			} else if err := m.handle(req); err != nil {
				resp.Error = err.Error()
			}
			_ = json.NewEncoder(c).Encode(resp)
		}()
	}
}

func (m *monitor) handle(req request) error {
	switch req.Op {
	case "stop":
		m.markStopped()
		m.mu.Lock()
		ctl, running := m.vm, m.running
		m.mu.Unlock()
		if running {
			select {
			case ctl.Signals <- syscall.SIGTERM:
			default:
			}
			go func() {
				time.Sleep(req.Timeout)
				select {
				case ctl.Kill <- struct{}{}:
				default:
				}
			}()
		}
		return nil
	case "kill":
		sig := syscall.Signal(req.Signal)
		m.mu.Lock()
		ctl, running := m.vm, m.running
		m.mu.Unlock()
		if sig == 0 || sig == syscall.SIGKILL {
			m.markStopped()
			if running {
				select {
				case ctl.Kill <- struct{}{}:
				default:
				}
			}
			return nil
		}
		if !running {
			return ErrNotRunning
		}
		select {
		case ctl.Signals <- sig:
		default:
		}
		return nil
	}
	return fmt.Errorf("unknown request %q", req.Op)
}

func (m *monitor) markStopped() {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	_ = UpdateState(context.Background(), m.dir, func(s *State) { s.StoppedByUser = true })
}

// call sends a request to an instance's monitor.
func call(ctx context.Context, in *Instance, req request) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socketPath(in.Dir, "monitor.sock"))
	if err != nil {
		if !lockfile.Held(filepath.Join(in.Dir, monitorLock)) {
			return fmt.Errorf("instance %s: %w", displayName(in), ErrNotRunning)
		}
		return fmt.Errorf("reaching the monitor of %s: %w", displayName(in), err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("talking to the monitor: %w", err)
	}
	var resp response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("talking to the monitor: %w", err)
	}
	if resp.Error != "" {
		if resp.Error == ErrNotRunning.Error() {
			return fmt.Errorf("instance %s: %w", displayName(in), ErrNotRunning)
		}
		return errors.New(resp.Error)
	}
	return nil
}

// socketPath keeps unix socket paths under the 108-byte limit: in the
// instance directory when it is short enough, else in a private directory
// under the system's temp dir named after it.
func socketPath(dir, name string) string {
	p := filepath.Join(dir, name)
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(dir))
	short := filepath.Join(os.TempDir(), "nos-"+hex.EncodeToString(sum[:8]))
	_ = os.MkdirAll(short, 0o700)
	return filepath.Join(short, name)
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
