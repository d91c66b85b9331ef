package qemu

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nosproject/nos/vmm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from Command's output")

// base is a complete machine; cases change what they are about.
func base() vmm.Machine {
	return vmm.Machine{
		Accel:      vmm.AccelTCG,
		MemoryMiB:  256,
		CPUs:       1,
		Kernel:     "/home/u/.local/share/nos/images/blobs/sha256/k",
		Initrd:     "/home/u/.local/share/nos/images/blobs/sha256/i",
		Cmdline:    "console=ttyS0 panic=-1 loglevel=4 random.trust_cpu=on",
		ConsoleLog: "/home/u/.local/share/nos/instances/abc/console.log",
		Channels:   sockets("/tmp/nos-1"),
	}
}

// sockets are the guest channels on sockets in dir.
func sockets(dir string) []vmm.Channel {
	cs := vmm.GuestChannels()
	for i, n := range []string{"ctl", "out", "err"} {
		cs[i].Socket = dir + "/" + n
	}
	return cs
}

// commaMachine has commas, QEMU's option separator, in every path.
func commaMachine() vmm.Machine {
	m := base()
	m.Kernel = "/data/a,b/kernel"
	m.Initrd = "/data/a,b/initrd"
	m.ConsoleLog = "/data/a,b/console,,log"
	m.Channels = sockets("/tmp/x,y")
	m.Disks = []vmm.Disk{{Path: "/data/a,b/rootfs", ReadOnly: true}}
	return m
}

var commandCases = []struct {
	name string
	m    func() vmm.Machine
	a    Access
}{
	{"interactive_channels", func() vmm.Machine {
		m := base()
		m.Channels = append(sockets("/tmp/nos-1"), vmm.Channel{Name: "nos.io", Socket: "/tmp/nos-1/io"})
		return m
	}, Access{}},
	{"tcg_minimal", func() vmm.Machine {
		m := base()
		m.CPUs = 0 // at least one CPU all the same
		return m
	}, Access{}},
	{"kvm_2cpu_1g", func() vmm.Machine {
		m := base()
		m.Accel = vmm.AccelKVM
		m.CPUs = 2
		m.MemoryMiB = 1024
		m.Cmdline += " tsc_early_khz=2000000"
		return m
	}, Access{}},
	{"net_no_forwards", func() vmm.Machine {
		m := base()
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{}}}
		return m
	}, Access{}},
	{"port_forwards", func() vmm.Machine {
		m := base()
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{Forwards: []vmm.Forward{
			{Proto: "tcp", HostPort: 8080, GuestPort: 80},
			{Proto: "udp", HostPort: 5353, GuestPort: 53},
			{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8443, GuestPort: 443},
			{Proto: "udp", HostIP: "192.168.1.10", HostPort: 6000, GuestPort: 6001},
		}}}}
		return m
	}, Access{}},
	{"comma_in_paths", commaMachine, Access{}},
	{"root_disk", func() vmm.Machine {
		m := base()
		m.Disks = []vmm.Disk{{Path: "/data/a,b/rootfs", ReadOnly: true}}
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{}}}
		return m
	}, Access{}},
	// What the driver runs: every file an inherited descriptor, the
	// seccomp sandbox on; two disks (a writable one with a cache mode), a
	// user-mode NIC and a tap with a MAC address.
	{"driver_fds_sandbox", func() vmm.Machine {
		m := base()
		m.Disks = []vmm.Disk{{Path: "/r", ReadOnly: true, Serial: "nos-root"}, {Path: "/v.img", Format: vmm.FormatQcow2, Cache: "none", Serial: "nos-vol-1"}}
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{Forwards: []vmm.Forward{{Proto: "tcp", HostPort: 8080, GuestPort: 80}}}}, {Tap: "nos0a", MAC: "52:54:00:12:34:56"}}
		return m
	}, Access{ByFD: true, Sandbox: true}},
	// A saveable machine restored from a saved state (nos run --snapshot):
	// the machine protocol on an inherited socket, then the state's
	// descriptor as the incoming migration, both after the disks; the
	// balloon device that takes free memory back, as nos gives every VM.
	{"restore_fds", func() vmm.Machine {
		m := base()
		m.Channels = vmm.MuxedChannels()
		m.Disks = []vmm.Disk{{Path: "/r", ReadOnly: true, Serial: "nos-root"}}
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{Forwards: []vmm.Forward{{Proto: "tcp", HostPort: 8080, GuestPort: 80}}}}}
		m.Saveable, m.Restore = true, os.Stdin
		m.FreePageReporting = true
		return m
	}, Access{ByFD: true, Sandbox: true}},
	// Two shared directories: the guest's memory becomes a shared memfd,
	// each share a vhost-user-fs device on an inherited socket, after the
	// disks' descriptors.
	{"shares_fds", func() vmm.Machine {
		m := base()
		m.Disks = []vmm.Disk{{Path: "/r", ReadOnly: true, Serial: "nos-root"}}
		m.Shares = []vmm.Share{{Tag: "nos-share-0", Source: "/srv/www", ReadOnly: true}, {Tag: "nos-share-1", Source: "/srv/data"}}
		return m
	}, Access{ByFD: true, Sandbox: true}},
	// Taps opened by the caller, handed on by descriptor; a user-mode
	// NIC between them keeps its own line.
	{"taps_fds", func() vmm.Machine {
		m := base()
		m.NICs = []vmm.NIC{{Tap: "nos-t-a", TapFile: os.Stdin, MAC: "52:54:0a:5a:00:02"}, {User: &vmm.UserNet{}}, {Tap: "nos-t-b", TapFile: os.Stdin, MAC: "52:54:0a:5a:01:02"}}
		return m
	}, Access{ByFD: true, Sandbox: true}},
	// A user-mode NIC through passt: QEMU carries frames on an inherited
	// socket (after the taps, before the machine protocol); the ports are
	// passt's to publish, not QEMU's.
	{"passt_fds", func() vmm.Machine {
		m := base()
		m.Channels = vmm.MuxedChannels()
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{Proxy: vmm.ProxyPasst, Forwards: []vmm.Forward{{Proto: "tcp", HostPort: 8080, GuestPort: 80}}}}}
		m.Saveable = true
		return m
	}, Access{ByFD: true, Sandbox: true}},
	{"passt_path", func() vmm.Machine {
		m := base()
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{Proxy: vmm.ProxyPasst, Socket: "/run/passt,1.socket"}}}
		return m
	}, Access{}},
	// The benchmarks' way: the caller's virtiofsd, by socket path.
	{"shares_paths", func() vmm.Machine {
		m := base()
		m.Shares = []vmm.Share{{Tag: "data", Source: "/srv/data", Socket: "/run/vfs,0.sock"}}
		return m
	}, Access{}},
}

func TestCommandGolden(t *testing.T) {
	for _, tc := range commandCases {
		t.Run(tc.name, func(t *testing.T) {
			got := Command(tc.m(), tc.a)
			for _, a := range got {
				if strings.Contains(a, "\n") {
					t.Fatalf("argv element %q holds a newline; the golden format is one element per line", a)
				}
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			text := strings.Join(got, "\n") + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			b, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run `go test ./vmm/qemu -update` to create it)", err)
			}
			want := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Command(%s) differs from %s (-want +got); if the change is intended, run `go test ./vmm/qemu -update`:\n%s", tc.name, golden, diff)
			}
		})
	}
}

// optionValue returns the value following the n-th (0-based) occurrence of
// option opt in argv.
func optionValue(t *testing.T, argv []string, opt string, n int) string {
	t.Helper()
	for i := 0; i < len(argv)-1; i++ {
		if argv[i] == opt {
			if n == 0 {
				return argv[i+1]
			}
			n--
		}
	}
	t.Fatalf("argv has no %s (occurrence %d): %q", opt, n, argv)
	return ""
}

// TestCommandSemantics checks what the golden files must get right, so a
// wrong golden file cannot be accepted by a careless -update.
func TestCommandSemantics(t *testing.T) {
	t.Run("accel and cpu", func(t *testing.T) {
		for accel, cpu := range map[string]string{vmm.AccelKVM: "host", vmm.AccelTCG: "max"} {
			m := base()
			m.Accel = accel
			a := Command(m, Access{})
			if got := optionValue(t, a, "-accel", 0); got != accel {
				t.Errorf("-accel %s, want %s", got, accel)
			}
			if got := optionValue(t, a, "-cpu", 0); got != cpu {
				t.Errorf("under %s: -cpu %s, want %s", accel, got, cpu)
			}
		}
	})
	t.Run("tcg translation buffer", func(t *testing.T) {
		m := base()
		m.Accel, m.TCGBufferMiB = vmm.AccelTCG, 32
		if got := optionValue(t, Command(m, Access{}), "-accel", 0); got != "tcg,tb-size=32" {
			t.Errorf("-accel %s, want tcg,tb-size=32", got)
		}
		m.Accel = vmm.AccelKVM // KVM has no translation buffer
		if got := optionValue(t, Command(m, Access{}), "-accel", 0); got != "kvm" {
			t.Errorf("-accel %s under KVM, want kvm", got)
		}
	})
	t.Run("free page reporting", func(t *testing.T) {
		m := base()
		if a := Command(m, Access{}); slices.Contains(a, "virtio-balloon-device,free-page-reporting=on") {
			t.Errorf("a balloon device nobody asked for: %q", a)
		}
		m.FreePageReporting = true
		if a := Command(m, Access{}); !slices.Contains(a, "virtio-balloon-device,free-page-reporting=on") {
			t.Errorf("FreePageReporting without a reporting balloon device: %q", a)
		}
	})
	t.Run("memory and cpus", func(t *testing.T) {
		m := base()
		m.MemoryMiB, m.CPUs = 1024, 2
		a := Command(m, Access{})
		if got := optionValue(t, a, "-m", 0); got != "1024M" {
			t.Errorf("-m %s, want 1024M", got)
		}
		if got := optionValue(t, a, "-smp", 0); got != "2" {
			t.Errorf("-smp %s, want 2", got)
		}
		m.CPUs = 0
		if got := optionValue(t, Command(m, Access{}), "-smp", 0); got != "1" {
			t.Errorf("CPUs 0: -smp %s, want 1", got)
		}
	})
	t.Run("commas doubled in option values", func(t *testing.T) {
		m := commaMachine()
		a := Command(m, Access{})
		if got, want := optionValue(t, a, "-chardev", 0), "file,id=console,append=on,path=/data/a,,b/console,,,,log"; got != want {
			t.Errorf("console -chardev %q, want %q", got, want)
		}
		for i, id := range []string{"ctl", "out", "err"} {
			want := "socket,id=" + id + ",path=/tmp/x,,y/" + id
			if got := optionValue(t, a, "-chardev", i+1); got != want {
				t.Errorf("-chardev %q, want %q", got, want)
			}
		}
		if got, want := optionValue(t, a, "-drive", 0), "file=/data/a,,b/rootfs,if=none,id=disk0,format=raw,readonly=on"; got != want {
			t.Errorf("-drive %q, want %q", got, want)
		}
		// -kernel and -initrd take a plain file name, not an option list.
		if got := optionValue(t, a, "-kernel", 0); got != m.Kernel {
			t.Errorf("-kernel %q, want %q", got, m.Kernel)
		}
		if got := optionValue(t, a, "-initrd", 0); got != m.Initrd {
			t.Errorf("-initrd %q, want %q", got, m.Initrd)
		}
	})
	t.Run("port forwards", func(t *testing.T) {
		m := base()
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{Forwards: []vmm.Forward{
			{Proto: "tcp", HostPort: 8080, GuestPort: 80},
			{Proto: "udp", HostIP: "127.0.0.1", HostPort: 5353, GuestPort: 53},
		}}}}
		a := Command(m, Access{})
		want := "user,id=net0,net=10.0.2.0/24,restrict=off,hostfwd=tcp::8080-10.0.2.15:80,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53"
		if got := optionValue(t, a, "-netdev", 0); got != want {
			t.Errorf("-netdev %q, want %q", got, want)
		}
		if !slices.Contains(a, "virtio-net-device,netdev=net0") {
			t.Errorf("no virtio-net device in %q", a)
		}
	})
	t.Run("no net, no disk, no sandbox", func(t *testing.T) {
		a := Command(base(), Access{})
		for _, opt := range []string{"-netdev", "-drive", "-sandbox", "-add-fd"} {
			if slices.Contains(a, opt) {
				t.Errorf("argv has %s for a machine without it: %q", opt, a)
			}
		}
	})
	t.Run("guest ports", func(t *testing.T) {
		a := Command(base(), Access{})
		for _, want := range []string{
			"virtserialport,chardev=ctl,name=nos.ctl",
			"virtserialport,chardev=out,name=nos.stdout",
			"virtserialport,chardev=err,name=nos.stderr",
		} {
			if !slices.Contains(a, want) {
				t.Errorf("argv lacks -device %s: %q", want, a)
			}
		}
	})
	t.Run("pure", func(t *testing.T) {
		m := base()
		m.NICs = []vmm.NIC{{User: &vmm.UserNet{Forwards: []vmm.Forward{{Proto: "tcp", HostPort: 1, GuestPort: 2}}}}}
		before := *m.NICs[0].User
		a, b := Command(m, Access{ByFD: true}), Command(m, Access{ByFD: true})
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("two calls differ (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(before, *m.NICs[0].User); diff != "" {
			t.Errorf("Command modified the machine (-before +after):\n%s", diff)
		}
	})
}

// TestCommandByFD checks the descriptor layout the driver relies on: the
// files in fdOrder from 3 up, the console and disks through fdsets, the
// channels as connected sockets, and no host path left in the argv.
func TestCommandByFD(t *testing.T) {
	m := base()
	m.Disks = []vmm.Disk{{Path: "/r", ReadOnly: true}, {Path: "/v"}}
	a := Command(m, Access{ByFD: true, Sandbox: true}) // /v gets fds 10 (read-only) and 11 (read-write)
	for opt, want := range map[string]string{"-kernel": "/proc/self/fd/3", "-initrd": "/proc/self/fd/4", "-sandbox": SandboxOption} {
		if got := optionValue(t, a, opt, 0); got != want {
			t.Errorf("%s %q, want %q", opt, got, want)
		}
	}
	for i, want := range []string{"fd=5,set=1", "fd=9,set=2", "fd=10,set=3", "fd=11,set=3"} {
		if got := optionValue(t, a, "-add-fd", i); got != want {
			t.Errorf("-add-fd #%d %q, want %q", i, got, want)
		}
	}
	for i, want := range []string{"file,id=console,append=on,path=/dev/fdset/1", "socket,id=ctl,fd=6", "socket,id=out,fd=7", "socket,id=err,fd=8"} {
		if got := optionValue(t, a, "-chardev", i); got != want {
			t.Errorf("-chardev #%d %q, want %q", i, got, want)
		}
	}
	for _, arg := range a {
		for _, p := range []string{m.Kernel, m.Initrd, m.ConsoleLog, "/tmp/nos-1", "/r,", "/v,"} {
			if strings.Contains(arg, p) {
				t.Errorf("argv element %q names the host path %s", arg, p)
			}
		}
	}
}
