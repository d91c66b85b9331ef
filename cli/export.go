package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/export"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/vmm"
)

// domainName is what libvirt and a hostname both accept.
var domainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)

func newExportCmd(e *env) *cobra.Command {
	var (
		format, name, accel, out string
		publish                  []string
		force                    bool
		kv                       kubevirtFlags
	)
	cmd := &cobra.Command{
		Use: `export IMAGE --format libvirt|raw|qcow2|vmdk|vhd|gce|aws [--name N] -o DIR|FILE [--force]
  nos export IMAGE --format kubevirt --push REF [--name N] [--kernel-boot] [--health-http PATH | --health-tcp PORT] [-o FILE [--force]]`,
		Short: "Write an image out for another engine: libvirt, KubeVirt, or a UEFI disk for clouds",
		Long: `Export writes IMAGE for an engine other than nos.

With --format raw, qcow2, vmdk, vhd, gce or aws it writes FILE, a GPT disk
booted by UEFI firmware (no BIOS): an EFI system partition holding a
Unified Kernel Image (systemd's EFI stub with the image's kernel, command
line and initramfs) and, when the image has one, its root filesystem as a
second partition. The image must be built on nos's kernel with the cloud
feature (nos build --features blk,cloud,net). The guest configures itself:
its address by DHCP, its platform from DMI, overrides from the platform's
metadata (AWS, GCE, Azure, which it also tells it is ready) or a NoCloud
disk; the app's output goes to the serial console. Formats: raw (any
hypervisor), qcow2 (libvirt, KubeVirt, OpenStack), vmdk (stream-optimised,
VMware), vhd (fixed, whole MiB, for Azure), gce (disk.raw in a gzip'd GNU
tar, whole GiB), aws (raw, to register with --boot-mode uefi). The same
image gives the same bytes.

With --format
libvirt, a domain XML (domain.xml) and the files it names - the kernel, an
initrd (the image's initramfs followed by a small one holding the guest's
config) and the root disk when the image has one - for direct kernel boot
on a q35 machine with virtio-pci devices, QEMU user-mode networking (the
guest at 10.0.2.15) and the serial console in DIR/console.log.

No nos host runs beside an exported guest: its init takes the image's
command, environment and user, the domain name as hostname and the network
from the initrd, sends the app's output to the console, and turns the ACPI
power button (virsh shutdown) into SIGTERM for the app. Images on nos's
kernels without the cloud feature have no power button: they stop when the
app ends, or by virsh destroy.

The files are readable by all: libvirt's system daemon runs QEMU as its
own user. DIR must not exist unless --force; a failed export leaves nothing
under DIR.
` + kubevirtHelp,
		Example: `  nos export web --format qcow2 -o web.qcow2
  nos export web --format gce -o web.tar.gz
  nos export web --format libvirt -p 127.0.0.1:8080:8080 -o /srv/vm/web
  virsh -c qemu:///system define /srv/vm/web/domain.xml && virsh -c qemu:///system start web
  nos export web --format kubevirt --push registry.example/team/web:1.0 --health-http /healthz -o web.yaml
  kubectl apply -f web.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if export.IsDiskFormat(format) {
				if len(publish) > 0 {
					return fmt.Errorf("-p: a disk export has no host to publish ports on; the platform's firewall or load balancer does that")
				}
				return exportDisk(cmd, e, args[0], format, name, out, force)
			}
			if format == "kubevirt" {
				return exportKubeVirt(cmd, e, args[0], name, out, force, kv)
			}
			if format != "libvirt" {
				return fmt.Errorf("--format %q: unknown format; want libvirt, kubevirt, %s", format, strings.Join(export.DiskFormats(), ", "))
			}
			if out == "" {
				return fmt.Errorf("no output directory: use -o DIR")
			}
			if accel != vmm.AccelKVM && accel != vmm.AccelTCG {
				return fmt.Errorf("--accel %q: want kvm or tcg", accel)
			}
			var fwds []vmm.Forward
			for _, p := range publish {
				f, err := instance.ParsePublish(p)
				if err != nil {
					return err
				}
				fwds = append(fwds, f)
			}
			dir, err := filepath.Abs(out)
			if err != nil {
				return err
			}
			im, name, err := loadExported(cmd, e, args[0], name)
			if err != nil {
				return err
			}
			if len(fwds) > 0 && im.Config.Kernel.NoNetwork {
				return fmt.Errorf("-p %s: the image's kernel has no networking", publish[0])
			}
			if err := export.CheckBootable(im); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			l, err := e.layout()
			if err != nil {
				return err
			}
			kernel, err := im.Kernel(cmd.Context(), l.UnpackedKernels())
			if err != nil {
				return err
			}
			opts := export.Libvirt{Name: name, Accel: accel, Forwards: fwds, Dir: dir}
			if err := export.WriteLibvirt(cmd.Context(), im, kernel, opts, force); err != nil {
				return err
			}
			if !export.PowerButton(im) {
				fmt.Fprintf(e.stderr, "nos: note: the image's kernel (%s) has no ACPI power button: virsh shutdown cannot stop it; it stops when the app ends, or with virsh destroy\n", im.Config.Kernel.Version)
			}
			fmt.Fprintln(e.stdout, filepath.Join(dir, export.DomainFile))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "what to write: libvirt, kubevirt, raw, qcow2, vmdk, vhd, gce or aws")
	f.StringVar(&name, "name", "", "the domain's name and the guest's hostname (default: the image's name)")
	f.StringVar(&accel, "accel", vmm.AccelTCG, "domain type: kvm, or tcg (software emulation, libvirt's type 'qemu')")
	f.StringArrayVarP(&publish, "publish", "p", nil, "publish a guest port on the host, [IP:]HOST:GUEST[/udp] (repeatable)")
	f.StringVarP(&out, "output", "o", "", "the directory (libvirt) or file (disk formats; kubevirt's manifest, standard output without it) to write; must not exist")
	f.BoolVar(&force, "force", false, "replace the output if it exists")
	kv.add(f)
	return cmd
}

// exportDisk writes a UEFI disk of the image in a disk format.
func exportDisk(cmd *cobra.Command, e *env, ref, format, name, out string, force bool) error {
	if out == "" {
		return fmt.Errorf("no output file: use -o FILE")
	}
	path, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("-o %s is a directory: give the file to write", out)
	}
	im, name, err := loadExported(cmd, e, ref, name)
	if err != nil {
		return err
	}
	if err := export.CheckDiskBootable(im); err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	l, err := e.layout()
	if err != nil {
		return err
	}
	kernel, err := im.Kernel(cmd.Context(), l.UnpackedKernels())
	if err != nil {
		return err
	}
	if err := export.WriteDisk(cmd.Context(), im, kernel, export.Disk{Format: format, Output: path, Force: force, Name: name}); err != nil {
		return err
	}
	fmt.Fprintln(e.stderr, "nos: wrote "+export.DescribeDisk(format, path))
	fmt.Fprintln(e.stdout, path)
	return nil
}

// loadExported loads the image an export writes out and settles the
// guest's name: the one given, else the image's, checked as a hostname.
func loadExported(cmd *cobra.Command, e *env, ref, name string) (*bootable.Image, string, error) {
	st, err := e.store()
	if err != nil {
		return nil, "", err
	}
	im, err := bootable.Load(cmd.Context(), st, ref)
	if err != nil {
		return nil, "", err
	}
	if name == "" {
		name = defaultDomainName(im.Ref.Name)
	}
	if !domainName.MatchString(name) {
		return nil, "", fmt.Errorf("--name %q: want letters, digits and '-', at most 63, as a hostname", name)
	}
	return im, name, nil
}

// defaultDomainName turns an image name (registry.example/team/web) into a
// domain name (web).
func defaultDomainName(image string) string {
	n := image[strings.LastIndex(image, "/")+1:]
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, n)
	return strings.Trim(n, "-")
}
