package ociruntime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
)

// ErrBadConfig marks a bundle whose config.json nos-runtime refuses.
var ErrBadConfig = errors.New("invalid bundle config")

// maxConfigSize bounds config.json: real ones are a few KiB.
const maxConfigSize = 4 << 20

// MinMemoryMiB is the floor of a VM's memory: a container memory limit
// below it (the app's own budget) still gets a VM the kernel and the init
// fit in.
const MinMemoryMiB = 64

// Plan is what a bundle becomes: the VM nos-runtime boots and what its
// init runs. It is a pure function of config.json, the bundle's path and
// the host's CPU count (MakePlan).
type Plan struct {
	// RootFS is the absolute host directory shared as the guest's root.
	RootFS   string `json:"rootfs"`
	ReadOnly bool   `json:"readOnly,omitempty"`

	Argv      []string      `json:"argv"`
	Env       []string      `json:"env,omitempty"`
	Cwd       string        `json:"cwd"`
	User      guestapi.User `json:"user"`
	Hostname  string        `json:"hostname,omitempty"`
	Caps      []string      `json:"caps,omitempty"`
	MemoryMiB int           `json:"memoryMiB"`
	CPUs      int           `json:"cpus"`
	// NetNS is the container's network namespace (a path), whose
	// engine-made interface becomes the VM's NIC at start (network.go);
	// ResolvConf is the host file mounted as /etc/resolv.conf, the
	// guest's DNS servers. Empty: none.
	NetNS      string `json:"netns,omitempty"`
	ResolvConf string `json:"resolvConf,omitempty"`
	// NewNetNS: config.json asks for a new network namespace (no path):
	// the supervisor runs in one of its own, which hooks (docker's
	// libnetwork) find as /proc/PID/ns/net and put the engine's veth in
	// before start.
	NewNetNS bool `json:"newNetns,omitempty"`
	// Hooks are config.json's hooks (hooks.go says which run, and when).
	Hooks *specs.Hooks `json:"hooks,omitempty"`
	// Files are the engine's bind-mounted files the guest gets copies of
	// at start (copiedFiles).
	Files []PlanFile `json:"files,omitempty"`
	// Terminal runs the app on a terminal (process.terminal): create's
	// --console-socket gets its master. ConsoleRows × ConsoleCols is
	// process.consoleSize, zero when not given.
	Terminal    bool   `json:"terminal,omitempty"`
	ConsoleRows uint16 `json:"consoleRows,omitempty"`
	ConsoleCols uint16 `json:"consoleCols,omitempty"`
	// Rlimits are process.rlimits, set by nos-init for the app.
	Rlimits []guestapi.Rlimit `json:"rlimits,omitempty"`
	// Tmpfs are config.json's tmpfs mounts beyond the standard ones.
	Tmpfs []guestapi.Tmpfs `json:"tmpfs,omitempty"`
	// Binds are bind mounts beyond the copied files: at start, a
	// directory source is shared by virtiofs and mounted by nos-init;
	// any other source is skipped with a note in the supervisor's log.
	Binds []PlanBind `json:"binds,omitempty"`
	// Notes say what of config.json the VM does not honour (yet).
	Notes []string `json:"notes,omitempty"`
}

// ParseConfig decodes config.json with the runtime-spec types. Unknown
// properties are ignored, as the spec requires of runtimes ("Extensibility"
// in config.md); a property of the wrong type, trailing data, or an
// oversized file is an error.
func ParseConfig(b []byte) (*specs.Spec, error) {
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("config.json is %d bytes, over the %d nos-runtime reads: %w", len(b), maxConfigSize, ErrBadConfig)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var s specs.Spec
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("config.json: %v: %w", err, ErrBadConfig)
	}
	if dec.More() {
		return nil, fmt.Errorf("config.json: data after the JSON object: %w", ErrBadConfig)
	}
	if err := Validate(&s); err != nil {
		return nil, err
	}
	return &s, nil
}

// LoadBundle reads and validates bundle/config.json.
func LoadBundle(bundle string) (*specs.Spec, error) {
	f, err := os.Open(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", bundle, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", bundle, err)
	}
	return ParseConfig(b)
}

func bad(format string, a ...any) error {
	return fmt.Errorf("config.json: "+format+": %w", append(a, ErrBadConfig)...)
}

// Validate checks what the spec requires and what nos-runtime needs to
// run the bundle: a 1.x ociVersion, a root path, a process with
// arguments, an absolute cwd, KEY=VALUE environment entries, no NUL
// bytes anywhere they reach the guest, sane resources.
func Validate(s *specs.Spec) error {
	if s.Version == "" {
		return bad("no ociVersion")
	}
	if !strings.HasPrefix(s.Version, "1.") {
		return bad("ociVersion %q: nos-runtime reads 1.x", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return bad("no root.path")
	}
	if strings.ContainsRune(s.Root.Path, 0) {
		return bad("root.path has a NUL byte")
	}
	p := s.Process
	if p == nil {
		return bad("no process: create needs one")
	}
	if len(p.Args) == 0 || p.Args[0] == "" {
		return bad("process.args is empty")
	}
	if p.CommandLine != "" {
		return bad("process.commandLine is for Windows")
	}
	for _, a := range p.Args {
		if strings.ContainsRune(a, 0) {
			return bad("process.args has a NUL byte")
		}
	}
	if p.Cwd == "" || !strings.HasPrefix(p.Cwd, "/") || strings.ContainsRune(p.Cwd, 0) {
		return bad("process.cwd %q must be an absolute path", p.Cwd)
	}
	for _, e := range p.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.ContainsRune(e, 0) {
			return bad("process.env entry %q is not KEY=VALUE", e)
		}
	}
	if len(s.Hostname) > 64 || strings.ContainsAny(s.Hostname, "/\x00 \t\n") {
		return bad("hostname %q is not a host name", s.Hostname)
	}
	if s.Linux != nil && s.Linux.Resources != nil {
		r := s.Linux.Resources
		if m := r.Memory; m != nil && m.Limit != nil && *m.Limit < -1 {
			return bad("linux.resources.memory.limit %d is negative", *m.Limit)
		}
		if c := r.CPU; c != nil && c.Quota != nil && *c.Quota > 0 {
			if c.Period == nil || *c.Period == 0 {
				// the kernel's default period
			} else if *c.Period > 1_000_000 {
				return bad("linux.resources.cpu.period %d is over 1s", *c.Period)
			}
		}
	}
	for _, m := range s.Mounts {
		if !strings.HasPrefix(m.Destination, "/") {
			return bad("mount destination %q is not absolute", m.Destination)
		}
	}
	for _, r := range p.Rlimits {
		if !slices.Contains(guestapi.RlimitNames, r.Type) {
			return bad("process.rlimits: unknown type %q", r.Type)
		}
		if r.Soft > r.Hard {
			return bad("process.rlimits %s: soft %d above hard %d", r.Type, r.Soft, r.Hard)
		}
	}
	return nil
}

// standardMounts are the mounts every engine asks for that a nos guest
// has anyway, made by its init: not worth a note.
var standardMounts = []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/run", "/tmp"}

// copiedFiles are the bind mounts of host files engines make (podman:
// all four; docker: the /etc ones) that the guest gets as copies, read
// from the host at start (virtiofs shares directories, not files): the
// guest sees the engine's content, its writes stay in the guest.
var copiedFiles = []string{"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run/.containerenv"}

// PlanFile is a host file the guest gets a copy of at Path; the
// supervisor reads Data and Mode at start (readFiles).
type PlanFile struct {
	Source string      `json:"source"`
	Path   string      `json:"path"`
	Data   []byte      `json:"-"`
	Mode   os.FileMode `json:"-"`
}

// PlanBind is a bind mount of a host directory at Target in the guest.
type PlanBind struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// maxBinds bounds the shared directories: each is a virtiofsd process.
const maxBinds = 16

// readFiles reads the plan's files from the host: each must be a regular
// file (after symlinks, as a bind mount's source) of at most
// guestapi.MaxFileSize bytes.
func readFiles(fs []PlanFile) error {
	if len(fs) > guestapi.MaxFiles {
		return fmt.Errorf("%d bind-mounted files, over the %d nos-runtime copies", len(fs), guestapi.MaxFiles)
	}
	for i := range fs {
		f := &fs[i]
		b, mode, err := readSmallFile(f.Source, guestapi.MaxFileSize)
		if err != nil {
			return fmt.Errorf("mount %s: its source: %w", f.Path, err)
		}
		f.Data, f.Mode = b, mode
	}
	return nil
}

func readSmallFile(p string, max int64) ([]byte, os.FileMode, error) {
	fd, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s is not a regular file: nos-runtime copies only files into the guest", p)
	}
	b, err := io.ReadAll(io.LimitReader(fd, max+1))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(b)) > max {
		return nil, 0, fmt.Errorf("%s is over the %d bytes nos-runtime copies into the guest", p, max)
	}
	return b, fi.Mode().Perm(), nil
}

// isBind reports whether m is a bind mount: type bind, or (the older
// form) a bind or rbind option.
func isBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// defaultCFSPeriod is the kernel's CFS period when config.json gives a
// quota without one.
const defaultCFSPeriod = 100_000

// MakePlan turns a validated spec into the VM to boot. bundle is the
// bundle's absolute directory; hostCPUs caps the vCPUs.
func MakePlan(s *specs.Spec, bundle string, hostCPUs int) (Plan, error) {
	if err := Validate(s); err != nil {
		return Plan{}, err
	}
	root := s.Root.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(bundle, root)
	}
	p := Plan{
		RootFS:    filepath.Clean(root),
		ReadOnly:  s.Root.Readonly,
		Argv:      slices.Clone(s.Process.Args),
		Env:       slices.Clone(s.Process.Env),
		Cwd:       s.Process.Cwd,
		User:      guestapi.User{UID: s.Process.User.UID, GID: s.Process.User.GID},
		Hostname:  s.Hostname,
		MemoryMiB: image.DefaultMemoryMiB,
		CPUs:      image.DefaultCPUs,
		Terminal:  s.Process.Terminal,
	}
	if cs := s.Process.ConsoleSize; cs != nil && cs.Height > 0 && cs.Width > 0 {
		p.ConsoleRows, p.ConsoleCols = uint16(min(cs.Height, math.MaxUint16)), uint16(min(cs.Width, math.MaxUint16))
	}
	for _, g := range s.Process.User.AdditionalGids {
		if g != p.User.GID && !slices.Contains(p.User.Groups, g) {
			p.User.Groups = append(p.User.Groups, g)
		}
	}
	if s.Process.User.Username != "" {
		p.Notes = append(p.Notes, "process.user.username is ignored: the numeric uid and gid are used")
	}
	if c := s.Process.Capabilities; c != nil {
		set := c.Bounding
		if set == nil {
			set = c.Effective
		}
		for _, name := range set {
			if !knownCap(name) {
				p.Notes = append(p.Notes, fmt.Sprintf("capability %s is unknown to the guest: dropped", name))
				continue
			}
			p.Caps = append(p.Caps, name)
		}
		p.Caps = slices.Compact(slices.Sorted(slices.Values(p.Caps)))
	}
	if l := s.Linux; l != nil && l.Resources != nil {
		if m := l.Resources.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
			mib := int(min((*m.Limit+(1<<20)-1)>>20, 1<<22))
			p.MemoryMiB = max(mib, MinMemoryMiB)
			if mib < MinMemoryMiB {
				p.Notes = append(p.Notes, fmt.Sprintf("memory limit %d MiB raised to the VM floor of %d MiB", mib, MinMemoryMiB))
			}
		}
		if c := l.Resources.CPU; c != nil && c.Quota != nil && *c.Quota > 0 {
			period := uint64(defaultCFSPeriod)
			if c.Period != nil && *c.Period > 0 {
				period = *c.Period
			}
			n := int(math.Ceil(float64(*c.Quota) / float64(period)))
			p.CPUs = max(1, min(n, max(hostCPUs, 1)))
		}
	}
	for _, m := range s.Mounts {
		if slices.Contains(standardMounts, m.Destination) {
			continue
		}
		if slices.Contains(copiedFiles, m.Destination) && isBind(m) && m.Source != "" {
			src := m.Source
			if !filepath.IsAbs(src) {
				src = filepath.Join(bundle, src)
			}
			p.Files = append(p.Files, PlanFile{Source: filepath.Clean(src), Path: m.Destination})
			continue
		}
		switch {
		case m.Type == "tmpfs":
			t, err := tmpfsOf(m)
			if err != nil {
				return Plan{}, err
			}
			p.Tmpfs = append(p.Tmpfs, t)
			continue
		case isBind(m) && m.Source != "" && len(p.Binds) < maxBinds:
			src := m.Source
			if !filepath.IsAbs(src) {
				src = filepath.Join(bundle, src)
			}
			p.Binds = append(p.Binds, PlanBind{Source: filepath.Clean(src), Target: filepath.Clean(m.Destination), ReadOnly: slices.Contains(m.Options, "ro")})
			continue
		}
		p.Notes = append(p.Notes, fmt.Sprintf("mount %s (%s) is not made in the guest yet", m.Destination, m.Type))
	}
	for _, r := range s.Process.Rlimits { // checked by Validate
		p.Rlimits = append(p.Rlimits, guestapi.Rlimit{Type: r.Type, Soft: r.Soft, Hard: r.Hard})
	}
	p.NetNS, p.ResolvConf = specNetwork(s)
	if s.Linux != nil && p.NetNS == "" {
		p.NewNetNS = slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
	}
	if h := s.Hooks; h != nil {
		for _, hs := range [][]specs.Hook{h.Prestart, h.CreateRuntime, h.Poststart, h.Poststop} {
			for _, x := range hs {
				if !filepath.IsAbs(x.Path) {
					return Plan{}, bad("hook path %q is not absolute", x.Path)
				}
			}
		}
		if len(h.CreateContainer)+len(h.StartContainer) > 0 {
			p.Notes = append(p.Notes, "createContainer and startContainer hooks are not run: they belong in the container's mount namespace, which the guest does not share")
		}
		p.Hooks = &specs.Hooks{Prestart: h.Prestart, CreateRuntime: h.CreateRuntime, Poststart: h.Poststart, Poststop: h.Poststop}
	}
	return p, nil
}

// tmpfsOf is a tmpfs mount's size (size=N with k, m or g, or a
// percentage of memory, which the kernel takes as is: 0 here) and mode.
func tmpfsOf(m specs.Mount) (guestapi.Tmpfs, error) {
	t := guestapi.Tmpfs{Path: filepath.Clean(m.Destination)}
	for _, o := range m.Options {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "size":
			if strings.HasSuffix(v, "%") {
				continue
			}
			mult := int64(1)
			switch {
			case strings.HasSuffix(v, "k"), strings.HasSuffix(v, "K"):
				mult, v = 1<<10, v[:len(v)-1]
			case strings.HasSuffix(v, "m"), strings.HasSuffix(v, "M"):
				mult, v = 1<<20, v[:len(v)-1]
			case strings.HasSuffix(v, "g"), strings.HasSuffix(v, "G"):
				mult, v = 1<<30, v[:len(v)-1]
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > math.MaxInt64/mult {
				return t, bad("tmpfs mount %s: size %q", m.Destination, o)
			}
			t.Size = n * mult
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return t, bad("tmpfs mount %s: mode %q", m.Destination, o)
			}
			t.Mode = uint32(n)
		}
	}
	return t, nil
}

// knownCap reports whether the guest's init knows the capability (its
// names are the kernel's, CAP_CHOWN to CAP_CHECKPOINT_RESTORE).
func knownCap(name string) bool {
	return slices.Contains(capNames, strings.TrimPrefix(strings.ToUpper(name), "CAP_"))
}

var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
	"LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
	"SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
	"MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
	"CHECKPOINT_RESTORE",
}
