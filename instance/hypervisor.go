package instance

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/nosproject/nos/vmm"
	"github.com/nosproject/nos/vmm/jail"
	"github.com/nosproject/nos/vmm/qemu"
	"github.com/nosproject/nos/volume"
)

// DefaultHypervisor is the driver new instances run on.
const DefaultHypervisor = "qemu"

// drivers are the hypervisors an instance can name in its config. This is
// the one place instance/ knows a driver by type.
var drivers = map[string]vmm.Driver{
	"qemu": qemu.Driver{},
}

func driver(name string) (vmm.Driver, error) {
	if name == "" {
		name = DefaultHypervisor // instances made before drivers were named
	}
	d, ok := drivers[name]
	if !ok {
		return nil, fmt.Errorf("hypervisor %q is not known to this nos", name)
	}
	return d, nil
}

// Jail users: when nos runs as root, each instance's hypervisor runs as a
// user (and group) of its own from this range, which no account uses (it
// sits above systemd's container range and below 2^31, which some tools
// mishandle). No /etc/passwd entry is needed to run as a number.
const (
	JailUIDBase  = 0x70000000 // 1879048192
	JailUIDCount = 1 << 16
)

// freeJailUID picks the lowest jail user none of all (every instance,
// read under the instances lock) has.
func freeJailUID(all []*Instance) (uint32, error) {
	used := map[uint32]bool{}
	for _, in := range all {
		used[in.Config.JailUID] = true
	}
	for u := uint32(JailUIDBase); u < JailUIDBase+JailUIDCount; u++ {
		if !used[u] {
			return u, nil
		}
	}
	return 0, fmt.Errorf("all %d jail users are taken: remove instances (nos rm, nos system prune)", JailUIDCount)
}

// Confinement of a hypervisor beyond the guest's own memory: what QEMU
// needs for itself under TCG (translated code, device state, I/O buffers)
// and the page cache of the files it reads, which a memory cgroup counts.
// Measured: see BENCHMARKS.md, "Confinement".
const vmmOverheadMiB = 384

// Rlimits of the hypervisor: a TCG microvm with nos's devices has about 40
// descriptors open; it writes only the console log, which the monitor caps
// at a few MiB, so 1 GiB means the cap failed and the write must stop.
var vmmRlimits = jail.Rlimits{OpenFiles: 256, FileSize: 1 << 30}

// rlimits are the hypervisor's: the file-size cap must let it write the
// whole of its largest volume (and size its memory's memfd), or the
// kernel would kill it with SIGXFSZ.
func (m *monitor) rlimits() jail.Rlimits {
	rl := vmmRlimits
	if len(m.cfg.Binds) > 0 {
		// With shared directories the guest's memory is a memfd of its size.
		rl.FileSize = max(rl.FileSize, uint64(m.cfg.MemoryMiB)<<20)
	}
	if len(m.cfg.Volumes) > 0 {
		if st, err := volume.Open(m.home.Volumes()); err == nil {
			for _, vm := range m.cfg.Volumes {
				if v, err := st.Get(vm.Name); err == nil && uint64(v.Size) > rl.FileSize {
					rl.FileSize = uint64(v.Size)
				}
			}
		}
	}
	return rl
}

// confinement is how the monitor asks the driver to confine this
// instance's hypervisor.
func confinement(cfg Config, rl jail.Rlimits) *vmm.Confinement {
	c := &vmm.Confinement{
		UID: cfg.JailUID, GID: cfg.JailUID,
		Cgroup:       "nos-" + cfg.ID[:12],
		MemoryLimit:  int64(cfg.MemoryMiB+vmmOverheadMiB) << 20,
		CPUs:         float64(max(cfg.CPUs, 1)),
		BindLowPorts: bindsLowPort(cfg.Publish),
		MaxOpenFiles: rl.OpenFiles,
		MaxFileSize:  rl.FileSize,
	}
	return c
}

// bindsLowPort reports whether a published host port is one only a
// privileged process may bind (below net.ipv4.ip_unprivileged_port_start).
func bindsLowPort(fs []vmm.Forward) bool {
	start := 1024
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = n
		}
	}
	for _, f := range fs {
		if f.HostPort < start {
			return true
		}
	}
	return false
}

// confinementNotes says what nos could not confine, once, for inspect.
func confinementNotes(cfg Config, got vmm.Confined) vmm.Confined {
	if cfg.JailUID == 0 && len(cfg.Networks) == 0 && !cfg.NoNetwork && !reachesHost(cfg.Hosts) {
		if cfg.UserProxy == vmm.ProxyPasst {
			got.Notes = append(got.Notes, "the guest cannot reach the host's loopback (passt does not map the gateway to it) but can reach the host's other addresses: only a hypervisor run as a jail user (nos run as root) is kept from them")
		} else {
			got.Notes = append(got.Notes, "the guest can reach the host's loopback and addresses: install passt (`sudo apt-get install passt`) to keep it from the loopback; only a hypervisor run as a jail user (nos run as root) is kept from both")
		}
	}
	if cfg.JailUID == 0 {
		if os.Geteuid() == 0 {
			got.Notes = append(got.Notes, "created by a nos without jail users: the hypervisor runs as root")
		} else {
			got.Notes = append(got.Notes, fmt.Sprintf("nos does not run as root: the hypervisor runs as uid %d, nos's own", syscall.Geteuid()))
		}
	}
	return got
}
