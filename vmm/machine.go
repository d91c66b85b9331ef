package vmm

import (
	"os"
	"strconv"

	"github.com/nosproject/nos/guestapi"
)

// Accelerators a machine runs with (see package accel).
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Machine describes one VM: everything a driver needs and nothing it has
// to look up. A new kind of device is one field here and a few lines in
// each driver.
type Machine struct {
	Accel     string // AccelKVM or AccelTCG
	MemoryMiB int
	CPUs      int
	Kernel    string // path of the kernel image (ELF vmlinux or bzImage)
	Initrd    string // path of the initramfs
	Cmdline   string // kernel command line, complete

	// Disks are virtio block devices, /dev/vda first.
	Disks []Disk
	// NICs are virtio network interfaces, eth0 first.
	NICs []NIC
	// Shares are host directories shared with the guest.
	Shares []Share
	// Channels are the guest's serial channels, in order; a started VM
	// gives one connection for each.
	Channels []Channel
	// ConsoleLog receives the serial console: kernel messages and init
	// diagnostics. It is appended to.
	ConsoleLog string
	// Confine, when set, asks the driver to confine the hypervisor
	// process (see Confinement).
	Confine *Confinement
	// TCGBufferMiB caps the translation buffer of a TCG machine (QEMU's
	// tb-size): the host memory its translated guest code may take. 0 is
	// the hypervisor's own default; ignored under KVM.
	TCGBufferMiB int
	// FreePageReporting gives the guest a balloon device through which its
	// kernel hands back the memory it frees (virtio-balloon's free page
	// reporting): the host drops those pages, so an idle guest holds what
	// it uses, not the most it ever touched. Kernels without the driver
	// ignore the device.
	FreePageReporting bool
	// Saveable gives the driver a control channel to the hypervisor by
	// which the VM's state can be saved (VM.Snapshot) and resumed.
	Saveable bool
	// Restore, when set, is a saved state the VM starts from instead of
	// booting: the machine must be the one that was saved (same devices,
	// memory, kernel and initramfs). The caller keeps the file. Needs
	// Saveable.
	Restore *os.File
}

// DefaultTCGBufferMiB is the translation buffer nos gives TCG machines:
// $NOS_TCG_BUFFER_MIB when set to a number (0: QEMU's default, 1 GiB on
// this host's QEMU 7.2), else TCGBufferMiB. BENCHMARKS.md has the
// measurements behind the default.
func DefaultTCGBufferMiB() int {
	if v := os.Getenv("NOS_TCG_BUFFER_MIB"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return n
		}
	}
	return TCGBufferMiB
}

// DefaultFreePageReporting tells whether machines get the balloon device
// of Machine.FreePageReporting: yes, unless $NOS_FREE_PAGE_REPORTING is 0
// (for benchmarks measuring what it saves).
func DefaultFreePageReporting() bool {
	return os.Getenv("NOS_FREE_PAGE_REPORTING") != "0"
}

// TCGBufferMiB is the default translation buffer of TCG machines.
const TCGBufferMiB = 32

// Disk formats.
const (
	FormatRaw   = "raw"
	FormatQcow2 = "qcow2"
)

// Disk is a block device backed by a host file.
type Disk struct {
	Path     string
	Format   string // FormatRaw when empty
	ReadOnly bool
	// Cache is the host cache mode, as QEMU names them ("writeback",
	// "none", "unsafe"...); empty is the driver's default.
	Cache string
	// Serial names the disk to the guest (/sys/block/vdX/serial), at
	// most 20 bytes: the guest finds its disks by serial, not by order.
	Serial string
}

// NIC is one network interface: on a user-mode network (User) or on a
// host tap device (Tap), exactly one of them.
type NIC struct {
	User *UserNet
	// Tap is the tap device's name; TapFile, when set, is an open queue
	// of it, which the driver hands on (a non-persistent tap cannot be
	// opened again by name while it is open). The caller keeps TapFile.
	Tap     string
	TapFile *os.File
	MAC     string // empty: the driver's default
}

// UserNet is a user-mode (NAT) network with host port forwards. The guest
// side is fixed: UserNetGuest gives its addresses.
type UserNet struct {
	Forwards []Forward
	// Proxy is what turns the guest's frames into host sockets: QEMU's
	// slirp (ProxySlirp, the zero value) or a passt process (ProxyPasst).
	Proxy Proxy
	// HostLoopback maps the gateway address to the host's loopback.
	// slirp always does; passt only when this is set.
	HostLoopback bool
	// Socket is passt's socket path, for a command line that reaches its
	// files by path (the driver hands passt's connected socket by
	// descriptor instead).
	Socket string
}

// Proxy names a user-mode network's implementation.
type Proxy string

// The user-mode proxies.
const (
	ProxySlirp Proxy = ""
	ProxyPasst Proxy = "passt"
)

// Forward publishes a guest port on the host.
type Forward struct {
	Proto     string `json:"proto"`            // "tcp" or "udp"
	HostIP    string `json:"hostIP,omitempty"` // "" listens on all host addresses, as docker does
	HostPort  int    `json:"hostPort"`
	GuestPort int    `json:"guestPort"`
}

// The guest side of a user-mode network: the guest's address, the gateway
// and DNS proxy. QEMU's slirp hands out the same with its DHCP server.
const (
	UserNetCIDR    = "10.0.2.0/24"
	UserNetGuestIP = "10.0.2.15"
	UserNetGateway = "10.0.2.2"
	UserNetDNS     = "10.0.2.3"
)

// UserNetGuest is the guest's network configuration on a user-mode
// network, for interface ifname.
func UserNetGuest(ifname string) *guestapi.Network {
	return &guestapi.Network{
		Interface: ifname,
		Address:   UserNetGuestIP + "/24",
		Gateway:   UserNetGateway,
		DNS:       []string{UserNetDNS},
	}
}

// Share is a host directory the guest mounts by tag (virtiofs).
type Share struct {
	Tag      string // at most 36 bytes
	Source   string // absolute host directory
	ReadOnly bool   // enforced on the host
	// Socket, for drivers that connect to a file system daemon the caller
	// started rather than starting one, is its vhost-user socket.
	Socket string
}

// Channel is a named serial channel between host and guest
// (guestapi.PortControl and friends).
type Channel struct {
	Name string
	// Socket, for drivers that connect to a listening socket rather than
	// passing a connected one, is its path.
	Socket string
}

// GuestChannels are the three channels every nos guest has, in the order
// Boot expects them: control, stdout, stderr.
func GuestChannels() []Channel {
	return []Channel{{Name: guestapi.PortControl}, {Name: guestapi.PortStdout}, {Name: guestapi.PortStderr}}
}
