package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/export"
	"github.com/nosproject/nos/transfer"
)

const kubevirtHelp = `
With --format kubevirt, the image goes to a registry and the manifest to
FILE (standard output without -o). --push REF (HOST[:PORT]/NAME[:TAG]) is
where its disk goes, as a KubeVirt containerDisk: an image with no base
and one layer holding the disk (qcow2, a GPT disk that boots through UEFI)
at /disk/disk.qcow2, owned by uid and gid 107. A second image, tagged
REF's tag followed by -kernelboot (latest-kernelboot when REF has no tag),
holds the kernel at /boot/vmlinuz and an initrd at /boot/initrd (the
image's initramfs and the guest's config, network by DHCP), owned by 107,
for KubeVirt's firmware.kernelBoot.container. Both are always pushed; the
registry rules and credentials are nos push's.

The manifest is a VirtualMachine (kubevirt.io/v1), then a Service for the
image's exposed ports: the image's memory and CPUs, a q35 machine, UEFI
without Secure Boot, the containerDisk (by digest) as a virtio disk, a
masquerade NIC on the pod network, and a NoCloud volume whose user-data is
nos's (#nos-config, then JSON): the image's environment and arguments,
which you change there. With --kernel-boot the VM boots the kernel-boot
image's kernel and initrd (BIOS, QEMU's direct kernel boot) instead of the
disk, which is then attached only when the image has a root disk.
--health-http or --health-tcp becomes the VM's readiness probe (images
carry no health check of their own). The VM runs always: when the app
ends, KubeVirt starts it again. The manifest is written only once both
images are in the registry, and never in part.`

// kubevirtFlags are the flags only --format kubevirt takes.
type kubevirtFlags struct {
	push       string
	kernelBoot bool
	health     healthFlags
	registry   registryFlags
}

func (k *kubevirtFlags) add(f *pflag.FlagSet) {
	f.StringVar(&k.push, "push", "", "kubevirt: the registry reference the containerDisk is pushed to, HOST[:PORT]/NAME[:TAG]")
	f.BoolVar(&k.kernelBoot, "kernel-boot", false, "kubevirt: boot the kernel-boot image's kernel and initrd rather than the disk through UEFI")
	f.StringVar(&k.health.http, "health-http", "", "kubevirt: readiness probe, an HTTP GET of this path that must answer 2xx/3xx")
	f.StringVar(&k.health.tcp, "health-tcp", "", "kubevirt: readiness probe, a TCP connection to this guest port")
	f.IntVar(&k.health.port, "health-port", 0, "kubevirt: guest port for --health-http (default: the image's first exposed TCP port)")
	f.DurationVar(&k.health.interval, "health-interval", 10*time.Second, "kubevirt: time between readiness probes")
	f.DurationVar(&k.health.timeout, "health-timeout", time.Second, "kubevirt: time a readiness probe may take")
	f.IntVar(&k.health.retries, "health-retries", 3, "kubevirt: consecutive failures that make the VM not ready")
	f.DurationVar(&k.health.startup, "health-start-period", 0, "kubevirt: time after the VM starts before probes begin")
	k.registry.add(f)
}

func exportKubeVirt(cmd *cobra.Command, e *env, ref, name, out string, force bool, kf kubevirtFlags) error {
	fl := cmd.Flags()
	for _, n := range []string{"publish", "accel"} {
		if fl.Changed(n) {
			return fmt.Errorf("--%s is for --format libvirt: a KubeVirt export publishes the image's exposed ports with a Service", n)
		}
	}
	if kf.push == "" {
		return errors.New("a KubeVirt export needs a registry reference to push its disk to: use --push HOST[:PORT]/NAME[:TAG]")
	}
	cfg, err := kf.registry.config()
	if err != nil {
		return err
	}
	hc, err := kf.health.check()
	if err != nil {
		return err
	}
	if out != "" {
		if out, err = filepath.Abs(out); err != nil {
			return err
		}
	}
	st, err := e.store()
	if err != nil {
		return err
	}
	im, err := bootable.Load(cmd.Context(), st, ref)
	if err != nil {
		return err
	}
	if name == "" {
		name = strings.ToLower(defaultDomainName(im.Ref.Name))
	}
	o := export.KubeVirtExport{
		KubeVirt: export.KubeVirt{Name: name, KernelBoot: kf.kernelBoot},
		Push:     kf.push,
		Transfer: transfer.Options{Registry: cfg},
		Output:   out,
		Stdout:   e.stdout,
		Force:    force,
	}
	if hc != nil {
		h := &export.Health{HTTPPath: hc.HTTPPath, Port: hc.Port, Interval: hc.Interval, Timeout: hc.Timeout, Retries: hc.Retries, StartPeriod: hc.StartPeriod}
		if h.Port == 0 {
			h.Port = firstTCPPort(im.Config.ExposedPorts)
			if h.Port == 0 {
				return errors.New("--health-http: the image exposes no TCP port: name one with --health-port")
			}
		}
		o.Health = h
	}
	if err := export.CheckKubeVirt(im, o); err != nil {
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
	res, err := export.ExportKubeVirt(cmd.Context(), im, kernel, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "nos: pushed the containerDisk %s\nnos: pushed the kernel-boot image %s\n", res.DiskImage, res.KernelBootImage)
	if out != "" {
		fmt.Fprintln(e.stdout, out)
	}
	return nil
}

// firstTCPPort is the first TCP port of exposed ("PORT/PROTO"), 0 if none.
func firstTCPPort(exposed []string) int {
	for _, p := range exposed {
		if num, proto, _ := strings.Cut(p, "/"); proto == "tcp" || proto == "" {
			if n, err := strconv.Atoi(num); err == nil {
				return n
			}
		}
	}
	return 0
}
