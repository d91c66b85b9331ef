package export

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"libvirt.org/go/libvirtxml"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/vmm"
)

// Sentinel errors, for errors.Is.
var (
	// ErrExists: the output directory exists and Force was not given.
	ErrExists = errors.New("output directory exists (use --force to replace it)")
	// ErrCannotBoot: the image cannot boot as a libvirt domain.
	ErrCannotBoot = errors.New("image cannot boot outside nos")
	// ErrBadOption: an option is out of range.
	ErrBadOption = errors.New("invalid export option")
)

// Names of the files an export writes into its directory.
const (
	DomainFile   = "domain.xml"
	KernelFile   = "kernel"
	InitrdFile   = "initrd.img"
	RootDiskFile = "root.erofs"
	ConsoleFile  = "console.log"
)

// Machine is the machine type of exported domains. libvirt has no working
// microvm support (no virtio-mmio address type on x86, no ISA-less
// machine), so exports use q35 with virtio-pci devices: what libvirt's own
// tools choose for new x86 guests and what KubeVirt runs, with a PCI bus
// the image's kernel needs anyway (nos's kernels have PCI and virtio-pci;
// a distribution kernel loads virtio_pci).
const Machine = "q35"

// passthroughSlot is the slot on q35's root bus of the NIC passed through
// <qemu:commandline>: QEMU 7.2 creates the passed-through device before
// libvirt's own (JSON) ones, so left to itself it takes slot 1, where
// libvirt puts its first PCIe root port. libvirt fills slots from 1 up;
// 0x10 is far above what an exported domain's few devices use.
const passthroughSlot = "0x10"

// rootSerial names the root disk to the guest, as nos's runner does.
const rootSerial = "nos-root"

// Libvirt is what an export is made of.
type Libvirt struct {
	// Name is the domain's name, also the guest's hostname.
	Name string
	// Accel is vmm.AccelKVM ("kvm", domain type kvm) or vmm.AccelTCG
	// ("tcg", domain type qemu).
	Accel string
	// Forwards are the host ports published to the guest, on the
	// user-mode network.
	Forwards []vmm.Forward
	// Dir is the absolute directory the export ends up in: the XML names
	// files under it.
	Dir string
}

// Domain describes im as a libvirt domain whose files are in l.Dir. It is a
// pure function of its inputs (golden files test it).
//
// The network is QEMU's user-mode network, the guest at 10.0.2.15/24. A
// domain without published ports gets libvirt's own <interface
// type='user'>; with ports, libvirt 9.0 (Debian 12) cannot express them:
// <portForward> exists only for the passt backend, which 9.0 does not run
// from the system daemon, and a libvirt-made SLIRP netdev takes no
// hostfwd. The NIC is then QEMU's own, passed through <qemu:commandline>:
// a user netdev with hostfwd=… and a virtio-net-pci device with the same
// MAC.
func Domain(im *bootable.Image, l Libvirt) (*libvirtxml.Domain, error) {
	typ := "qemu"
	switch l.Accel {
	case vmm.AccelTCG:
	case vmm.AccelKVM:
		typ = "kvm"
	default:
		return nil, fmt.Errorf("--accel %q: want kvm or tcg: %w", l.Accel, ErrBadOption)
	}
	if !filepath.IsAbs(l.Dir) {
		return nil, fmt.Errorf("export directory %q is not absolute: %w", l.Dir, ErrBadOption)
	}
	cpus := im.Config.CPUs
	if cpus < 1 {
		cpus = 1
	}
	mac := MAC(l.Name)
	d := &libvirtxml.Domain{
		Type:        typ,
		Name:        l.Name,
		UUID:        UUID(l.Name),
		Description: "nos image " + im.Ref.Name + ":" + im.Ref.Tag + " " + im.Ref.Manifest.Digest.String(),
		Memory:      &libvirtxml.DomainMemory{Value: uint(im.Config.MemoryMiB), Unit: "MiB"},
		VCPU:        &libvirtxml.DomainVCPU{Value: uint(cpus)},
		OS: &libvirtxml.DomainOS{
			Type:    &libvirtxml.DomainOSType{Arch: "x86_64", Machine: Machine, Type: "hvm"},
			Kernel:  filepath.Join(l.Dir, KernelFile),
			Initrd:  filepath.Join(l.Dir, InitrdFile),
			Cmdline: im.Config.KernelCmdline,
		},
		Features: &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		// The guest powers off when its app ends; a kernel panic reboots
		// (panic=-1), and a reboot is the end of it too: nos's runner
		// decides restarts, libvirt should not loop a crashing guest.
		OnPoweroff: "destroy",
		OnReboot:   "destroy",
		OnCrash:    "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Serials: []libvirtxml.DomainSerial{{
				Source: &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{
					Path: filepath.Join(l.Dir, ConsoleFile), Append: "off",
				}},
				Target: &libvirtxml.DomainSerialTarget{Port: uintp(0)},
			}},
			RNGs: []libvirtxml.DomainRNG{{
				Model:   "virtio",
				Backend: &libvirtxml.DomainRNGBackend{Random: &libvirtxml.DomainRNGBackendRandom{Device: "/dev/urandom"}},
			}},
			MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"},
		},
	}
	if im.RootDisk != "" {
		d.Devices.Disks = []libvirtxml.DomainDisk{{
			Device:   "disk",
			Driver:   &libvirtxml.DomainDiskDriver{Name: "qemu", Type: "raw"},
			Source:   &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: filepath.Join(l.Dir, RootDiskFile)}},
			Target:   &libvirtxml.DomainDiskTarget{Dev: "vda", Bus: "virtio"},
			ReadOnly: &libvirtxml.DomainDiskReadOnly{},
			Serial:   rootSerial,
		}}
	}
	switch {
	case im.Config.Kernel.NoNetwork:
	case len(l.Forwards) == 0:
		d.Devices.Interfaces = []libvirtxml.DomainInterface{{
			Source: &libvirtxml.DomainInterfaceSource{User: &libvirtxml.DomainInterfaceSourceUser{}},
			MAC:    &libvirtxml.DomainInterfaceMAC{Address: mac},
			Model:  &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}}
	default:
		netdev := "user,id=nosnet0,net=" + vmm.UserNetCIDR
		for _, f := range l.Forwards {
			netdev += fmt.Sprintf(",hostfwd=%s:%s:%d-:%d", f.Proto, f.HostIP, f.HostPort, f.GuestPort)
		}
		d.QEMUCommandline = &libvirtxml.DomainQEMUCommandline{Args: []libvirtxml.DomainQEMUCommandlineArg{
			{Value: "-netdev"}, {Value: netdev},
			{Value: "-device"}, {Value: "virtio-net-pci,netdev=nosnet0,mac=" + mac + ",bus=pcie.0,addr=" + passthroughSlot},
		}}
	}
	return d, nil
}

// MAC is the NIC's address for a domain named name: stable across
// exports, locally administered (QEMU's 52:54:00 prefix).
func MAC(name string) string {
	h := sha256.Sum256([]byte(name))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
}

// UUID is the domain's UUID for a domain named name: stable, so that
// defining a new export of the same name replaces the old definition
// rather than being refused as a second domain of that name.
func UUID(name string) string {
	h := sha256.Sum256([]byte("nos-libvirt-domain:" + name))
	h[6] = h[6]&0x0f | 0x80 // version 8: custom
	h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// GuestConfig is what the exported guest's init reads from its initramfs
// (guestapi.StandaloneConfig) in place of a host's answer: the image's
// command, environment and user, the domain's name as hostname, the
// user-mode network's addresses and the root disk.
func GuestConfig(im *bootable.Image, l Libvirt) *guestapi.Config {
	c := im.Config
	g := &guestapi.Config{
		Argv:       append(slices.Clone(c.Entrypoint), c.Args...),
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		Hostname:   l.Name,
		User:       c.User,
		Caps:       c.Caps,
	}
	if !c.Kernel.NoNetwork {
		n := vmm.UserNetGuest("eth0")
		n.MAC = MAC(l.Name)
		g.Network = n
	}
	if c.RootFS != "" {
		// Writable, as nos run makes it by default.
		g.Root = &guestapi.Root{Device: "/dev/vda", FSType: c.RootFS, Serial: rootSerial, Writable: true}
	}
	return g
}

// CheckBootable says why im cannot boot as an exported domain: its init
// must run without a host, and a modular kernel must bring virtio-pci.
func CheckBootable(im *bootable.Image) error {
	if im.Config.InitAPI < image.InitAPIStandalone {
		return fmt.Errorf("its nos-init needs a nos host on the control port (made by an older nos): rebuild it with this nos: %w", ErrCannotBoot)
	}
	if len(im.Config.Modules) > 0 && !hasModule(im.Config.Modules, "virtio_pci") {
		return fmt.Errorf("its kernel %s is modular and the image lacks virtio_pci: rebuild it with this nos: %w", im.Config.Kernel.Version, ErrCannotBoot)
	}
	return nil
}

// PowerButton reports whether the image's kernel can see the ACPI power
// button, which is how `virsh shutdown` asks a guest to stop. nos's own
// kernels have no input layer (kernel/config: CONFIG_INPUT is not set)
// unless built with the cloud feature: without it, their guests stop
// only when the app ends, or by `virsh destroy`.
func PowerButton(im *bootable.Image) bool {
	if len(im.Config.Modules) > 0 {
		return hasModule(im.Config.Modules, "button") && hasModule(im.Config.Modules, "evdev")
	}
	// A module-free kernel nos built: features are known, and only cloud
	// has the input layer. Anything else (an imported monolithic kernel)
	// is unknown; assume a distribution kernel's ACPI.
	fs := im.Config.Kernel.Features
	return fs == nil || slices.Contains(fs, CloudFeature)
}

// hasModule reports whether the image loads the module; a modular kernel
// that has it built in is not told apart (it is rare for these).
func hasModule(mods []string, name string) bool { return slices.Contains(mods, name) }

// WriteLibvirt exports im into dir: the domain XML, the kernel (kernelPath,
// the image's kernel as a file, see bootable.Image.Kernel), an initrd that
// is the image's initramfs followed by a small one holding the guest's
// config, and the root disk when the image has one. The files are readable
// by all (0644, the directory 0755): the system daemon runs QEMU as its own
// user. An existing dir is refused unless force, and replaced only once the
// new export is complete.
func WriteLibvirt(ctx context.Context, im *bootable.Image, kernelPath string, l Libvirt, force bool) (err error) {
	if err := CheckBootable(im); err != nil {
		return err
	}
	if _, err := os.Lstat(l.Dir); err == nil && !force {
		return fmt.Errorf("%s: %w", l.Dir, ErrExists)
	}
	dom, err := Domain(im, l)
	if err != nil {
		return err
	}
	xml, err := dom.Marshal()
	if err != nil {
		return fmt.Errorf("domain XML: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(l.Dir), "."+filepath.Base(l.Dir)+".*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := copyFile(ctx, filepath.Join(tmp, KernelFile), kernelPath); err != nil {
		return err
	}
	if err := writeInitrd(ctx, filepath.Join(tmp, InitrdFile), im.Initrd, GuestConfig(im, l)); err != nil {
		return err
	}
	if im.RootDisk != "" {
		if err := copyFile(ctx, filepath.Join(tmp, RootDiskFile), im.RootDisk); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(tmp, DomainFile), []byte(xml+"\n")); err != nil {
		return err
	}
	if force {
		old := tmp + ".old"
		if err := os.Rename(l.Dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("export: %w", err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, l.Dir); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// writeInitrd writes the image's initramfs followed by a second archive
// holding cfg at guestapi.StandaloneConfig: the kernel unpacks
// concatenated archives in order, so the guest sees both.
func writeInitrd(ctx context.Context, dst, base string, cfg *guestapi.Config) error {
	return writeWith(dst, func(w io.Writer) error { return writeInitrdTo(ctx, w, base, cfg) })
}

func copyFile(ctx context.Context, dst, src string) error {
	return writeWith(dst, func(w io.Writer) error { return copyInto(ctx, w, src) })
}

func copyInto(ctx context.Context, w io.Writer, src string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func writeFile(dst string, b []byte) error {
	return writeWith(dst, func(w io.Writer) error { _, err := w.Write(b); return err })
}

func writeWith(dst string, fill func(io.Writer) error) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(dst), err)
	}
	return nil
}

func uintp(v uint) *uint { return &v }
