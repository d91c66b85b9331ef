package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/internal/buildstamp"
	"github.com/nosproject/nos/store"
	"github.com/nosproject/nos/transfer"
)

type runFlags struct {
	user      string
	capAdd    []string
	addHosts  []string
	hostPorts []string
	publish   []string
	env       []string
	memory    string
	cpus      int
	name      string
	accel     string
	rm        bool
	detach    bool
	stopT     int
	entry     string
	restart   string
	health    healthFlags
	volumes   []string
	networks  []string
	verifyKey string
	ip        string
	aliases   []string
	mounts    []string
	// the root disk and tmpfs mounts
	readOnly  bool
	tmpfsSize string
	tmpfs     []string
	// pulling the image from its registry
	pull     string
	registry registryFlags
	labels   []string
	// interactive use
	interactive, tty bool
	snapshot         bool
	detachKeys       string
}

type healthFlags struct {
	http, tcp                  string
	port, retries              int
	interval, timeout, startup time.Duration
}

func newRunCmd(e *env) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [ARGS...]",
		Short: "Boot an image and run its application",
		Long: `Run boots IMAGE under QEMU. In the foreground it shows the application's output
and exits with the application's exit code: Ctrl-C stops the application
gracefully (it gets SIGTERM), a second Ctrl-C forces the VM off. With -d it
prints the instance ID and leaves the instance running under its own monitor
process; see nos ps, logs, stop.

ARGS replace the image's default arguments; -e adds or overrides environment
variables without a rebuild and is never put on the kernel command line.
Restart policies reboot the VM, so a crashed kernel or QEMU is handled like
a failed application.

An image with a root disk (a dynamic program, a root tree, a container
image) runs on a writable root, as a container does: an overlay whose
changes live in RAM (--tmpfs-size caps them) and are lost when the VM
stops. --read-only keeps the root read-only. --tmpfs adds tmpfs mounts.`,
		Example: `  nos run hello
  nos run -d --name web -p 8080:8080 --restart on-failure:5 --health-http /healthz web
  nos run --rm -e TOKEN=s3cret -m 512m web --verbose`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(e, args)
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			code, err := runInstance(cmd.Context(), e, o, &f)
			if err != nil {
				return &exitError{code: instance.ExitGuestError, err: err}
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after IMAGE belong to the application
	fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the instance ID")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a guest port on the host, [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp] (repeatable)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable, KEY=VALUE, or KEY to pass the host's value (repeatable)")
	fl.StringVarP(&f.memory, "memory", "m", "", "guest memory, e.g. 256m or 1g (default: the image's)")
	fl.IntVar(&f.cpus, "cpus", 0, "number of virtual CPUs (default: the image's)")
	fl.StringVar(&f.name, "name", "", "name of the instance, also the guest's hostname")
	fl.StringVar(&f.accel, "accel", "auto", "accelerator: auto, kvm or tcg")
	fl.BoolVar(&f.rm, "rm", false, "remove the instance when it ends")
	fl.StringVar(&f.entry, "entrypoint", "", "override the image's entrypoint (the program to run)")
	fl.StringVarP(&f.user, "user", "u", "", "run the application as UID[:GID] instead of the image's user")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "add NAME:IP to the guest's /etc/hosts (repeatable); NAME:host-gateway names the host, which the guest may reach only then")
	fl.StringArrayVar(&f.hostPorts, "host-port", nil, "with --add-host NAME:host-gateway, the host's only ports the guest may reach, PORT[,PORT...] (repeatable; default: all)")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "capability the application keeps besides the image's, e.g. NET_BIND_SERVICE (repeatable)")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep the application's stdin open and forward ours to it")
	fl.BoolVar(&f.snapshot, "snapshot", false, "start from a saved state of the VM when there is one; else boot and save one once the app is ready (its health check passes, or its first published port accepts)")
	fl.BoolVarP(&f.tty, "tty", "t", false, "run the application on a terminal (with -i, ours in raw mode: Ctrl-C goes to the application, Ctrl-P Ctrl-Q detaches)")
	fl.StringVar(&f.detachKeys, "detach-keys", defaultDetachKeys, "with -it, the keys that detach from the instance and leave it running (empty: none)")
	fl.IntVar(&f.stopT, "time", 10, "seconds a stop waits for the application before forcing the VM off")
	fl.StringVar(&f.verifyKey, "verify-key", "", "refuse to run the image unless it carries a valid signature by this public key (cosign's PEM)")
	fl.StringArrayVar(&f.networks, "network", nil, "join a private network (nos network create), repeatable; default: user-mode NAT; none: no NIC")
	fl.StringVar(&f.ip, "ip", "", "the instance's IPv4 address on its first --network (default: the lowest free)")
	fl.StringArrayVar(&f.aliases, "network-alias", nil, "another name the instance answers to on its first --network (repeatable)")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "mount a named volume, NAME:/PATH[:ro] (made when missing), or share a host directory, /HOST/DIR:/PATH[:ro] (virtiofs; repeatable)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "mount a volume, type=volume,source=NAME,target=/PATH[,readonly], or a host directory, type=bind,source=/HOST/DIR,... (repeatable)")
	fl.StringVar(&f.restart, "restart", "no", "restart policy: no, on-failure[:MAX], always or unless-stopped")
	fl.StringVar(&f.health.http, "health-http", "", "health check: HTTP GET of this path must answer 2xx/3xx")
	fl.StringVar(&f.health.tcp, "health-tcp", "", "health check: this guest port must accept TCP connections")
	fl.IntVar(&f.health.port, "health-port", 0, "guest port for --health-http (default: first published or exposed port)")
	fl.DurationVar(&f.health.interval, "health-interval", 30*time.Second, "time between health checks")
	fl.DurationVar(&f.health.timeout, "health-timeout", 5*time.Second, "time a health check may take")
	fl.IntVar(&f.health.retries, "health-retries", 3, "consecutive failures that make the instance unhealthy")
	fl.DurationVar(&f.health.startup, "health-start-period", 0, "time after boot during which failures do not count")
	fl.BoolVar(&f.readOnly, "read-only", false, "keep the image's root disk read-only (default: writable, changes lost at stop)")
	fl.StringVar(&f.tmpfsSize, "tmpfs-size", "", "cap of the writable root's changes, held in RAM, e.g. 128m (default: a quarter of the guest memory)")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "mount a tmpfs, PATH[:size=SIZE,mode=OCTAL] (repeatable)")
	fl.StringVar(&f.pull, "pull", "missing", "pull an IMAGE that names a registry (HOST[:PORT]/NAME): missing (when not in the store), always or never")
	f.registry.add(fl)
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "set metadata on the instance, KEY=VALUE (repeatable; nos inspect shows it)")
	return cmd
}

func (f *runFlags) options(e *env, args []string) (instance.Options, error) {
	o := instance.Options{
		Image: args[0], Args: args[1:], Name: f.name, CPUs: f.cpus, Accel: f.accel,
		StopTimeout: time.Duration(f.stopT) * time.Second,
		AutoRemove:  f.rm && f.detach,
		Stdin:       f.interactive, TTY: f.tty,
		Snapshot: f.snapshot,
	}
	if f.tty {
		o.Rows, o.Cols = terminalSize(e)
	}
	if _, err := parseDetachKeys(f.detachKeys); err != nil {
		return o, err
	}
	if f.entry != "" {
		o.Entrypoint = []string{f.entry}
	}
	if f.user != "" {
		u, err := instance.ParseUser(f.user)
		if err != nil {
			return o, err
		}
		o.User = u
	}
	for _, c := range f.capAdd {
		norm, err := image.ParseCap(c)
		if err != nil {
			return o, fmt.Errorf("--cap-add %s: %w", c, err)
		}
		o.CapAdd = append(o.CapAdd, norm)
	}
	nets, none, err := parseNetworkFlags(f.networks, f.ip, f.aliases)
	if err != nil {
		return o, err
	}
	o.Networks, o.NoNIC = nets, none
	for _, s := range f.volumes {
		m, err := instance.ParseVolume(s)
		if err != nil {
			return o, err
		}
		m.AddTo(&o)
	}
	for _, s := range f.mounts {
		m, err := instance.ParseMount(s)
		if err != nil {
			return o, err
		}
		m.AddTo(&o)
	}
	for _, s := range f.addHosts {
		h, err := instance.ParseAddHost(s)
		if err != nil {
			return o, err
		}
		o.AddHosts = append(o.AddHosts, h)
	}
	for _, s := range f.hostPorts {
		ps, err := instance.ParseHostPorts(s)
		if err != nil {
			return o, err
		}
		o.HostPorts = append(o.HostPorts, ps...)
	}
	for _, s := range f.publish {
		fw, err := instance.ParsePublish(s)
		if err != nil {
			return o, err
		}
		o.Publish = append(o.Publish, fw)
	}
	if o.Env, err = parseEnvFlags(f.env); err != nil {
		return o, err
	}
	for _, l := range f.labels {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return o, fmt.Errorf("--label %q: want KEY=VALUE: %w", l, instance.ErrBadFlag)
		}
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		o.Labels[k] = v
	}
	if o.MemoryMiB, err = parseMemoryFlag(f.memory); err != nil {
		return o, err
	}
	if o.Restart, err = instance.ParseRestartPolicy(f.restart); err != nil {
		return o, err
	}
	if f.rm && o.Restart.Name != instance.RestartNo {
		return o, fmt.Errorf("--rm and --restart %s conflict: an instance that restarts is never removed", o.Restart.Name)
	}
	if o.Health, err = f.health.check(); err != nil {
		return o, err
	}
	if err := f.rootOptions(&o); err != nil {
		return o, err
	}
	if f.cpus < 0 || f.cpus > 64 {
		return o, fmt.Errorf("--cpus %d: want 1 to 64", f.cpus)
	}
	if f.name != "" && !validName(f.name) {
		return o, fmt.Errorf("--name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters", f.name)
	}
	if f.stopT < 0 {
		return o, fmt.Errorf("--time %d: want 0 or more seconds", f.stopT)
	}
	switch f.pull {
	case "missing", "never":
	case "always":
		if !transfer.IsRemote(o.Image) {
			return o, fmt.Errorf("--pull always: %s names no registry (want HOST[:PORT]/NAME[:TAG])", o.Image)
		}
	default:
		return o, fmt.Errorf("--pull %q: want missing, always or never", f.pull)
	}
	if _, err := f.registry.config(); err != nil {
		return o, err
	}
	return o, nil
}

// rootOptions parses --read-only, --tmpfs-size and --tmpfs.
func (f *runFlags) rootOptions(o *instance.Options) error {
	o.ReadOnlyRoot = f.readOnly
	if f.tmpfsSize != "" {
		n, err := instance.ParseSize(f.tmpfsSize)
		if err != nil {
			return fmt.Errorf("--tmpfs-size: %w", err)
		}
		o.RootTmpfsSize = n
	}
	seen := map[string]bool{}
	for _, s := range f.tmpfs {
		t, err := instance.ParseTmpfs(s)
		if err != nil {
			return err
		}
		if seen[t.Path] {
			return fmt.Errorf("--tmpfs %s: given twice", t.Path)
		}
		seen[t.Path] = true
		o.Tmpfs = append(o.Tmpfs, t)
	}
	return nil
}

func (h healthFlags) check() (*instance.HealthCheck, error) {
	if h.http == "" && h.tcp == "" {
		return nil, nil
	}
	if h.http != "" && h.tcp != "" {
		return nil, errors.New("--health-http and --health-tcp: choose one")
	}
	if h.interval <= 0 || h.timeout <= 0 || h.retries < 1 || h.startup < 0 {
		return nil, errors.New("health check: interval and timeout must be positive, retries at least 1")
	}
	hc := &instance.HealthCheck{HTTPPath: h.http, Port: h.port, Interval: h.interval, Timeout: h.timeout, Retries: h.retries, StartPeriod: h.startup}
	if h.http != "" && h.http[0] != '/' {
		return nil, fmt.Errorf("--health-http %q: want a path starting with /", h.http)
	}
	if h.tcp != "" {
		var n int
		if _, err := fmt.Sscanf(h.tcp, "%d", &n); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("--health-tcp %q: want a guest port number", h.tcp)
		}
		hc.Port = n
	}
	return hc, nil
}

// runInstance creates and starts the instance; in the foreground it also
// streams the output and waits, returning the application's exit code.
func runInstance(ctx context.Context, e *env, o instance.Options, f *runFlags) (int, error) {
	st, err := e.store()
	if err != nil {
		return 0, err
	}
	is, err := e.instances()
	if err != nil {
		return 0, err
	}
	if err := ensureImage(ctx, e, st, o.Image, f); err != nil {
		return 0, err
	}
	// Signatures are checked before anything is made or boots; the
	// instance must then be of the very manifest verified.
	verified := ""
	if im, err := st.Resolve(ctx, o.Image); err == nil {
		if err := e.checkSigned(im, f.verifyKey); err != nil {
			return 0, err
		}
		verified = im.Manifest.Digest.String()
	} else if f.verifyKey != "" {
		return 0, err
	}
	in, note, err := instance.Create(ctx, st, is, o)
	if err != nil {
		return 0, err
	}
	if verified != "" && in.Config.ImageDigest != verified {
		_, _ = is.Remove(context.Background(), in.Config.ID, true)
		return 0, fmt.Errorf("image %s changed while its signature was checked: run again", o.Image)
	}
	if note != "" {
		fmt.Fprintln(e.stderr, note)
	}
	if err := instance.Start(ctx, in, monitorCmd(e, in.Config.ID)); err != nil {
		_, _ = is.Remove(context.Background(), in.Config.ID, true)
		return 0, err
	}
	if f.detach {
		if cur, err := is.Get(in.Config.ID); err == nil && cur.State.Status == instance.StatusCrashed {
			return 0, fmt.Errorf("instance %s did not start: %s", in.Config.ID[:12], cur.State.Error)
		}
		fmt.Fprintln(e.stdout, in.Config.ID)
		return 0, nil
	}
	if o.Stdin || o.TTY {
		keys, _ := parseDetachKeys(f.detachKeys) // checked by options
		return foregroundWith(ctx, e, is, in, o, f.rm, func(ctx context.Context) error {
			return attachStream(ctx, e, in, o.Stdin, o.TTY, keys)
		})
	}
	return foreground(ctx, e, is, in, o, f.rm)
}

// attachStream streams an attached instance's output, and stdin with
// stdin, until it ends or the user detaches (errDetached).
func attachStream(ctx context.Context, e *env, in *instance.Instance, stdin, tty bool, keys []byte) error {
	s, err := instance.Attach(ctx, in, instance.AttachOptions{Stdin: stdin})
	if errors.Is(err, instance.ErrNotRunning) {
		// Ended already: what it said is in its log.
		return instance.Logs(ctx, in, e.stdout, e.stderr, instance.LogOptions{Tail: -1})
	}
	if err != nil {
		return err
	}
	_, err = runStream(ctx, e, s, streamOptions{stdin: stdin, tty: tty, detachKeys: keys})
	return err
}

// ensureImage pulls the image first when --pull says so: always, or when
// it is missing from the store, as docker run does; but only an image
// that names its registry, never a bare name from a default registry.
func ensureImage(ctx context.Context, e *env, st *store.Store, ref string, f *runFlags) error {
	if f.pull == "never" || !transfer.IsRemote(ref) {
		return nil
	}
	if f.pull == "missing" {
		_, err := st.Resolve(ctx, ref)
		if !errors.Is(err, store.ErrNotFound) {
			return nil // there, or an error Create reports
		}
		fmt.Fprintf(e.stderr, "Unable to find image '%s' locally\n", ref)
	}
	cfg, err := f.registry.config()
	if err != nil {
		return err
	}
	_, err = pullImage(ctx, e, e.stderr, st, cfg, ref, f.verifyKey)
	return err
}

// foreground shows the instance's output until it stops. The first
// interrupt stops it gracefully, the second forces it off.
func foreground(ctx context.Context, e *env, is *instance.Instances, in *instance.Instance, o instance.Options, remove bool) (int, error) {
	return foregroundWith(ctx, e, is, in, o, remove, func(ctx context.Context) error {
		return instance.Logs(ctx, in, e.stdout, e.stderr, instance.LogOptions{Tail: -1, Follow: true})
	})
}

// foregroundWith is foreground with follow showing the output: the logs,
// or an attached stream. A follow that returns errDetached leaves the
// instance running.
func foregroundWith(ctx context.Context, e *env, is *instance.Instances, in *instance.Instance, o instance.Options, remove bool, follow func(context.Context) error) (int, error) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		n := 0
		for range sigs {
			n++
			cur, err := is.Get(in.Config.ID)
			if err != nil {
				return
			}
			if n == 1 {
				go func() { _ = instance.Stop(context.Background(), cur, o.StopTimeout) }()
			} else {
				go func() { _ = instance.Kill(context.Background(), cur, syscall.SIGKILL) }()
			}
		}
	}()
	// The output is followed to its end even when ctx is cancelled by an
	// interrupt: the stop is what ends it.
	if err := follow(context.WithoutCancel(ctx)); err != nil {
		if errors.Is(err, errDetached) {
			return 0, nil
		}
		return 0, err
	}
	done, err := instance.Wait(context.WithoutCancel(ctx), is, in)
	if err != nil {
		return 0, err
	}
	if remove {
		if _, err := is.Remove(context.Background(), in.Config.ID, true); err != nil {
			fmt.Fprintln(e.stderr, "nos: removing the instance:", err)
		}
	}
	if done.State.Status == instance.StatusCrashed && done.State.ExitCode == instance.ExitGuestError {
		return 0, fmt.Errorf("%w: %s (console log: %s)", instance.ErrGuestDied, done.State.Error, consoleHint(done, remove))
	}
	return done.State.ExitCode, nil
}

func consoleHint(in *instance.Instance, removed bool) string {
	if removed {
		return "removed with --rm"
	}
	return in.Dir + "/console.log"
}

// monitorCmd is the command that runs an instance's monitor: nos-monitor
// beside this binary when both come from one build (it starts faster and
// stays smaller: see cmd/nos-monitor), else this same nos binary with the
// hidden verb.
func monitorCmd(e *env, id string) *exec.Cmd {
	home, _ := e.homeDir() // resolved already: the instance exists
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, "--home", home, monitorVerb, id)
	if mon := filepath.Join(filepath.Dir(exe), "nos-monitor"); buildstamp.Stamp != "" && isExecutable(mon) {
		cmd = exec.Command(mon, "--stamp", buildstamp.Stamp, "--nos", exe, "--home", home, monitorVerb, id)
	}
	cmd.Env = os.Environ()
	return cmd
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '.' && r != '_' && r != '-')) {
			return false
		}
	}
	return true
}
