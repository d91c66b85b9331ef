package instance

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/vmm"
)

// Errors callers can test for with errors.Is.
var (
	ErrPortInUse = errors.New("host port already in use")
	ErrGuestDied = errors.New("guest stopped without reporting an exit code")
)

// Options are what `nos run` (or create) was asked for.
type Options struct {
	Image string
	Name  string
	// Entrypoint, when non-empty, replaces the image's entrypoint.
	Entrypoint []string
	// Args, when non-empty, replace the image's Args.
	Args []string
	// Env holds KEY=VALUE overrides of the image's environment.
	Env       []string
	Publish   []vmm.Forward
	MemoryMiB int // 0: the image's default
	CPUs      int // 0: the image's default
	Accel     string
	// StopTimeout is how long a graceful stop waits before forcing the VM off.
	StopTimeout time.Duration
	Restart     RestartPolicy
	Health      *HealthCheck
	// AutoRemove makes the monitor delete the instance when it ends.
	AutoRemove bool
	// User, when set, replaces the image's user (numeric: names are
	// resolved by nos build, in the image's files).
	User *guestapi.User
	// CapAdd are capabilities kept besides the image's.
	CapAdd []string
	// Volumes are named volumes to mount (-v NAME:/path, --mount).
	Volumes []VolumeMount
	// Binds are host directories to share (-v /host/dir:/path, --mount type=bind).
	Binds []BindMount
	// ReadOnlyRoot keeps an image's root disk read-only (--read-only);
	// otherwise it is writable, changes lost at stop. RootTmpfsSize caps
	// the writable layer, in bytes (0: guestapi.DefaultRootTmpfsPercent of
	// the memory). Both apply to images with a root disk only.
	ReadOnlyRoot  bool
	RootTmpfsSize int64
	// Tmpfs are extra tmpfs mounts (--tmpfs).
	Tmpfs []guestapi.Tmpfs
	// Networks are the private networks to join (--network NAME), in
	// order: the first gives the default route, DNS and published ports.
	// None: QEMU's user-mode NAT. NoNIC: no NIC at all (--network none).
	Networks []NetworkRequest
	NoNIC    bool
	// AddHosts are extra /etc/hosts entries (--add-host NAME:IP); the IP
	// HostGateway names the host, which only these instances may reach,
	// on HostPorts (all ports when empty).
	AddHosts  []HostEntry `json:",omitempty"`
	HostPorts []uint16    `json:",omitempty"`
	// Labels are free-form key=value metadata kept in the instance's
	// config, as docker's --label: nos compose finds its instances by the
	// com.docker.compose.* labels it sets.
	Labels map[string]string
	// Stdin keeps the application's stdin open for attach (nos run -i);
	// TTY runs it on a terminal of Rows × Cols (nos run -t).
	Stdin bool `json:",omitempty"`
	TTY   bool `json:",omitempty"`
	// Snapshot starts from a saved state (nos run --snapshot).
	Snapshot bool   `json:",omitempty"`
	Rows     uint16 `json:",omitempty"`
	Cols     uint16 `json:",omitempty"`
}

// ParseUser parses --user UID[:GID] for nos run.
func ParseUser(s string) (*guestapi.User, error) {
	us, gs, hasG := strings.Cut(s, ":")
	uid, err1 := strconv.ParseUint(us, 10, 32)
	var gid uint64
	var err2 error
	if hasG {
		gid, err2 = strconv.ParseUint(gs, 10, 32)
	}
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--user %q: want UID[:GID] in numbers (names are resolved when the image is built: nos build --user NAME): %w", s, ErrBadFlag)
	}
	return &guestapi.User{UID: uint32(uid), GID: uint32(gid)}, nil
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
	if accel != vmm.AccelTCG {
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

// launch is what the application is started with: the image's command and
// environment with the run options applied.
type launch struct {
	Argv []string
	Env  []string
}

func launchSpec(cfg image.Config, o Options, hostname string) launch {
	entry, args := cfg.Entrypoint, cfg.Args
	if len(o.Entrypoint) > 0 {
		entry, args = o.Entrypoint, nil // as docker: a new entrypoint drops the image's args
	}
	if len(o.Args) > 0 {
		args = o.Args
	}
	env := image.MergeEnv([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOSTNAME=" + hostname,
		"HOME=/root",
	}, cfg.Env)
	env = image.MergeEnv(env, o.Env)
	return launch{Argv: append(append([]string(nil), entry...), args...), Env: env}
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkHostPort fails early, with a clear message, when a published host
// port is taken; QEMU's own error for it is obscure.
func checkHostPort(f vmm.Forward) error {
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

// KernelCmdline is cmdline for callers outside the package (nos-runtime,
// which boots guests without an instance): base with what the host adds
// under accel.
func KernelCmdline(base, accel string) string { return cmdline(base, accel) }
