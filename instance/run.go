package instance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/store"
	"github.com/nosproject/nos/vmm/qemu"
)

// Errors callers can test for with errors.Is.
var (
	ErrQEMUMissing = errors.New("QEMU not installed")
	ErrPortInUse   = errors.New("host port already in use")
	ErrGuestDied   = errors.New("guest stopped without reporting an exit code")
)

// Exit codes nos itself gives, as docker does.
const (
	ExitKilled     = 137 // forced off
	ExitGuestError = 125 // the VM died without an application exit code
)

// Options are what `nos run` was asked for.
type Options struct {
	Image string
	Name  string
	// Entrypoint, when non-empty, replaces the image's entrypoint.
	Entrypoint []string
	// Args, when non-empty, replace the image's Args.
	Args []string
	// Env holds KEY=VALUE overrides of the image's environment.
	Env       []string
	Publish   []qemu.Forward
	MemoryMiB int // 0: the image's default
	CPUs      int // 0: the image's default
	Accel     string
	// Home is nos's data directory; instances live under Home/instances.
	Home string
	// Remove deletes the instance's directory after it ends, even when the
	// VM died abnormally (otherwise its console log is kept to diagnose it).
	Remove bool
	// ConsoleLog, when set, receives the serial console (kernel messages and
	// init diagnostics) instead of the instance directory.
	ConsoleLog string
	// StopTimeout is how long a graceful stop waits before forcing the VM off.
	StopTimeout time.Duration

	Stdout, Stderr io.Writer
	// Interrupts carries the user's stop requests: the first stops the
	// application gracefully (SIGTERM), the second forces the VM off.
	Interrupts <-chan os.Signal
	// Log receives notes such as the accelerator choice; nil discards.
	Log *slog.Logger
}

// Result is how a run ended.
type Result struct {
	ID         string
	ExitCode   int
	ConsoleLog string
}

// Run boots the image and waits for its application to end. A run that
// started returns the application's exit code in Result even when err is
// nil; err reports a VM that could not start or died without an exit code.
func Run(ctx context.Context, st *store.Store, o Options) (Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	img, cfg, kernelPath, initrdPath, err := loadImage(ctx, st, o.Image)
	if err != nil {
		return Result{}, err
	}
	qemuPath, err := exec.LookPath(qemu.Binary)
	if err != nil {
		return Result{}, fmt.Errorf("%s not found: install QEMU with `sudo apt-get install qemu-system-x86`: %w", qemu.Binary, ErrQEMUMissing)
	}
	for _, f := range o.Publish {
		if err := checkHostPort(f); err != nil {
			return Result{}, err
		}
	}
	accel, note, err := ChooseAccel(ctx, o.Accel, filepath.Join(o.Home, "cache"))
	if err != nil {
		return Result{}, err
	}
	if note != "" {
		log.Info(note)
	}

	id := newID()
	dir := filepath.Join(o.Home, "instances", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Result{}, fmt.Errorf("creating instance directory: %w", err)
	}
	res := Result{ID: id, ConsoleLog: filepath.Join(dir, "console.log")}
	if o.ConsoleLog != "" {
		res.ConsoleLog = o.ConsoleLog
	}
	keep := false // set when the VM died and its log explains why
	defer func() {
		if o.Remove || !keep {
			os.RemoveAll(dir)
		}
	}()
	// Unix socket paths are limited to 108 bytes: keep them in a short
	// private directory rather than under a possibly long $NOS_HOME.
	sockDir, err := os.MkdirTemp("", "nos-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(sockDir)

	hostname := o.Name
	if hostname == "" {
		hostname = id[:12]
	}
	m := qemu.Machine{
		Accel:         accel,
		MemoryMiB:     firstNonZero(o.MemoryMiB, cfg.MemoryMiB, image.DefaultMemoryMiB),
		CPUs:          firstNonZero(o.CPUs, cfg.CPUs, image.DefaultCPUs),
		Kernel:        kernelPath,
		Initrd:        initrdPath,
		Cmdline:       cmdline(cfg.KernelCmdline, accel),
		ConsoleLog:    res.ConsoleLog,
		ControlSocket: filepath.Join(sockDir, "ctl"),
		StdoutSocket:  filepath.Join(sockDir, "out"),
		StderrSocket:  filepath.Join(sockDir, "err"),
		Net:           &qemu.UserNet{Forwards: o.Publish},
	}
	gcfg := guestConfig(cfg, o, hostname)
	log.Debug("booting", "image", img.Name+":"+img.Tag, "id", id, "accel", accel)
	code, err := boot(ctx, qemuPath, m, gcfg, o)
	res.ExitCode = code
	keep = errors.Is(err, ErrGuestDied) && o.ConsoleLog == ""
	return res, err
}

func firstNonZero(v ...int) int {
	for _, x := range v {
		if x != 0 {
			return x
		}
	}
	return 0
}

// cmdline adds what depends on the host to the image's command line. Under
// TCG the kernel cannot calibrate the TSC on microvm (no PIT, no HPET) and
// would hang; the emulated TSC runs at the host's rate, so tell it that.
func cmdline(base, accel string) string {
	if accel != qemu.AccelTCG {
		return base
	}
	if khz := hostTSCkHz(); khz > 0 {
		return base + " tsc_early_khz=" + strconv.Itoa(khz)
	}
	return base
}

func hostTSCkHz() int {
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return n
		}
	}
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil && mhz > 0 {
				return int(mhz * 1000)
			}
		}
	}
	return 1000000 // any value lets the kernel boot; timekeeping then drifts
}

func guestConfig(cfg image.Config, o Options, hostname string) *guestapi.Config {
	entry, args := cfg.Entrypoint, cfg.Args
	if len(o.Entrypoint) > 0 {
		entry, args = o.Entrypoint, nil // as docker: a new entrypoint drops the image's args
	}
	if len(o.Args) > 0 {
		args = o.Args
	}
	env := MergeEnv([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOSTNAME=" + hostname,
		"HOME=/root",
	}, cfg.Env)
	env = MergeEnv(env, o.Env)
	seed := make([]byte, 64)
	_, _ = rand.Read(seed)
	return &guestapi.Config{
		Argv:       append(append([]string(nil), entry...), args...),
		Env:        env,
		WorkingDir: cfg.WorkingDir,
		Hostname:   hostname,
		Network: &guestapi.Network{
			Interface: "eth0",
			Address:   qemu.GuestAddress,
			Gateway:   qemu.GuestGateway,
			DNS:       []string{qemu.GuestDNS},
		},
		Seed: seed,
		Time: time.Now(),
	}
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkHostPort fails early, with a clear message, when a published host
// port is taken; QEMU's own error for it is obscure.
func checkHostPort(f qemu.Forward) error {
	addr := net.JoinHostPort(f.HostIP, strconv.Itoa(f.HostPort))
	var c io.Closer
	var err error
	if f.Proto == "udp" {
		c, err = net.ListenPacket("udp4", addr)
	} else {
		c, err = net.Listen("tcp4", addr)
	}
	if err != nil {
		return fmt.Errorf("-p %d: cannot listen on %s/%s (%v): choose another host port: %w", f.HostPort, addr, f.Proto, errors.Unwrap(err), ErrPortInUse)
	}
	return c.Close()
}

func loadImage(ctx context.Context, st *store.Store, ref string) (store.Image, image.Config, string, string, error) {
	var cfg image.Config
	img, err := st.Resolve(ctx, ref)
	if err != nil {
		return img, cfg, "", "", err
	}
	man, err := st.Manifest(img.Manifest.Digest)
	if err != nil {
		return img, cfg, "", "", err
	}
	b, err := st.ReadBlob(man.Config.Digest)
	if err != nil {
		return img, cfg, "", "", fmt.Errorf("reading image config: %w", err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return img, cfg, "", "", fmt.Errorf("image config: %w", err)
	}
	var kernel, initrd string
	for _, l := range man.Layers {
		switch l.MediaType {
		case image.MediaTypeKernel:
			kernel = st.BlobPath(l.Digest)
		case image.MediaTypeInitramfs:
			initrd = st.BlobPath(l.Digest)
		}
	}
	if kernel == "" || initrd == "" {
		return img, cfg, "", "", fmt.Errorf("image %s is not a nos image (no kernel or initramfs layer)", ref)
	}
	return img, cfg, kernel, initrd, nil
}

// boot starts QEMU and runs the control loop until the VM is gone.
func boot(ctx context.Context, qemuPath string, m qemu.Machine, gcfg *guestapi.Config, o Options) (int, error) {
	listeners := map[string]*net.UnixListener{}
	for _, p := range []string{m.ControlSocket, m.StdoutSocket, m.StderrSocket} {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			return 0, fmt.Errorf("listening for the guest: %w", err)
		}
		defer l.Close()
		listeners[p] = l
	}

	var qerr bytes.Buffer
	// Not bound to ctx: stopping is the control loop's business, gracefully.
	cmd := exec.Command(qemuPath, qemu.Command(m)...)
	cmd.Stdout = &qerr
	cmd.Stderr = &qerr
	// Own process group, so the terminal's Ctrl-C reaches nos, not QEMU.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting QEMU: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	conns, err := acceptAll(listeners, []string{m.ControlSocket, m.StdoutSocket, m.StderrSocket}, exited)
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return 0, fmt.Errorf("QEMU failed to start: %s", lastLine(qerr.String(), err.Error()))
	}
	ctl, out, errc := conns[0], conns[1], conns[2]
	defer ctl.Close()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(o.Stdout, out) }()
	go func() { defer wg.Done(); _, _ = io.Copy(o.Stderr, errc) }()

	msgs := make(chan guestapi.Message, 16)
	go readMessages(ctl, msgs)
	enc := json.NewEncoder(ctl)

	stopTimeout := o.StopTimeout
	if stopTimeout == 0 {
		stopTimeout = 10 * time.Second
	}
	var (
		exitCode   = -1
		guestErr   string
		forced     bool
		stopping   bool
		deadline   <-chan time.Time
		done       <-chan struct{}
		interrupts = o.Interrupts
		waitErr    error
	)
	if interrupts == nil {
		done = ctx.Done() // otherwise the same signal would arrive twice
	}
	stop := func() {
		if stopping {
			forced = true
			_ = cmd.Process.Kill()
			return
		}
		stopping = true
		_ = enc.Encode(guestapi.Message{Type: guestapi.TypeSignal, Signal: int(syscall.SIGTERM)})
		deadline = time.After(stopTimeout)
	}
loop:
	for {
		select {
		case waitErr = <-exited:
			break loop
		case msg, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			switch msg.Type {
			case guestapi.TypeReady:
				if err := enc.Encode(guestapi.Message{Type: guestapi.TypeConfig, Config: gcfg}); err != nil {
					guestErr = "sending config: " + err.Error()
				}
			case guestapi.TypeExit:
				exitCode = msg.Code
				// The guest powers off next; don't wait forever if it hangs.
				deadline = time.After(10 * time.Second)
			case guestapi.TypeError:
				guestErr = msg.Error
			}
		case <-interrupts:
			stop()
		case <-done:
			done = nil
			stop()
		case <-deadline:
			forced = true
			_ = cmd.Process.Kill()
		}
	}
	wg.Wait()
	switch {
	case exitCode >= 0:
		return exitCode, nil
	case forced:
		return ExitKilled, nil
	case guestErr != "":
		return ExitGuestError, fmt.Errorf("guest: %s", guestErr)
	default:
		why := consoleTail(m.ConsoleLog)
		if waitErr != nil {
			why = lastLine(qerr.String(), waitErr.Error())
		}
		return ExitGuestError, fmt.Errorf("%w (%s; console log: %s)", ErrGuestDied, why, m.ConsoleLog)
	}
}

// acceptAll waits for QEMU to connect to each socket, or to exit trying.
func acceptAll(ls map[string]*net.UnixListener, order []string, exited <-chan error) ([]net.Conn, error) {
	conns := make([]net.Conn, len(order))
	for i, p := range order {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() { c, err := ls[p].Accept(); ch <- result{c, err} }()
		select {
		case r := <-ch:
			if r.err != nil {
				return nil, r.err
			}
			conns[i] = r.c
		case err := <-exited:
			if err == nil {
				err = errors.New("QEMU exited")
			}
			return nil, err
		case <-time.After(30 * time.Second):
			return nil, errors.New("QEMU did not connect to the guest ports within 30s")
		}
	}
	return conns, nil
}

func readMessages(r io.Reader, out chan<- guestapi.Message) {
	defer close(out)
	dec := json.NewDecoder(r)
	for {
		var m guestapi.Message
		if err := dec.Decode(&m); err != nil {
			return
		}
		out <- m
	}
}

// lastLine returns the last non-empty line of s, or fallback.
func lastLine(s, fallback string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return fallback
}

// consoleTail names the likely cause from the end of the console log.
func consoleTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no console log"
	}
	s := string(b)
	if i := strings.Index(s, "Kernel panic"); i >= 0 {
		line, _, _ := strings.Cut(s[i:], "\n")
		return strings.TrimSpace(line)
	}
	return "last console line: " + lastLine(s, "(empty)")
}
