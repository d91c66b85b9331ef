package ociruntime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/assemble"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/vmm/accel"
	"github.com/nosproject/nos/vmm/qemu"
	"github.com/nosproject/nos/vmm/virtiofs"
)

// Name is the program name nos answers to as an OCI runtime (argv[0]).
const Name = "nos-runtime"

// Version is what --version prints first.
const Version = "0.1.0"

// DefaultRoot is the state root without --root: /run/nos-runtime for root,
// else $XDG_RUNTIME_DIR/nos-runtime, as runc does, so that `state` called
// without flags (podman does) finds what create made.
func DefaultRoot() string {
	if os.Geteuid() != 0 {
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			return filepath.Join(d, Name)
		}
	}
	return "/run/" + Name
}

// globals are the runtime's global flags.
type globals struct {
	root, log, logFormat string
	systemdCgroup, debug bool
	version              bool
}

// usageError is a command line nos-runtime cannot parse.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// ErrUnsupported is wrapped by the commands nos-runtime refuses.
var ErrUnsupported = errors.New("not supported by nos-runtime")

// Stdio are the runtime's standard descriptors: the supervisor keeps
// them, and the app's output goes to Out and Err.
type Stdio struct{ In, Out, Err *os.File }

// Main runs the runtime's command line (args without argv[0]) and returns
// the exit code.
func Main(args []string, stdio Stdio) int {
	if len(args) > 2 && args[0] == superviseVerb {
		return supervise(args[1], args[2], os.NewFile(3, "ready"), stdio)
	}
	if len(args) > 0 && args[0] == execVerb {
		return execHelper(args[1:], stdio)
	}
	stdout, stderr := io.Writer(stdio.Out), io.Writer(stdio.Err)
	g, rest, err := parseGlobals(args)
	if err != nil {
		return report(g, stderr, err)
	}
	if g.version {
		fmt.Fprintf(stdout, "%s version %s\nspec: %s\nvmm: qemu microvm\n", Name, Version, specs.Version)
		return 0
	}
	if len(rest) == 0 {
		return report(g, stderr, usageError{"no command: want create, start, state, kill, delete, features"})
	}
	if rest[0] == "exec" {
		code, err := cmdExec(store{g.root}, rest[1:], stdio)
		if err != nil {
			return report(g, stderr, err)
		}
		return code
	}
	if err := run(g, rest[0], rest[1:], stdio, stdout); err != nil {
		return report(g, stderr, err)
	}
	return 0
}

func parseGlobals(args []string) (globals, []string, error) {
	g := globals{}
	fs := pflag.NewFlagSet(Name, pflag.ContinueOnError)
	fs.SetInterspersed(false)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.root, "root", DefaultRoot(), "state directory")
	fs.StringVar(&g.log, "log", "", "log file")
	fs.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&g.systemdCgroup, "systemd-cgroup", false, "accepted and ignored: the VM's resources come from config.json")
	fs.BoolVar(&g.debug, "debug", false, "debug logging")
	fs.BoolVarP(&g.version, "version", "v", false, "print the version")
	// runc's other global flags, accepted so that callers passing them work.
	fs.String("criu", "", "ignored")
	fs.String("rootless", "", "ignored")
	if err := fs.Parse(normalizeLong(args, "root", "log", "log-format", "systemd-cgroup", "debug", "criu", "rootless", "version")); err != nil {
		return g, nil, usageError{err.Error()}
	}
	if g.logFormat != "text" && g.logFormat != "json" {
		return g, nil, usageError{fmt.Sprintf("--log-format %q: want text or json", g.logFormat)}
	}
	if !filepath.IsAbs(g.root) {
		abs, err := filepath.Abs(g.root)
		if err != nil {
			return g, nil, err
		}
		g.root = abs
	}
	return g, fs.Args(), nil
}

// report prints err on stderr and, with --log, appends it there: as a JSON
// line {"level":"error","msg":…,"time":…} with --log-format json (what
// containerd's shim reads back), else as text.
func report(g globals, stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s: %v\n", Name, err)
	if g.log != "" {
		if f, ferr := os.OpenFile(g.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); ferr == nil {
			_, _ = f.Write(logLine(g.logFormat, "error", err.Error(), time.Now()))
			f.Close()
		}
	}
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

func logLine(format, level, msg string, t time.Time) []byte {
	if format == "json" {
		b, _ := json.Marshal(struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Time  string `json:"time"`
		}{level, msg, t.UTC().Format(time.RFC3339Nano)})
		return append(b, '\n')
	}
	return fmt.Appendf(nil, "time=%q level=%s msg=%q\n", t.UTC().Format(time.RFC3339Nano), level, msg)
}

func run(g globals, cmd string, args []string, stdio Stdio, stdout io.Writer) error {
	st := store{g.root}
	switch cmd {
	case "create":
		return cmdCreate(g, st, args, stdio)
	case "start":
		id, err := oneID("start", args)
		if err != nil {
			return err
		}
		return cmdStart(st, id, stdio.Err)
	case "state":
		id, err := oneID("state", args)
		if err != nil {
			return err
		}
		r, err := st.read(id)
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(r.ociState(), "", "  ")
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	case "kill":
		return cmdKill(st, args)
	case "delete":
		return cmdDelete(st, args, stdio.Err)
	case "features":
		b, _ := json.MarshalIndent(runtimeFeatures(), "", "  ")
		_, err := fmt.Fprintf(stdout, "%s\n", b)
		return err
	case "list":
		return cmdList(st, stdout)
	case "pause", "resume":
		return fmt.Errorf("%s: %w: a nos VM cannot be frozen yet", cmd, ErrUnsupported)
	case "update":
		return fmt.Errorf("update: %w: a running VM's memory and vCPUs are fixed at start", ErrUnsupported)
	case "checkpoint", "restore":
		return fmt.Errorf("%s: %w: VMs are not checkpointed", cmd, ErrUnsupported)
	case "ps":
		return cmdPs(st, args, stdout)
	case "events", "run", "spec":
		return fmt.Errorf("%s: %w yet", cmd, ErrUnsupported)
	}
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

func oneID(cmd string, args []string) (string, error) {
	if len(args) != 1 {
		return "", usageError{fmt.Sprintf("%s takes one container id, got %d arguments", cmd, len(args))}
	}
	return args[0], checkID(args[0])
}

// createFlags are create's options.
type createFlags struct {
	bundle, pidFile, consoleSocket string
	noPivot, noNewKeyring          bool
	preserveFDs                    int
	id                             string
}

func parseCreate(args []string) (createFlags, error) {
	var c createFlags
	fs := pflag.NewFlagSet("create", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVarP(&c.bundle, "bundle", "b", ".", "bundle directory")
	fs.StringVar(&c.pidFile, "pid-file", "", "where the container's pid goes")
	fs.StringVar(&c.consoleSocket, "console-socket", "", "unix socket for the pty master")
	fs.BoolVar(&c.noPivot, "no-pivot", false, "ignored: the VM's root is its own")
	fs.BoolVar(&c.noNewKeyring, "no-new-keyring", false, "ignored: the VM has its own keyrings")
	fs.IntVar(&c.preserveFDs, "preserve-fds", 0, "extra descriptors (not passed to the VM)")
	if err := fs.Parse(normalizeLong(args, "bundle", "pid-file", "console-socket", "no-pivot", "no-new-keyring", "preserve-fds")); err != nil {
		return c, usageError{"create: " + err.Error()}
	}
	if fs.NArg() != 1 {
		return c, usageError{fmt.Sprintf("create takes one container id, got %d arguments", fs.NArg())}
	}
	c.id = fs.Arg(0)
	return c, checkID(c.id)
}

// normalizeLong turns -name into --name for the given long flags.
func normalizeLong(args []string, names ...string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			n, _, _ := strings.Cut(a[1:], "=")
			for _, want := range names {
				if n == want {
					a = "-" + a
				}
			}
		}
		out[i] = a
	}
	return out
}

func cmdCreate(g globals, st store, args []string, stdio Stdio) error {
	c, err := parseCreate(args)
	if err != nil {
		return err
	}
	bundle, err := filepath.Abs(c.bundle)
	if err != nil {
		return err
	}
	spec, err := LoadBundle(bundle)
	if err != nil {
		return err
	}
	plan, err := MakePlan(spec, bundle, runtime.NumCPU())
	if err != nil {
		return err
	}
	switch {
	case plan.Terminal && c.consoleSocket == "":
		return usageError{"create: process.terminal is true: --console-socket is needed for the terminal's master"}
	case !plan.Terminal && c.consoleSocket != "":
		return usageError{"create: --console-socket without process.terminal"}
	}
	if fi, err := os.Stat(plan.RootFS); err != nil || !fi.IsDir() {
		return fmt.Errorf("root.path %s is not a directory", plan.RootFS)
	}
	ctx := context.Background()
	if err := (qemu.Driver{}).Check(ctx); err != nil {
		return err
	}
	if _, err := virtiofs.Binary(); err != nil {
		return err
	}
	kernel, err := findKernel()
	if err != nil {
		return err
	}
	initPath, err := findInit()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(g.root, 0o700); err != nil {
		return err
	}
	initrd, err := guestInitrd(g.root, initPath)
	if err != nil {
		return fmt.Errorf("the guest's initramfs: %w", err)
	}
	h, err := home.Default()
	if err != nil {
		return err
	}
	acc, _, err := accel.Choose(ctx, "", h.Cache())
	if err != nil {
		return err
	}
	l := launch{Plan: plan, Kernel: kernel, Initrd: initrd, Accel: acc, Cmdline: instance.KernelCmdline(assemble.DefaultCmdline, acc)}
	// Without a terminal, a pipe, FIFO or socket as stdin is the engine's
	// -i: the app reads it. /dev/null (no -i) is not forwarded.
	l.Stdin = !plan.Terminal && isStreamInput(stdio.In)

	dir := st.dir(c.id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("container %s exists already", c.id)
		}
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if err := writeJSONAtomic(filepath.Join(dir, planFile), l); err != nil {
		return err
	}
	rec := &record{ID: c.id, Bundle: bundle, Status: specs.StateCreating, Annotations: spec.Annotations, Created: time.Now().UTC()}
	if err := st.write(rec); err != nil {
		return err
	}
	var tty *os.File
	if plan.Terminal {
		if tty, err = newConsole(c.consoleSocket, plan.ConsoleRows, plan.ConsoleCols); err != nil {
			return err
		}
		defer tty.Close()
	}
	pid, err := startSupervisor(g.root, c.id, stdio, tty, plan.NewNetNS)
	if err != nil {
		return err
	}
	if h := plan.Hooks; h != nil {
		state := specs.State{Version: specs.Version, ID: c.id, Status: specs.StateCreated, Pid: pid, Bundle: bundle, Annotations: spec.Annotations}
		err := runHooks("prestart", h.Prestart, state)
		if err == nil {
			err = runHooks("createRuntime", h.CreateRuntime, state)
		}
		if err != nil {
			_ = unix.Kill(pid, unix.SIGKILL)
			return err
		}
	}
	if c.pidFile != "" {
		if err := writePidFile(c.pidFile, pid); err != nil {
			_ = unix.Kill(pid, unix.SIGKILL)
			return err
		}
	}
	ok = true
	return nil
}

// startSupervisor runs the supervisor as a child that keeps this
// process's standard descriptors, in a session of its own, and waits for
// it to be ready. With tty (the container's terminal) the supervisor's
// standard descriptors are tty instead, and it is its controlling
// terminal: the supervisor leads tty's session, so the kernel sends it
// SIGWINCH when the engine resizes the master.
func startSupervisor(root, id string, stdio Stdio, tty *os.File, newNetNS bool) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{Name, superviseVerb, root, id},
		Dir:         "/",
		Stdin:       stdio.In,
		Stdout:      stdio.Out,
		Stderr:      stdio.Err,
		ExtraFiles:  []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if tty != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, 0
	}
	if newNetNS {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWNET
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("starting the supervisor: %w", err)
	}
	w.Close()
	pid := cmd.Process.Pid
	_ = cmd.Process.Release() // our parent (conmon, the shim) reaps it
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if line != "ok" {
		_ = unix.Kill(pid, unix.SIGKILL)
		if line == "" {
			line = "it exited early"
		}
		return 0, fmt.Errorf("the supervisor: %s", line)
	}
	return pid, nil
}

// writePidFile writes pid atomically, as runc does: a reader never sees a
// partial file.
func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, abs)
}

// call sends one request to the container's supervisor.
func call(st store, id string, req request) error {
	c, err := net.DialTimeout("unix", socketPath(st.dir(id)), 5*time.Second)
	if err != nil {
		return fmt.Errorf("container %s: its supervisor does not answer: %w", id, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return err
	}
	var rep reply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return fmt.Errorf("container %s: no answer from its supervisor: %w", id, err)
	}
	if rep.Error != "" {
		return fmt.Errorf("container %s: %s", id, rep.Error)
	}
	return nil
}

func cmdStart(st store, id string, stderr io.Writer) error {
	r, err := st.read(id)
	if err != nil {
		return err
	}
	if s := r.current(); s != specs.StateCreated {
		return fmt.Errorf("cannot start container %s: it is %s, not created", id, s)
	}
	if err := call(st, id, request{Op: "start"}); err != nil {
		return err
	}
	if h := readHooks(st, id); h != nil && len(h.Poststart) > 0 {
		if r, err := st.read(id); err == nil {
			if err := runHooks("poststart", h.Poststart, r.ociState().State); err != nil {
				warn(stderr, err)
			}
		}
	}
	return nil
}

// warn prints a warning (a hook that failed after the fact) where errors go.
func warn(stderr io.Writer, err error) {
	if stderr != nil {
		fmt.Fprintf(stderr, "%s: warning: %v\n", Name, err)
	}
}

// readHooks are the hooks in the container's plan; nil when it has none
// or cannot be read.
func readHooks(st store, id string) *specs.Hooks {
	var l launch
	if err := readJSONFile(filepath.Join(st.dir(id), planFile), &l); err != nil {
		return nil
	}
	return l.Plan.Hooks
}

// ParseSignal reads a signal as kill takes it: a number, or a name with
// or without SIG (TERM, SIGTERM, sigkill).
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, usageError{fmt.Sprintf("signal %d is out of range (1-64)", n)}
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, usageError{fmt.Sprintf("unknown signal %q", s)}
}

func cmdKill(st store, args []string) error {
	fs := pflag.NewFlagSet("kill", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	all := fs.BoolP("all", "a", false, "every process of the container (the VM has one app)")
	if err := fs.Parse(normalizeLong(args, "all")); err != nil {
		return usageError{"kill: " + err.Error()}
	}
	_ = all
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return usageError{"kill takes a container id and an optional signal"}
	}
	id := fs.Arg(0)
	if err := checkID(id); err != nil {
		return err
	}
	sig := syscall.SIGTERM
	if fs.NArg() == 2 {
		var err error
		if sig, err = ParseSignal(fs.Arg(1)); err != nil {
			return err
		}
	}
	r, err := st.read(id)
	if err != nil {
		return err
	}
	if s := r.current(); s != specs.StateCreated && s != specs.StateRunning {
		return fmt.Errorf("container %s is not running (%s)", id, s)
	}
	if err := call(st, id, request{Op: "kill", Signal: int(sig)}); err != nil {
		if sig == syscall.SIGKILL && alive(r.Pid, r.PidStart) {
			return unix.Kill(r.Pid, unix.SIGKILL) // its QEMU dies with it
		}
		return err
	}
	return nil
}

func cmdDelete(st store, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("delete", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	force := fs.BoolP("force", "f", false, "kill a container that is not stopped")
	if err := fs.Parse(normalizeLong(args, "force")); err != nil {
		return usageError{"delete: " + err.Error()}
	}
	if fs.NArg() != 1 {
		return usageError{"delete takes one container id"}
	}
	id := fs.Arg(0)
	if err := checkID(id); err != nil {
		return err
	}
	r, err := st.read(id)
	if errors.Is(err, ErrNotExist) && *force {
		_ = os.RemoveAll(st.dir(id)) // a create that died halfway
		return nil
	}
	if err != nil {
		return err
	}
	if s := r.current(); s != specs.StateStopped {
		if !*force {
			return fmt.Errorf("cannot delete container %s that is not stopped: %s", id, s)
		}
		if err := call(st, id, request{Op: "kill", Signal: int(syscall.SIGKILL)}); err != nil && alive(r.Pid, r.PidStart) {
			_ = unix.Kill(r.Pid, unix.SIGKILL)
		}
		deadline := time.Now().Add(10 * time.Second)
		for alive(r.Pid, r.PidStart) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(r.Pid, r.PidStart) {
			_ = unix.Kill(r.Pid, unix.SIGKILL)
		}
	}
	if err := teardownNetworkDir(st.dir(id)); err != nil {
		return err
	}
	if h := readHooks(st, id); h != nil && len(h.Poststop) > 0 {
		state := r.ociState().State
		state.Status = specs.StateStopped
		if err := runHooks("poststop", h.Poststop, state); err != nil {
			warn(stderr, err)
		}
	}
	sock := socketPath(st.dir(id))
	if filepath.Dir(sock) != st.dir(id) {
		_ = os.RemoveAll(filepath.Dir(sock))
	}
	return os.RemoveAll(st.dir(id))
}

func cmdList(st store, stdout io.Writer) error {
	ents, err := os.ReadDir(st.root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fmt.Fprintf(stdout, "%-20s %-8s %-10s %s\n", "ID", "PID", "STATUS", "BUNDLE")
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		r, err := st.read(e.Name())
		if err != nil {
			continue
		}
		s := r.ociState()
		fmt.Fprintf(stdout, "%-20s %-8d %-10s %s\n", s.ID, s.Pid, s.Status, s.Bundle)
	}
	return nil
}

// runtimeFeatures is what `features` prints.
func runtimeFeatures() features.Features {
	return features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "poststart", "poststop"},
		MountOptions:  []string{},
		Linux: &features.Linux{
			// The VM is every namespace at once; none is joined yet.
			Namespaces:   []string{},
			Capabilities: prefixed(capNames),
		},
		Annotations: map[string]string{
			"org.nosproject.nos.runtime.vmm":     "qemu-microvm",
			"org.nosproject.nos.runtime.rootfs":  "virtiofs",
			"org.nosproject.nos.runtime.version": Version,
		},
	}
}

func prefixed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "CAP_" + n
	}
	return out
}
