package ociruntime

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/vmm"
	"github.com/nosproject/nos/vmm/qemu"
)

// The supervisor is the process whose pid create writes to --pid-file: a
// child of create (so of conmon or containerd's shim, which reap it) that
// lives as long as the workload and exits with the app's exit code (128+N
// when signal N ended it, 137 when the VM was forced off). It inherits
// create's standard descriptors and hands the app's output to them. It
// serves start and kill on a unix socket in the state directory, boots
// the VM at start, keeps state.json true, and leaves nothing behind when
// it ends: QEMU and virtiofsd die with it (they run under Pdeathsig).

// superviseVerb is the hidden command the supervisor runs as.
const superviseVerb = "__supervise"

// rootTag is the virtiofs tag of the guest's root.
const rootTag = "nos-root"

// launch is what create decided and the supervisor boots: plan.json.
type launch struct {
	Plan    Plan   `json:"plan"`
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd"`
	Accel   string `json:"accel"`
	Cmdline string `json:"cmdline"`
	// Stdin: the supervisor's stdin is the engine's pipe (-i), forwarded
	// to the app with its end. With Plan.Terminal the terminal is stdin.
	Stdin bool `json:"stdin,omitempty"`
}

// request is one line on the supervisor's socket; reply answers it.
type request struct {
	Op     string         `json:"op"` // "start", "kill" or "exec"
	Signal int            `json:"signal,omitempty"`
	Exec   *guestapi.Exec `json:"exec,omitempty"`
}

type reply struct {
	Error string `json:"error,omitempty"`
}

type supervisor struct {
	st  store
	id  string
	dir string
	l   launch
	log *slog.Logger

	mu      sync.Mutex
	rec     *record
	started bool
	vm      *vmm.VM
	net     *vmNetwork // the VM's NIC in the container's namespace, or nil
	end     chan int   // the exit code, once
	stdio   Stdio
	size    [2]uint16 // the terminal's size the guest last got
}

// supervise is the supervisor's body; ready (descriptor 3) hears "ok" or
// an error once the socket is up. It returns the exit code.
func supervise(root, id string, ready *os.File, stdio Stdio) int {
	s := &supervisor{st: store{root}, id: id, dir: store{root}.dir(id), end: make(chan int, 1), stdio: stdio}
	fail := func(err error) int {
		fmt.Fprintf(ready, "%v\n", err)
		ready.Close()
		return 1
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	s.log = slog.New(slog.NewTextHandler(logf, nil))
	if err := readJSONFile(filepath.Join(s.dir, planFile), &s.l); err != nil {
		return fail(err)
	}
	if s.rec, err = s.st.read(id); err != nil {
		return fail(err)
	}
	sock := socketPath(s.dir)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fail(fmt.Errorf("supervisor socket: %w", err))
	}
	defer os.Remove(sock)
	defer ln.Close()

	// Signals to the supervisor itself go to the app, as they would to a
	// container's init; a broken stdout pipe must not kill it.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	signal.Ignore(syscall.SIGPIPE)
	go func() {
		for sig := range sigs {
			s.log.Info("signal to the supervisor: forwarded", "signal", sig.String())
			_ = s.kill(sig.(syscall.Signal))
		}
	}()

	start, _ := startTime(os.Getpid())
	s.mu.Lock()
	s.rec.Pid, s.rec.PidStart, s.rec.Status = os.Getpid(), start, "created"
	err = s.st.write(s.rec)
	s.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	go s.serve(ln)
	s.log.Info("supervisor up", "pid", os.Getpid(), "plan", s.l.Plan)
	fmt.Fprintln(ready, "ok")
	ready.Close()

	code := <-s.end
	s.mu.Lock()
	s.rec.Status, s.rec.ExitCode, s.rec.Finished = "stopped", &code, time.Now().UTC()
	if err := s.st.write(s.rec); err != nil {
		s.log.Error("state write", "err", err)
	}
	s.mu.Unlock()
	s.log.Info("supervisor exiting", "exit", code)
	return code
}

func (s *supervisor) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(c)
			line, err := br.ReadBytes('\n')
			var req request
			if err != nil || json.Unmarshal(line, &req) != nil {
				return
			}
			if req.Op == "exec" {
				s.execSession(c, br, req.Exec)
				return
			}
			var rep reply
			switch req.Op {
			case "start":
				err = s.start()
			case "kill":
				err = s.kill(syscall.Signal(req.Signal))
			default:
				err = fmt.Errorf("unknown request %q", req.Op)
			}
			if err != nil {
				rep.Error = err.Error()
			}
			_ = json.NewEncoder(c).Encode(rep)
		}()
	}
}

// start boots the VM; it returns once QEMU runs.
func (s *supervisor) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("the container was started already")
	}
	if s.rec.Status != "created" {
		return fmt.Errorf("the container is %s, not created", s.rec.Status)
	}
	s.started = true
	began := time.Now()
	// The bind-mounted files are read now, not at create: the engine may
	// write them until start.
	err := readFiles(s.l.Plan.Files)
	var vm *vmm.VM
	if err == nil {
		vm, err = s.boot()
	}
	if err != nil {
		s.log.Error("boot failed", "err", err)
		fmt.Fprintf(s.stdio.Err, "nos-runtime: %v\n", err)
		s.finish(vmm.ExitGuestError)
		return err
	}
	s.vm = vm
	s.forwardInput(vm)
	s.rec.Status, s.rec.Started = "running", time.Now().UTC()
	if err := s.st.write(s.rec); err != nil {
		s.log.Error("state write", "err", err)
	}
	s.log.Info("VM started", "pid", vm.PID(), "took", time.Since(began).Round(time.Millisecond))
	go func() {
		o := vm.Wait()
		s.log.Info("VM ended", "exit", o.ExitCode, "crash", o.Crash, "forced", o.Forced)
		s.net.close()
		if o.Crash != "" {
			fmt.Fprintf(s.stdio.Err, "nos-runtime: the VM ended without the app's exit code: %s\n", o.Crash)
		}
		s.finish(o.ExitCode)
	}()
	return nil
}

// forwardInput copies the supervisor's stdin to the app as FrameStdin:
// the terminal's input (the engine writes into the master), or the
// engine's pipe, whose end becomes FrameEOF. With a terminal, its size
// follows the master's: the supervisor leads the terminal's session, so
// the kernel sends it SIGWINCH when the engine sets the size (TIOCSWINSZ
// on the master), and it reads the new size from the slave. A signal,
// not polling: no wakeups while nothing changes, and no resize missed
// between polls.
func (s *supervisor) forwardInput(vm *vmm.VM) {
	p := s.l.Plan
	if !p.Terminal && !s.l.Stdin {
		return
	}
	in := s.stdio.In
	if p.Terminal {
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		winch <- syscall.SIGWINCH // a resize while the VM booted
		go func() {
			for range winch {
				r, c := termSize(in)
				if r == 0 || c == 0 || [2]uint16{r, c} == s.size {
					continue
				}
				s.size = [2]uint16{r, c}
				s.log.Info("terminal resized", "rows", r, "cols", c)
				if err := vm.Input(guestapi.ResizeFrame(guestapi.SessionApp, r, c)); err != nil {
					return
				}
			}
		}()
	}
	go func() {
		buf := make([]byte, guestapi.MaxFrameData)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				if vm.Input(guestapi.Frame{Kind: guestapi.FrameStdin, Data: append([]byte(nil), buf[:n]...)}) != nil {
					return
				}
			}
			if err != nil {
				// A terminal's reads fail when the engine closes the
				// master (the hang-up, SIGHUP, reaches the app); a pipe's
				// end is the app's end of file.
				if !p.Terminal {
					_ = vm.Input(guestapi.Frame{Kind: guestapi.FrameEOF})
				}
				s.log.Info("stdin ended", "err", err)
				return
			}
		}
	}()
}

func (s *supervisor) finish(code int) {
	select {
	case s.end <- code:
	default:
	}
}

// kill delivers sig: to the app through nos-init while the VM runs
// (SIGKILL forces the VM off), else it ends the created container.
func (s *supervisor) kill(sig syscall.Signal) error {
	s.mu.Lock()
	vm, started := s.vm, s.started
	s.mu.Unlock()
	switch {
	case vm != nil && sig == syscall.SIGKILL:
		vm.Kill()
	case vm != nil:
		vm.Signal(sig)
	case !started:
		// Nothing runs yet: the container ends as if its init died of sig.
		if sig != 0 {
			s.finish(128 + int(sig))
		}
	default:
		return errors.New("the container is not running")
	}
	return nil
}

// boot starts the VM of the plan. Called with s.mu held.
func (s *supervisor) boot() (*vmm.VM, error) {
	p := s.l.Plan
	m := vmm.Machine{
		Accel:        s.l.Accel,
		MemoryMiB:    p.MemoryMiB,
		CPUs:         p.CPUs,
		Kernel:       s.l.Kernel,
		Initrd:       s.l.Initrd,
		Cmdline:      s.l.Cmdline,
		ConsoleLog:   filepath.Join(s.dir, consoleFile),
		TCGBufferMiB: vmm.DefaultTCGBufferMiB(),
		// The interactive streams (exec sessions, the app's stdin, its
		// terminal) with the rest, over one port: nos-runtime's init is
		// this nos's own.
		Channels: vmm.MuxedChannels(),
		Shares:   []vmm.Share{{Tag: rootTag, Source: p.RootFS, ReadOnly: p.ReadOnly}},
	}
	cfg := guestConfig(p, s.id)
	cfg.IO = true
	for i, b := range p.Binds {
		fi, err := os.Stat(b.Source)
		if err != nil || !fi.IsDir() {
			s.log.Warn("bind mount skipped: nos-runtime shares directories only", "source", b.Source, "target", b.Target)
			continue
		}
		tag := fmt.Sprintf("nos-bind%d", i)
		m.Shares = append(m.Shares, vmm.Share{Tag: tag, Source: b.Source, ReadOnly: b.ReadOnly})
		cfg.Mounts = append(cfg.Mounts, guestapi.Mount{Tag: tag, Target: b.Target, FSType: "virtiofs", ReadOnly: b.ReadOnly})
	}
	if p.Terminal || s.l.Stdin {
		cfg.Stdin, cfg.TTY = true, p.Terminal
		if p.Terminal {
			cfg.Rows, cfg.Cols = termSize(s.stdio.In) // the engine may have sized the master
			if cfg.Rows == 0 || cfg.Cols == 0 {
				cfg.Rows, cfg.Cols = p.ConsoleRows, p.ConsoleCols
			}
			s.size = [2]uint16{cfg.Rows, cfg.Cols}
		}
	}
	if p.NewNetNS {
		// The supervisor's own namespace, where the engine's hooks put
		// its veth.
		p.NetNS = fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	}
	vn, nic, gnet, err := setupNetwork(p, s.dir)
	if err != nil {
		return nil, fmt.Errorf("the container's network: %w", err)
	}
	if nic != nil {
		m.NICs, cfg.Network = []vmm.NIC{*nic}, gnet
		s.log.Info("network", "netns", p.NetNS, "veth", vn.state.Veth, "address", gnet.Address, "gateway", gnet.Gateway, "mac", gnet.MAC, "dns", gnet.DNS)
	}
	vm, err := vmm.Boot(context.Background(), qemu.Driver{}, m, vmm.Guest{Config: cfg, Stdout: s.stdio.Out, Stderr: s.stdio.Err})
	if err != nil {
		vn.close()
		return nil, err
	}
	s.net = vn
	return vm, nil
}

// guestConfig is what nos-init gets: the plan's process in the shared root.
func guestConfig(p Plan, id string) *guestapi.Config {
	seed := make([]byte, 64)
	_, _ = rand.Read(seed)
	hostname := p.Hostname
	if hostname == "" {
		hostname = id[:min(len(id), 12)]
	}
	u := p.User
	var files []guestapi.File
	for _, f := range p.Files {
		files = append(files, guestapi.File{Path: f.Path, Mode: uint32(f.Mode), Data: f.Data})
	}
	return &guestapi.Config{
		Files: files,
		Argv:  p.Argv, Env: p.Env, WorkingDir: p.Cwd, Hostname: hostname,
		Seed: seed, Time: time.Now(), User: &u, Caps: p.Caps, Rlimits: p.Rlimits, Tmpfs: p.Tmpfs,
		Root: &guestapi.Root{Tag: rootTag, FSType: "virtiofs", Writable: !p.ReadOnly},
	}
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
