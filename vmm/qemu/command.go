package qemu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nosproject/nos/vmm"
)

// Binary is the QEMU system emulator nos drives.
const Binary = "qemu-system-x86_64"

// How QEMU reaches the machine's files.
type Access struct {
	// ByFD: every file and channel is an inherited file descriptor, in the
	// order of fdOrder (the driver's way: a confined QEMU can open no path
	// of its own). Otherwise QEMU opens the paths and connects to the
	// channels' sockets (the benchmarks' way).
	ByFD bool
	// Sandbox turns QEMU's seccomp filter on, denying obsolete system
	// calls, privilege changes, process creation and resource control.
	Sandbox bool
}

// SandboxOption is QEMU's -sandbox value when Access.Sandbox is set.
const SandboxOption = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// firstFD is the descriptor of the first inherited file (after stdio).
const firstFD = 3

// fds are the descriptor numbers QEMU gets, in fdOrder: kernel, initrd,
// console, the channels, then the disks: one read-only descriptor each,
// and a read-write one too for a writable disk (QEMU opens a disk in
// both modes, and an fd set hands out the descriptor of the mode asked).
type fds struct {
	kernel, initrd, console int
	channels                []int
	disks                   [][]int
	shares                  []int
	taps                    map[int]int // NIC index → descriptor
	proxies                 map[int]int // NIC index → passt's socket
	qmp, incoming           int         // 0: none
}

func fdOrder(m vmm.Machine) fds {
	n := firstFD
	next := func() int { n++; return n - 1 }
	f := fds{kernel: next(), initrd: next(), console: next()}
	for range m.Channels {
		f.channels = append(f.channels, next())
	}
	for _, d := range m.Disks {
		set := []int{next()}
		if !d.ReadOnly {
			set = append(set, next())
		}
		f.disks = append(f.disks, set)
	}
	for range m.Shares {
		f.shares = append(f.shares, next())
	}
	for i, n := range m.NICs {
		if n.TapFile != nil {
			if f.taps == nil {
				f.taps = map[int]int{}
			}
			f.taps[i] = next()
		}
	}
	for i, n := range m.NICs {
		if n.User != nil && n.User.Proxy == vmm.ProxyPasst {
			if f.proxies == nil {
				f.proxies = map[int]int{}
			}
			f.proxies[i] = next()
		}
	}
	if m.Saveable {
		f.qmp = next()
		if m.Restore != nil {
			f.incoming = next()
		}
	}
	return f
}

// fdset numbers (-add-fd set=N): one per file QEMU opens through
// qemu_open (the console and the disks); 0 is not a valid set.
func consoleSet() int   { return 1 }
func diskSet(i int) int { return 2 + i }

// Command returns the argv (without the binary) that boots m, reaching its
// files as a says. It is a pure function of its arguments.
func Command(m vmm.Machine, a Access) []string {
	f := fdOrder(m)
	kernel, initrd, console := m.Kernel, m.Initrd, "path="+escape(m.ConsoleLog)
	var argv []string
	if a.ByFD {
		kernel, initrd = procFD(f.kernel), procFD(f.initrd)
		argv = append(argv, "-add-fd", fmt.Sprintf("fd=%d,set=%d", f.console, consoleSet()))
		console = fmt.Sprintf("path=/dev/fdset/%d", consoleSet())
	}
	machine := "microvm,x-option-roms=off,rtc=on,isa-serial=on,pic=off,pit=off"
	if len(m.Shares) > 0 {
		// A vhost-user daemon reads and writes the guest's buffers
		// itself: the guest's memory is a shared memfd it maps.
		// libvhost-user (virtiofsd) refuses legacy virtio, which microvm's
		// virtio-mmio transports default to: make them virtio 1.0.
		argv = append(argv, "-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", m.MemoryMiB),
			"-global", "virtio-mmio.force-legacy=false")
		machine += ",memory-backend=mem"
	}
	argv = append(argv,
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		// microvm: no PCI, no firmware tables beyond ACPI, virtio-mmio devices.
		"-M", machine,
		"-accel", accelOption(m),
		"-cpu", cpu(m.Accel),
		"-m", strconv.Itoa(m.MemoryMiB)+"M",
		"-smp", strconv.Itoa(max(m.CPUs, 1)),
		"-kernel", kernel,
		"-initrd", initrd,
		"-append", m.Cmdline,
		// append=on: the monitor may truncate the log to cap its size.
		"-chardev", "file,id=console,append=on,"+console,
		"-serial", "chardev:console",
		"-device", "virtio-rng-device",
		"-device", "virtio-serial-device,max_ports="+strconv.Itoa(max(len(m.Channels)+1, 4)),
	)
	for i, c := range m.Channels {
		id := channelID(i)
		ref := "path=" + escape(c.Socket)
		if a.ByFD {
			ref = "fd=" + strconv.Itoa(f.channels[i])
		}
		argv = append(argv,
			"-chardev", "socket,id="+id+","+ref,
			"-device", "virtserialport,chardev="+id+",name="+escape(c.Name))
	}
	for i, d := range m.Disks {
		file := escape(d.Path)
		if a.ByFD {
			for _, fd := range f.disks[i] {
				argv = append(argv, "-add-fd", fmt.Sprintf("fd=%d,set=%d", fd, diskSet(i)))
			}
			file = fmt.Sprintf("/dev/fdset/%d", diskSet(i))
		}
		dev := fmt.Sprintf("virtio-blk-device,drive=disk%d", i)
		if d.Serial != "" {
			dev += ",serial=" + escape(d.Serial)
		}
		argv = append(argv, "-drive", drive(file, i, d), "-device", dev)
	}
	for i, sh := range m.Shares {
		ref := "path=" + escape(sh.Socket)
		if a.ByFD {
			ref = "fd=" + strconv.Itoa(f.shares[i])
		}
		id := fmt.Sprintf("fs%d", i)
		argv = append(argv,
			"-chardev", "socket,id="+id+","+ref,
			"-device", "vhost-user-fs-device,chardev="+id+",tag="+escape(sh.Tag))
	}
	for i, n := range m.NICs {
		dev := fmt.Sprintf("virtio-net-device,netdev=net%d", i)
		if n.MAC != "" {
			dev += ",mac=" + n.MAC
		}
		nd := netdev(i, n)
		if fd, ok := f.taps[i]; ok && a.ByFD {
			nd = fmt.Sprintf("tap,id=net%d,fd=%d", i, fd)
		}
		if fd, ok := f.proxies[i]; ok && a.ByFD {
			nd = fmt.Sprintf("stream,id=net%d,addr.type=fd,addr.str=%d", i, fd)
		}
		argv = append(argv, "-netdev", nd, "-device", dev)
	}
	if m.FreePageReporting {
		argv = append(argv, "-device", "virtio-balloon-device,free-page-reporting=on")
	}
	if m.Saveable && a.ByFD {
		// The machine protocol, by which the monitor saves and resumes the
		// VM; a restored VM starts paused, its state read from the descriptor.
		argv = append(argv, "-chardev", "socket,id=qmp,fd="+strconv.Itoa(f.qmp), "-mon", "chardev=qmp,mode=control")
		if m.Restore != nil {
			argv = append(argv, "-incoming", "fd:"+strconv.Itoa(f.incoming))
		}
	}
	if a.Sandbox {
		argv = append(argv, "-sandbox", SandboxOption)
	}
	return argv
}

// channelID names the chardev of channel i: the three nos channels keep
// short names, as in QEMU's own error messages.
func channelID(i int) string {
	if i < 3 {
		return [...]string{"ctl", "out", "err"}[i]
	}
	return "ch" + strconv.Itoa(i)
}

func procFD(n int) string { return "/proc/self/fd/" + strconv.Itoa(n) }

func drive(file string, i int, d vmm.Disk) string {
	format := d.Format
	if format == "" {
		format = vmm.FormatRaw
	}
	s := fmt.Sprintf("file=%s,if=none,id=disk%d,format=%s", file, i, format)
	if d.ReadOnly {
		s += ",readonly=on"
	} else {
		// A host disk that fills up is an I/O error the guest's file
		// system sees, not a VM QEMU pauses in silence (its default for
		// ENOSPC, werror=enospc), which nos would show as running.
		s += ",werror=report"
	}
	if d.Cache != "" {
		s += ",cache=" + d.Cache
	}
	return s
}

// accelOption is -accel's value: TCG with its translation buffer capped
// when the machine asks.
func accelOption(m vmm.Machine) string {
	if m.Accel == vmm.AccelTCG && m.TCGBufferMiB > 0 {
		return m.Accel + ",tb-size=" + strconv.Itoa(m.TCGBufferMiB)
	}
	return m.Accel
}

func cpu(accel string) string {
	if accel == vmm.AccelKVM {
		return "host"
	}
	return "max"
}

func netdev(i int, n vmm.NIC) string {
	if n.Tap != "" {
		return fmt.Sprintf("tap,id=net%d,ifname=%s,script=no,downscript=no", i, escape(n.Tap))
	}
	if n.User != nil && n.User.Proxy == vmm.ProxyPasst {
		// The proxy publishes the ports and answers the guest; QEMU only
		// carries frames to it.
		return fmt.Sprintf("stream,id=net%d,addr.type=unix,addr.path=%s", i, escape(n.User.Socket))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "user,id=net%d,net=%s,restrict=off", i, vmm.UserNetCIDR)
	if n.User != nil {
		for _, f := range n.User.Forwards {
			fmt.Fprintf(&b, ",hostfwd=%s:%s:%d-%s:%d", f.Proto, f.HostIP, f.HostPort, vmm.UserNetGuestIP, f.GuestPort)
		}
	}
	return b.String()
}

// escape doubles commas, QEMU's option separator, in a value.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
