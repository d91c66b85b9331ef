package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nosproject/nos/guestapi"
)

// Binary is the QEMU system emulator nos drives.
const Binary = "qemu-system-x86_64"

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Machine describes one VM: everything Command needs and nothing it has to
// look up.
type Machine struct {
	Accel     string // AccelKVM or AccelTCG
	MemoryMiB int
	CPUs      int
	Kernel    string // path of the kernel image
	Initrd    string // path of the initramfs
	Cmdline   string // kernel command line, complete
	// ConsoleLog receives the serial console: kernel messages and init diagnostics.
	ConsoleLog string
	// Unix sockets the host listens on; QEMU connects to each as a client.
	ControlSocket, StdoutSocket, StderrSocket string
	// QMPSocket, when set, is a QMP server socket QEMU listens on.
	QMPSocket string
	// Net, when set, gives the guest a virtio-net NIC on QEMU user-mode networking.
	Net *UserNet
	// RootDisk, when set, is a raw disk image attached read-only as the
	// guest's first virtio block device (/dev/vda).
	RootDisk string
}

// UserNet is QEMU's user-mode (slirp) network with host port forwards.
type UserNet struct {
	Forwards []Forward
}

// Forward publishes a guest port on the host.
type Forward struct {
	Proto     string // "tcp" or "udp"
	HostIP    string // "" listens on all host addresses, as docker does
	HostPort  int
	GuestPort int
}

// The guest address QEMU's user-mode network expects (its built-in DHCP
// would hand out the same), its gateway and DNS proxy.
const (
	GuestAddress = "10.0.2.15/24"
	GuestGateway = "10.0.2.2"
	GuestDNS     = "10.0.2.3"
	GuestIP      = "10.0.2.15"
)

// Command returns the argv (without the binary) that boots m. It is a pure
// function of m.
func Command(m Machine) []string {
	a := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		// microvm: no PCI, no firmware tables beyond ACPI, virtio-mmio devices.
		"-M", "microvm,x-option-roms=off,rtc=on,isa-serial=on,pic=off,pit=off",
		"-accel", m.Accel,
		"-cpu", cpu(m.Accel),
		"-m", strconv.Itoa(m.MemoryMiB) + "M",
		"-smp", strconv.Itoa(max(m.CPUs, 1)),
		"-kernel", m.Kernel,
		"-initrd", m.Initrd,
		"-append", m.Cmdline,
		// append=on: the monitor may truncate the log to cap its size.
		"-chardev", "file,id=console,append=on,path=" + escape(m.ConsoleLog),
		"-serial", "chardev:console",
		"-device", "virtio-rng-device",
		"-device", "virtio-serial-device,max_ports=4",
	}
	for _, p := range []struct{ id, path, name string }{
		{"ctl", m.ControlSocket, guestapi.PortControl},
		{"out", m.StdoutSocket, guestapi.PortStdout},
		{"err", m.StderrSocket, guestapi.PortStderr},
	} {
		a = append(a,
			"-chardev", "socket,id="+p.id+",path="+escape(p.path),
			"-device", "virtserialport,chardev="+p.id+",name="+p.name)
	}
	if m.RootDisk != "" {
		a = append(a,
			"-drive", "file="+escape(m.RootDisk)+",if=none,id=root,format=raw,readonly=on",
			"-device", "virtio-blk-device,drive=root")
	}
	if m.Net != nil {
		a = append(a,
			"-netdev", userNetdev(m.Net),
			"-device", "virtio-net-device,netdev=net0")
	}
	if m.QMPSocket != "" {
		a = append(a, "-qmp", "unix:"+escape(m.QMPSocket)+",server=on,wait=off")
	}
	return a
}

func cpu(accel string) string {
	if accel == AccelKVM {
		return "host"
	}
	return "max"
}

func userNetdev(n *UserNet) string {
	var b strings.Builder
	b.WriteString("user,id=net0,net=10.0.2.0/24,restrict=off")
	for _, f := range n.Forwards {
		fmt.Fprintf(&b, ",hostfwd=%s:%s:%d-%s:%d", f.Proto, f.HostIP, f.HostPort, GuestIP, f.GuestPort)
	}
	return b.String()
}

// escape doubles commas, QEMU's option separator, in a value.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
