package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/vmm"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound   = errors.New("no such instance")
	ErrAmbiguous  = errors.New("ambiguous instance ID prefix")
	ErrNameInUse  = errors.New("name already in use")
	ErrRunning    = errors.New("instance is running")
	ErrNotRunning = errors.New("instance is not running")
)

// Kinds of crash, recorded in State.CrashKind.
const (
	CrashKernelPanic      = vmm.CrashKernelPanic
	CrashHypervisorKilled = vmm.CrashHypervisorKilled
	CrashHypervisorFailed = vmm.CrashHypervisorFailed
	CrashGuestError       = vmm.CrashGuestError
	CrashNoExitCode       = vmm.CrashNoExitCode
	CrashBootTimeout      = vmm.CrashBootTimeout
	CrashMonitorDied      = "monitor-died"
	CrashSetupFailed      = "setup-failed" // what the VM needs could not be set up (a volume held elsewhere)
)

// errSetup marks a boot that failed before the hypervisor started.
var errSetup = errors.New("setting up the VM")

// Exit codes nos itself gives, as docker does.
const (
	ExitKilled     = vmm.ExitKilled     // forced off
	ExitGuestError = vmm.ExitGuestError // the VM died without an application exit code
)

// Statuses of an instance as `nos ps` shows them.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusRestarting = "restarting"
	StatusExited     = "exited"
	StatusCrashed    = "crashed" // the VM died without an application exit code
)

// Config is what an instance was created with; it does not change.
type Config struct {
	ID          string `json:"id"`
	Name        string `json:"name,omitempty"`
	Image       string `json:"image"`
	ImageDigest string `json:"imageDigest"`
	// Hypervisor is the driver the instance runs on ("qemu"; "" in
	// instances made before drivers were named, which were QEMU's).
	Hypervisor  string         `json:"hypervisor,omitempty"`
	Created     time.Time      `json:"created"`
	Entrypoint  []string       `json:"entrypoint,omitempty"`
	Args        []string       `json:"args,omitempty"`
	Env         []string       `json:"env,omitempty"`
	WorkingDir  string         `json:"workingDir,omitempty"`
	Publish     []vmm.Forward  `json:"publish,omitempty"`
	MemoryMiB   int            `json:"memoryMiB"`
	CPUs        int            `json:"cpus"`
	Accel       string         `json:"accel"`
	Cmdline     string         `json:"cmdline"`
	NoNetwork   bool           `json:"noNetwork,omitempty"` // the kernel has no network stack
	RootFS      string         `json:"rootFS,omitempty"`    // type of the root disk, "" for none
	User        *guestapi.User `json:"user,omitempty"`
	Caps        []string       `json:"caps,omitempty"`
	Restart     RestartPolicy  `json:"restart"`
	Health      *HealthCheck   `json:"health,omitempty"`
	AutoRemove  bool           `json:"autoRemove,omitempty"`
	StopTimeout time.Duration  `json:"stopTimeout"`
	// Volumes are the named volumes mounted in the guest, in order.
	Volumes []VolumeMount `json:"volumes,omitempty"`
	// Networks are the private networks the instance is on, with its
	// leases; none: user-mode networking (or none, with NoNetwork).
	Networks []NetworkAttachment `json:"networks,omitempty"`
	// Binds are the host directories shared with the guest (virtiofs).
	Binds []BindMount `json:"binds,omitempty"`
	// WritableRoot puts the root disk under a tmpfs overlay, capped at
	// RootTmpfsSize bytes (0: the default). Instances made before it
	// existed lack it, and keep the read-only root they had.
	WritableRoot  bool  `json:"writableRoot,omitempty"`
	RootTmpfsSize int64 `json:"rootTmpfsSize,omitempty"`
	// Tmpfs are extra tmpfs mounts in the guest (--tmpfs).
	Tmpfs []guestapi.Tmpfs `json:"tmpfs,omitempty"`
	// JailUID, when not zero, is the unprivileged user (and group) the
	// hypervisor runs as: one of nos's own, this instance's alone.
	JailUID uint32 `json:"jailUid,omitempty"`
	// UserProxy is what carries a user-mode NIC's traffic (see
	// userProxy): QEMU's slirp (empty) or passt.
	UserProxy vmm.Proxy `json:"userProxy,omitempty"`
	// Hosts are Options.AddHosts; HostPorts the host's ports a guest
	// with a HostGateway entry may reach (none: all of them).
	Hosts     []HostEntry `json:"hosts,omitempty"`
	HostPorts []uint16    `json:"hostPorts,omitempty"`
	// Labels are the metadata the instance was created with (Options.Labels).
	Labels map[string]string `json:"labels,omitempty"`
	// InitAPI is the image's (image.Config.InitAPI): what its init can do.
	InitAPI int `json:"initApi,omitempty"`
	// NoExec: the image refuses nos exec (nos build --no-exec).
	NoExec bool `json:"noExec,omitempty"`
	// Stdin, TTY, Rows and Cols are Options'.
	Stdin bool   `json:"stdin,omitempty"`
	TTY   bool   `json:"tty,omitempty"`
	Rows  uint16 `json:"rows,omitempty"`
	Cols  uint16 `json:"cols,omitempty"`
	// Snapshot: start from the saved state of this image and machine
	// when there is one, else boot and save one once the app is ready
	// (nos run --snapshot; see snapshot.go).
	Snapshot bool `json:"snapshot,omitempty"`
}

// State is how an instance is doing; the monitor keeps it up to date.
type State struct {
	Status       string    `json:"status"`
	MonitorPID   int       `json:"monitorPid,omitempty"`
	VMPID        int       `json:"vmPid,omitempty"` // the hypervisor process
	ExitCode     int       `json:"exitCode"`
	Error        string    `json:"error,omitempty"`     // why the VM crashed or could not start
	CrashKind    string    `json:"crashKind,omitempty"` // one of the Crash* constants
	RestartCount int       `json:"restartCount"`
	StartedAt    time.Time `json:"startedAt,omitempty"`
	FinishedAt   time.Time `json:"finishedAt,omitempty"`
	// StoppedByUser is set by stop and kill: restart policies then leave the
	// instance alone, and unless-stopped keeps it stopped.
	StoppedByUser bool         `json:"stoppedByUser,omitempty"`
	Health        *HealthState `json:"health,omitempty"`
	// Accel is the accelerator the current or last boot used.
	Accel string `json:"accel,omitempty"`
	// Hypervisor names the driver of the current or last boot ("QEMU").
	Hypervisor string `json:"hypervisor,omitempty"`
	// Confined says how the hypervisor of the current or last boot is
	// confined, and what could not be applied on this host.
	Confined *vmm.Confined `json:"confined,omitempty"`
	// Snapshot says how --snapshot went for the current boot: SnapshotSaved
	// (booted cold, state saved), SnapshotRestored (started from a saved
	// state), or "" (booted cold; no state saved yet).
	Snapshot string `json:"snapshot,omitempty"`
}

// State.Snapshot values.
const (
	SnapshotSaved    = "saved"
	SnapshotRestored = "restored"
)

// UnmarshalJSON reads state files of every version: before the
// hypervisor was a driver, the VM's PID was "qemuPid" and crash kinds
// named QEMU.
func (s *State) UnmarshalJSON(b []byte) error {
	type plain State
	var v struct {
		plain
		QEMUPID int `json:"qemuPid"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = State(v.plain)
	if s.VMPID == 0 {
		s.VMPID = v.QEMUPID
	}
	switch s.CrashKind {
	case "qemu-killed":
		s.CrashKind, s.Hypervisor = CrashHypervisorKilled, "QEMU"
	case "qemu-failed":
		s.CrashKind, s.Hypervisor = CrashHypervisorFailed, "QEMU"
	}
	return nil
}

// Instance is one instance's config and state as read from disk.
type Instance struct {
	Config Config
	State  State
	Dir    string
	// MonitorAlive is true when the instance's monitor process is alive
	// (proved by its lock, not by a PID that may have been reused).
	MonitorAlive bool
}

// Running reports whether the instance is up or about to restart.
func (in *Instance) Running() bool {
	return in.MonitorAlive && (in.State.Status == StatusRunning || in.State.Status == StatusRestarting || in.State.Status == StatusCreated)
}

// Files in an instance directory.
const (
	configFile    = "config.json"
	stateFile     = "state.json"
	lockFile      = "lock"         // guards state.json read-modify-write
	monitorLock   = "monitor.lock" // held by the live monitor for its whole life
	startLock     = "start.lock"   // serialises starts of one instance
	consoleFile   = "console.log"
	monitorLog    = "monitor.log"
	monitorSocket = "monitor.sock"
	kernelFile    = "kernel"
	initrdFile    = "initramfs"
	rootDiskFile  = "rootfs"
)

// Instances is the directory holding every instance, one subdirectory each.
type Instances struct {
	Dir  string
	home home.Layout
}

// Open returns the instances directory of the data directory h.
func Open(h home.Layout) (*Instances, error) {
	dir := h.Instances()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating instances directory: %w", err)
	}
	return &Instances{Dir: dir, home: h}, nil
}

// lockAll serialises operations that change the set of instances (create,
// rename, remove), so names stay unique.
func (is *Instances) lockAll(ctx context.Context) (func(), error) {
	return lockfile.Lock(ctx, filepath.Join(is.Dir, ".lock"), false)
}

func (is *Instances) dir(id string) string { return filepath.Join(is.Dir, id) }

// List reads every instance. Directories that are half-created or
// half-removed (no config) are skipped.
func (is *Instances) List() ([]*Instance, error) {
	ents, err := os.ReadDir(is.Dir)
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	var out []*Instance
	for _, e := range ents {
		if !e.IsDir() || !isID(e.Name()) {
			continue
		}
		in, err := is.read(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Config.Created.After(out[j].Config.Created) })
	return out, nil
}

// Get resolves a name, a full ID or an unambiguous ID prefix.
func (is *Instances) Get(ref string) (*Instance, error) {
	all, err := is.List()
	if err != nil {
		return nil, err
	}
	var matches []*Instance
	for _, in := range all {
		if in.Config.ID == ref || (in.Config.Name != "" && in.Config.Name == ref) {
			return in, nil
		}
		if ref != "" && isHex(ref) && strings.HasPrefix(in.Config.ID, ref) {
			matches = append(matches, in)
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("%q: %w (see `nos ps -a`)", ref, ErrNotFound)
	case 1:
		return matches[0], nil
	}
	var ids []string
	for _, m := range matches {
		ids = append(ids, m.Config.ID[:12])
	}
	return nil, fmt.Errorf("%q matches %s: %w; give more of the ID", ref, strings.Join(ids, ", "), ErrAmbiguous)
}

func (is *Instances) read(id string) (*Instance, error) {
	dir := is.dir(id)
	in := &Instance{Dir: dir}
	if err := readJSON(filepath.Join(dir, configFile), &in.Config); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		return nil, err
	}
	if err := readJSON(filepath.Join(dir, stateFile), &in.State); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	in.MonitorAlive = lockfile.Held(filepath.Join(dir, monitorLock))
	in.State = truthful(in.State, in.MonitorAlive)
	return in, nil
}

// truthful corrects a state file written by a monitor that died without
// finishing it (SIGKILL, host reboot): what it says about running is stale.
func truthful(s State, monitorAlive bool) State {
	if monitorAlive {
		return s
	}
	switch s.Status {
	case StatusRunning, StatusRestarting:
		s.Status = StatusCrashed
		s.Error = "the instance's monitor died (killed, or the host rebooted)"
		s.CrashKind = CrashMonitorDied
		s.VMPID = 0
	}
	return s
}

// UpdateState changes an instance's state under its lock.
func UpdateState(ctx context.Context, dir string, fn func(*State)) error {
	unlock, err := lockfile.Lock(ctx, filepath.Join(dir, lockFile), false)
	if err != nil {
		return err
	}
	defer unlock()
	var s State
	if err := readJSON(filepath.Join(dir, stateFile), &s); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	fn(&s)
	return writeJSON(filepath.Join(dir, stateFile), s)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON replaces path atomically (see fsutil.WriteJSON).
func writeJSON(path string, v any) error { return fsutil.WriteJSON(path, v) }

func isID(s string) bool { return len(s) == 64 && isHex(s) }

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}
