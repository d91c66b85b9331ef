package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
	"golang.org/x/sys/unix"
)

// Main is the whole life of the init: set up, run the application, power
// off. It returns only if the kernel refuses to power off.
func Main() {
	if err := run(); err != nil {
		logf("%v", err)
	}
	if err := powerOff(); err != nil {
		logf("power off: %v", err)
	}
	select {} // PID 1 must not exit: the kernel would panic
}

// kernelBoot is how long the kernel ran before the init started: the
// boot-time clock (CLOCK_BOOTTIME starts with the kernel) read first thing.
var kernelBoot time.Duration

func run() error {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) == nil {
		kernelBoot = time.Duration(ts.Nano())
	}
	t := newPhases()
	if err := mountAll(); err != nil {
		return err
	}
	t.done("mounts")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	standalone, err := readStandalone(guestapi.StandaloneConfig)
	if err != nil {
		return err
	}
	if err := loadModules(string(cmdline), standalone != nil); err != nil {
		return err
	}
	t.done("modules")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lo := earlyLoopback()
	var (
		host           *control
		cfg            *guestapi.Config
		stdout, stderr *os.File
		iop            *ioPort
		flush          func() // the app's output is all sent (nil: nothing to wait for)
	)
	if standalone != nil {
		// No host manages this guest (nos export): its config came in the
		// initramfs, the app's output goes to the console, and the power
		// button reaches the app as SIGTERM, which supervise forwards.
		logf("standalone: config from %s", guestapi.StandaloneConfig)
		host, cfg, stdout, stderr = newControl(noHost{}, nil), standalone, os.Stdout, os.Stderr
		go watchPowerButton("/dev/input", 10*time.Second, func() {
			logf("power button pressed: stopping the application")
			_ = unix.Kill(os.Getpid(), unix.SIGTERM)
		})
		t.done("config")
	} else {
		hc, err := connectHost(ctx)
		if err != nil {
			return err
		}
		stdout, stderr, flush = hc.stdout, hc.stderr, hc.flush

		t.done("ports")
		host = newControl(hc.ctl, hc.quiescer)
		host.send(guestapi.Message{Type: guestapi.TypeReady})
		cfg, err = host.waitConfig(ctx)
		if err != nil {
			return err
		}
		if cfg.IO {
			f, err := hc.openIO(ctx)
			if err != nil {
				return err
			}
			iop = newIOPort(f)
		}
		if err := hidePorts(); err != nil {
			return fmt.Errorf("hiding the host's ports from the application: %w", err)
		}
		t.done("config")
	}
	// Errors from here on are the app's environment: report, don't run blind.
	sp, err := setup(ctx, cfg, standalone != nil, lo, t)
	if err != nil {
		fmt.Fprintf(stderr, "nos: %v\n", err) // as start does: nos logs shows it
		if flush != nil {
			flush()
		}
		host.send(guestapi.Message{Type: guestapi.TypeError, Error: err.Error()})
		host.send(guestapi.Message{Type: guestapi.TypeExit, Code: guestapi.ExitCannotExecute})
		return err
	}
	logf("up in %s; kernel booted in %v", t, kernelBoot.Round(time.Millisecond))
	code := supervise(cfg, sp, host, stdout, stderr, iop)
	// What the app left running ends, and volumes are unmounted, before
	// the host hears the exit code: a guest that reported one has left
	// them clean.
	killAll()
	unmountVolumes()
	if flush != nil {
		flush() // the app's last output before its exit code
	}
	host.send(guestapi.Message{Type: guestapi.TypeExit, Code: code})
	return nil
}

// setup prepares the application's environment. A standalone guest then
// configures itself from its platform (configureStandalone), which needs
// the network up and may change the hostname, arguments and environment.
// Its steps are timed into t; lo is earlyLoopback's outcome. It returns
// what starts the application's processes.
func setup(ctx context.Context, cfg *guestapi.Config, standalone bool, lo <-chan error, t *phases) (*spawner, error) {
	if err := setClock(cfg.Time); err != nil {
		logf("%v", err) // a wrong clock is not worth refusing to run
	}
	if err := seedEntropy(cfg.Seed); err != nil {
		logf("%v", err)
	}
	if err := setHostname(cfg.Hostname); err != nil {
		return nil, err
	}
	t.done("system")
	if cfg.Root != nil {
		if cfg.Root.Tag != "" {
			// a shared directory: no device to find
		} else if cfg.Root.PartLabel != "" {
			dev, err := deviceByPartLabel(cfg.Root.PartLabel)
			if err != nil {
				return nil, err
			}
			logf("root: partition %q is %s", cfg.Root.PartLabel, dev)
			cfg.Root.Device = dev
		} else if cfg.Root.Serial != "" {
			dev, err := deviceBySerial(cfg.Root.Serial)
			if err != nil {
				return nil, err
			}
			cfg.Root.Device = dev
		}
		if err := switchRoot(cfg.Root); err != nil {
			return nil, err
		}
		t.done("root")
	}
	if err := mountVolumes(cfg.Mounts, cfg.User); err != nil {
		return nil, err
	}
	if err := mountTmpfs(cfg.Tmpfs); err != nil {
		return nil, err
	}
	if len(cfg.Mounts)+len(cfg.Tmpfs) > 0 {
		t.done("volumes")
	}
	if err := setupNetwork(ctx, cfg, lo); err != nil {
		return nil, err
	}
	t.done("network")
	if err := placeFiles(cfg.Files); err != nil {
		return nil, err
	}
	if err := setRlimits(cfg.Rlimits); err != nil {
		return nil, err
	}
	if standalone {
		name := cfg.Hostname
		configureStandalone(cfg)
		if cfg.Hostname != name {
			if err := setHostname(cfg.Hostname); err != nil {
				return nil, err
			}
			if err := writeHosts(cfg.Hostname, cfg.Hosts); err != nil {
				return nil, err
			}
		}
	}
	sp, err := newSpawner(cfg.Caps)
	t.done("rest")
	return sp, err
}

// supervise starts the application and waits for it, forwarding signals and
// reaping every child that ends meanwhile. It returns the exit code. Probes
// do not pass through here: the control port's reader runs them.
func supervise(cfg *guestapi.Config, sp *spawner, host *control, stdout, stderr *os.File, iop *ioPort) int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	defer signal.Stop(sigs)

	// Probes get a verdict while the app runs: from before the host hears
	// it started until before the host hears it ended.
	defer host.appExited()
	pid, sio, err := start(cfg, sp, stdout, stderr, iop)
	if err != nil {
		fmt.Fprintf(stderr, "nos: %v\n", err)
		host.send(guestapi.Message{Type: guestapi.TypeError, Error: err.Error()})
		return execExitCode(err)
	}
	defer func() {
		// A terminal's output drains once every holder of its slave ended.
		if sio.master != nil {
			killAll()
			sio.waitCopies(2 * time.Second)
		}
	}()
	if iop != nil {
		x := &execer{cfg: cfg, io: iop, spawn: sp}
		host.onExec(x.start)
	}
	host.appStarted(pid)
	host.send(guestapi.Message{Type: guestapi.TypeStarted, PID: pid})

	msgs := host.msgs
	for {
		select {
		case s := <-sigs:
			if s == unix.SIGCHLD {
				if code, done := reap(pid); done {
					return code
				}
				continue
			}
			_ = unix.Kill(pid, s.(syscall.Signal))
		case m, ok := <-msgs:
			if !ok {
				msgs = nil // host went away; keep running
				continue
			}
			if m.Type == guestapi.TypeSignal && m.Signal > 0 {
				_ = unix.Kill(pid, syscall.Signal(m.Signal))
			}
		}
	}
}

// start launches the application with the standard streams on the
// virtio ports, or on a terminal (cfg.TTY), its stdin from the I/O port
// (cfg.Stdin) or /dev/null.
func start(cfg *guestapi.Config, sp *spawner, stdout, stderr *os.File, iop *ioPort) (int, *stdio, error) {
	if len(cfg.Argv) == 0 {
		return 0, nil, errors.New("no command to run: the image has no entrypoint")
	}
	path, err := lookPath(cfg.Argv[0], cfg.Env)
	if err != nil {
		return 0, nil, err
	}
	dir := cfg.WorkingDir
	if dir == "" {
		dir = "/"
	}
	sio, err := newStdio(cfg.TTY, cfg.Stdin && iop != nil, stdout, stderr)
	if err != nil {
		return 0, nil, err
	}
	attr := procAttr(cfg)
	if cfg.TTY {
		setWinsize(sio.master, cfg.Rows, cfg.Cols)
		attr.Setctty, attr.Ctty = true, 0
	}
	p, err := sp.start(path, cfg.Argv, &os.ProcAttr{
		Dir:   dir,
		Env:   cfg.Env,
		Files: sio.files[:],
		Sys:   attr,
	})
	sio.childEnds()
	if err != nil {
		sio.abort()
		return 0, nil, fmt.Errorf("starting %s: %w", cfg.Argv[0], err)
	}
	if iop != nil {
		go iop.pump(guestapi.SessionApp, sio.stdin, sio.master, nil) // the app's signals come as control messages
	}
	pid := p.Pid
	_ = p.Release()
	return pid, sio, nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath resolves a command name against PATH from the app's environment.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in PATH (%s): %w", name, path, os.ErrNotExist)
}

func execExitCode(err error) int {
	if errors.Is(err, os.ErrNotExist) {
		return guestapi.ExitNotFound
	}
	return guestapi.ExitCannotExecute
}

// reap collects every ended child; it reports the app's exit code once the
// app itself has ended.
func reap(app int) (code int, done bool) {
	children.mu.Lock()
	defer children.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return code, done
		}
		if ch, ok := children.m[pid]; ok {
			delete(children.m, pid)
			ch <- exitCode(ws)
		}
		if pid == app {
			done = true
			code = exitCode(ws)
		}
	}
}

func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// killAll ends whatever the application left behind before power-off.
func killAll() {
	_ = unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.ECHILD) {
			return
		}
		if pid <= 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	_ = unix.Kill(-1, unix.SIGKILL)
}

// phases times the init's start-up steps, for the console log: it is how
// one finds where boot time goes inside the guest.
type phases struct {
	last  time.Time
	steps []string
}

func newPhases() *phases { return &phases{last: time.Now()} }

func (p *phases) done(name string) {
	now := time.Now()
	p.steps = append(p.steps, fmt.Sprintf("%s %v", name, now.Sub(p.last).Round(time.Millisecond)))
	p.last = now
}

func (p *phases) String() string { return strings.Join(p.steps, ", ") }
