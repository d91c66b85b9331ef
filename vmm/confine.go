package vmm

// Confinement is how a driver should confine the hypervisor process, as
// Firecracker's jailer confines Firecracker: what a hostile guest that
// took over the hypervisor could then still do is bounded by these.
type Confinement struct {
	// UID and GID, when UID is not zero, are the unprivileged identity the
	// hypervisor runs as. It is given every file it needs as an open file
	// descriptor, so it needs no access to any path.
	UID, GID uint32
	// Cgroup, when set, is the name of a cgroup of the machine's own to
	// create under the caller's cgroup (in each v1 hierarchy, or in the v2
	// tree), with MemoryLimit bytes of memory and CPUs CPUs.
	Cgroup      string
	MemoryLimit int64
	CPUs        float64
	// BindLowPorts keeps CAP_NET_BIND_SERVICE for the unprivileged user,
	// and no other capability: a user-mode network publishing a host
	// port below the host's unprivileged port start needs it.
	BindLowPorts bool
	// MaxOpenFiles and MaxFileSize are rlimits (RLIMIT_NOFILE, RLIMIT_FSIZE
	// in bytes); zero leaves the limit as it is.
	MaxOpenFiles uint64
	MaxFileSize  uint64
}

// Confined reports which layers of confinement a started VM really has.
// Notes say, in a sentence each, what could not be applied and why.
type Confined struct {
	Seccomp bool     `json:"seccomp"`
	UID     uint32   `json:"uid"`
	GID     uint32   `json:"gid"`
	Cgroup  string   `json:"cgroup,omitempty"` // path under the cgroup root(s)
	Rlimits bool     `json:"rlimits"`
	Notes   []string `json:"notes,omitempty"`
}
