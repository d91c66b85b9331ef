package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/internal/registry"
	"github.com/nosproject/nos/transfer"
)

// Where the KubeVirt images hold their files. A containerDisk is one disk
// file under /disk/ (KubeVirt's documented layout); the kernel-boot image
// holds a kernel and an initrd, at the paths the manifest names. Both are
// owned by KubeVirtUID, the user virt-launcher runs QEMU as.
const (
	ContainerDiskPath   = "/disk/disk.qcow2"
	KernelBootKernel    = "/boot/vmlinuz"
	KernelBootInitrd    = "/boot/initrd"
	KubeVirtUID         = 107
	KernelBootTagSuffix = "-kernelboot"
)

// Names inside the VirtualMachine: its volumes (and their disks) and its
// one network.
const (
	kvRootVolume      = "rootdisk"
	kvCloudInitVolume = "cloudinit"
	kvNetwork         = "default"
	// kvNameLabel is the label the VM's pods carry and the Service
	// selects them by.
	kvNameLabel = "app.kubernetes.io/name"
)

// AnnotationImage, on the VirtualMachine, names the nos image it was
// exported from (NAME:TAG@DIGEST).
const AnnotationImage = "dev.nos.image"

// KubeVirt is what a KubeVirt manifest is made of.
type KubeVirt struct {
	// Name is the VirtualMachine's and the Service's name (and so the
	// guest's hostname, from KubeVirt's NoCloud meta-data).
	Name string
	// DiskImage is the containerDisk image, as pushed (by digest): the
	// image's UEFI-bootable disk at ContainerDiskPath.
	DiskImage string
	// KernelBootImage is the kernel-boot image, as pushed (by digest).
	KernelBootImage string
	// KernelBoot makes the VM boot the kernel-boot image's kernel and
	// initrd (KubeVirt's firmware.kernelBoot, BIOS) rather than the
	// disk's UEFI loader; the disk is then attached only when the image
	// has a root disk, whose partition it holds.
	KernelBoot bool
	// Health, when set, becomes the VM's readiness probe.
	Health *Health
}

// Health is a health check of the application: a TCP connect to Port,
// or with HTTPPath an HTTP GET answering 2xx or 3xx. Zero durations and
// retries are KubeVirt's defaults.
type Health struct {
	Port        int
	HTTPPath    string
	Interval    time.Duration
	Timeout     time.Duration
	Retries     int
	StartPeriod time.Duration
}

// UserData is the nos user-data of a KubeVirt export (guestapi.UserData):
// the image's environment and arguments, written out so that a user
// changes them in the manifest rather than rebuilding the image.
func UserData(im *bootable.Image) (string, error) {
	args := slices.Clone(im.Config.Args)
	if args == nil {
		args = []string{}
	}
	u := guestapi.UserData{Env: im.Config.Env, Args: &args}
	b, err := json.Marshal(u)
	if err != nil {
		return "", err
	}
	s := guestapi.UserDataHeader + "\n" + string(b) + "\n"
	if _, err := guestapi.ParseUserData([]byte(s)); err != nil {
		return "", fmt.Errorf("the image's environment as user-data: %w", err)
	}
	return s, nil
}

// VirtualMachine describes im as a KubeVirt VirtualMachine. It is a pure
// function of its inputs (golden files test it).
//
// The VM is a q35 machine with virtio devices. It boots the containerDisk
// through UEFI without Secure Boot (nos's kernels are not signed), or with
// k.KernelBoot the kernel-boot image's kernel and initrd through BIOS
// (QEMU's direct kernel boot, as the libvirt export does). Its NIC is on
// the pod network behind KubeVirt's masquerade (NAT, DHCP). The NoCloud
// volume carries nos user-data (UserData). It runs always: when the app
// ends the guest powers off and KubeVirt starts it again, as a
// Deployment restarts a container.
func VirtualMachine(im *bootable.Image, k KubeVirt) (*kubevirtv1.VirtualMachine, error) {
	if !KubeName(k.Name) {
		return nil, fmt.Errorf("name %q: want lower-case letters, digits and '-', starting with a letter, at most 63 (a Kubernetes Service's name): %w", k.Name, ErrBadOption)
	}
	if k.DiskImage == "" && (!k.KernelBoot || im.RootDisk != "") {
		return nil, fmt.Errorf("no containerDisk image: %w", ErrBadOption)
	}
	if k.KernelBoot && k.KernelBootImage == "" {
		return nil, fmt.Errorf("no kernel-boot image: %w", ErrBadOption)
	}
	userData, err := UserData(im)
	if err != nil {
		return nil, err
	}
	cpus := im.Config.CPUs
	if cpus < 1 {
		cpus = 1
	}
	mem := im.Config.MemoryMiB
	if mem < 1 {
		mem = image.DefaultMemoryMiB
	}
	memory := resource.MustParse(strconv.Itoa(mem) + "Mi")
	labels := map[string]string{kvNameLabel: k.Name}
	no := false
	spec := kubevirtv1.VirtualMachineInstanceSpec{
		Domain: kubevirtv1.DomainSpec{
			Machine: &kubevirtv1.Machine{Type: Machine},
			CPU:     &kubevirtv1.CPU{Cores: uint32(cpus)},
			Memory:  &kubevirtv1.Memory{Guest: &memory},
			Devices: kubevirtv1.Devices{
				// The app's output is on the serial console (virtctl
				// console); there is no display and no balloon driver.
				AutoattachGraphicsDevice: &no,
				AutoattachMemBalloon:     &no,
				Rng:                      &kubevirtv1.Rng{},
			},
		},
	}
	d := &spec.Domain
	if k.KernelBoot {
		d.Firmware = &kubevirtv1.Firmware{KernelBoot: &kubevirtv1.KernelBoot{
			KernelArgs: im.Config.KernelCmdline,
			Container: &kubevirtv1.KernelBootContainer{
				Image:      k.KernelBootImage,
				KernelPath: KernelBootKernel,
				InitrdPath: KernelBootInitrd,
			},
		}}
	} else {
		d.Firmware = &kubevirtv1.Firmware{Bootloader: &kubevirtv1.Bootloader{EFI: &kubevirtv1.EFI{SecureBoot: &no}}}
	}
	if !k.KernelBoot || im.RootDisk != "" {
		disk := kubevirtv1.Disk{
			Name:       kvRootVolume,
			DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}},
		}
		if !k.KernelBoot {
			one := uint(1)
			disk.BootOrder = &one
		}
		d.Devices.Disks = append(d.Devices.Disks, disk)
		spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{
			Name:         kvRootVolume,
			VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{Image: k.DiskImage, Path: ContainerDiskPath}},
		})
	}
	d.Devices.Disks = append(d.Devices.Disks, kubevirtv1.Disk{
		Name:       kvCloudInitVolume,
		DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}},
	})
	spec.Volumes = append(spec.Volumes, kubevirtv1.Volume{
		Name:         kvCloudInitVolume,
		VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{UserData: userData}},
	})
	if im.Config.Kernel.NoNetwork {
		// No NIC at all: KubeVirt would otherwise add one on the pod network.
		d.Devices.AutoattachPodInterface = &no
	} else {
		d.Devices.Interfaces = []kubevirtv1.Interface{{
			Name:                   kvNetwork,
			Model:                  "virtio",
			InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}},
		}}
		spec.Networks = []kubevirtv1.Network{{Name: kvNetwork, NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}}}
	}
	if h := k.Health; h != nil {
		p, err := readinessProbe(h)
		if err != nil {
			return nil, err
		}
		spec.ReadinessProbe = p
	}
	run := kubevirtv1.RunStrategyAlways
	return &kubevirtv1.VirtualMachine{
		TypeMeta: metav1.TypeMeta{APIVersion: kubevirtv1.SchemeGroupVersion.String(), Kind: "VirtualMachine"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        k.Name,
			Labels:      labels,
			Annotations: map[string]string{AnnotationImage: imageRef(im)},
		},
		Spec: kubevirtv1.VirtualMachineSpec{
			RunStrategy: &run,
			Template: &kubevirtv1.VirtualMachineInstanceTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       spec,
			},
		},
	}, nil
}

func readinessProbe(h *Health) (*kubevirtv1.Probe, error) {
	if h.Port < 1 || h.Port > 65535 {
		return nil, fmt.Errorf("health check port %d: %w", h.Port, ErrBadOption)
	}
	port := intstr.FromInt32(int32(h.Port))
	p := &kubevirtv1.Probe{
		InitialDelaySeconds: seconds(h.StartPeriod),
		TimeoutSeconds:      seconds(h.Timeout),
		PeriodSeconds:       seconds(h.Interval),
		FailureThreshold:    int32(h.Retries),
	}
	if h.HTTPPath != "" {
		if !strings.HasPrefix(h.HTTPPath, "/") {
			return nil, fmt.Errorf("health check path %q: want a path starting with /: %w", h.HTTPPath, ErrBadOption)
		}
		p.HTTPGet = &corev1.HTTPGetAction{Path: h.HTTPPath, Port: port}
	} else {
		p.TCPSocket = &corev1.TCPSocketAction{Port: port}
	}
	return p, nil
}

// seconds rounds d up to whole seconds, as Kubernetes counts probes.
func seconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32((d + time.Second - 1) / time.Second)
}

// Service is the Kubernetes Service for the image's exposed ports,
// selecting the VM's pods; nil when the image exposes none (or has no
// network).
func Service(im *bootable.Image, name string) (*corev1.Service, error) {
	if im.Config.Kernel.NoNetwork || len(im.Config.ExposedPorts) == 0 {
		return nil, nil
	}
	var ports []corev1.ServicePort
	for _, p := range im.Config.ExposedPorts {
		norm, err := image.ParsePort(p)
		if err != nil {
			return nil, fmt.Errorf("the image's exposed %w", err)
		}
		num, proto, _ := strings.Cut(norm, "/")
		n, _ := strconv.Atoi(num)
		ports = append(ports, corev1.ServicePort{
			Name:       proto + "-" + num,
			Protocol:   corev1.Protocol(strings.ToUpper(proto)),
			Port:       int32(n),
			TargetPort: intstr.FromInt32(int32(n)),
		})
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{kvNameLabel: name}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{kvNameLabel: name},
			Ports:    ports,
		},
	}, nil
}

// KubeVirtManifest is the YAML a KubeVirt export writes: the
// VirtualMachine, then the Service when the image exposes ports, as
// documents of one stream (kubectl apply -f takes it whole).
func KubeVirtManifest(im *bootable.Image, k KubeVirt) ([]byte, error) {
	vm, err := VirtualMachine(im, k)
	if err != nil {
		return nil, err
	}
	svc, err := Service(im, k.Name)
	if err != nil {
		return nil, err
	}
	docs := []any{vm}
	if svc != nil {
		docs = append(docs, svc)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# nos export %s --format kubevirt\n", imageRef(im))
	for i, doc := range docs {
		b, err := yaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}

func imageRef(im *bootable.Image) string {
	return im.Ref.Name + ":" + im.Ref.Tag + "@" + im.Ref.Manifest.Digest.String()
}

// KubeName reports whether s is an RFC 1035 label, as a Service's name
// must be (a VM's may be more) and a hostname can be: lower-case
// letters, digits and '-', starting with a letter.
func KubeName(s string) bool {
	if s == "" || len(s) > 63 || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// KubeVirtExport is what WriteKubeVirt is asked to do.
type KubeVirtExport struct {
	// KubeVirt is the manifest's shape; its images are filled in from
	// the pushes.
	KubeVirt
	// Push is the registry tag the containerDisk goes to; the kernel-boot
	// image goes to KernelBootTag(Push).
	Push string
	// Transfer says how to reach the registry.
	Transfer transfer.Options
	// Output is the manifest's file; "" writes it to Stdout.
	Output string
	Stdout io.Writer
	// Force replaces an existing Output.
	Force bool
	// TempDir is where the images' layers are written before they are
	// pushed ("" is the system's).
	TempDir string
}

// KubeVirtResult is what an export pushed.
type KubeVirtResult struct {
	// DiskImage and KernelBootImage are the images as pushed, by digest.
	DiskImage, KernelBootImage string
}

// KernelBootTag is the tag the kernel-boot image of a KubeVirt export
// pushed to ref (REPO[:TAG]) goes to: REPO:TAG-kernelboot, TAG being
// latest when ref has none.
func KernelBootTag(cfg registry.Config, ref string) (string, error) {
	r, err := cfg.Parse(ref)
	if err != nil {
		return "", err
	}
	t, ok := r.(name.Tag)
	if !ok {
		return "", fmt.Errorf("--push %s: push to a tag, not a digest: %w", ref, ErrBadOption)
	}
	tag := t.TagStr() + KernelBootTagSuffix
	if len(tag) > 128 {
		return "", fmt.Errorf("--push %s: the tag is too long for the kernel-boot image's tag (it adds %s): %w", ref, KernelBootTagSuffix, ErrBadOption)
	}
	// The user's own spelling of the repository, so that a registry
	// without a scheme-qualified name (docker.io) stays as given.
	repo := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo = ref[:i]
	}
	return repo + ":" + tag, nil
}

// CheckKubeVirt refuses what would make a KubeVirt export fail after it
// did the expensive part: an image that cannot boot from an exported
// disk (CheckDiskBootable: both images run the disk's guest), no
// registry reference or a bad one, a name Kubernetes refuses, an
// existing output file without Force.
func CheckKubeVirt(im *bootable.Image, o KubeVirtExport) error {
	if err := CheckDiskBootable(im); err != nil {
		return err
	}
	if o.Push == "" {
		return fmt.Errorf("a KubeVirt export needs a registry reference to push its disk to: use --push HOST[:PORT]/NAME[:TAG]: %w", ErrBadOption)
	}
	if _, err := KernelBootTag(o.Transfer.Registry, o.Push); err != nil {
		return err
	}
	if !KubeName(o.Name) {
		return fmt.Errorf("--name %q: want lower-case letters, digits and '-', starting with a letter, at most 63 (a Kubernetes Service's name): %w", o.Name, ErrBadOption)
	}
	if o.Health != nil {
		if _, err := readinessProbe(o.Health); err != nil {
			return err
		}
	}
	if o.Output != "" && !o.Force {
		if _, err := os.Lstat(o.Output); err == nil {
			return fmt.Errorf("%s: %w", o.Output, ErrExistsFile)
		}
	}
	return nil
}

// WriteKubeVirt exports im for KubeVirt, qcow2 being its disk (WriteDisk,
// format qcow2): it pushes the containerDisk (ContainerDiskImage) to
// o.Push and the kernel-boot image (KernelBootImage: kernelPath and an
// initrd) to KernelBootTag(o.Push), then writes
// the manifest (KubeVirtManifest), naming both by digest. The
// kernel-boot initrd holds the disk's standalone config (DiskGuestConfig):
// both boots give the guest the same start. The manifest is
// written only once both pushes are complete, and into a temporary file
// renamed into place: a failed export leaves no manifest, and no
// manifest names an image that is not wholly in the registry.
func WriteKubeVirt(ctx context.Context, im *bootable.Image, kernelPath, qcow2 string, o KubeVirtExport) (*KubeVirtResult, error) {
	if err := CheckKubeVirt(im, o); err != nil {
		return nil, err
	}
	kbTag, _ := KernelBootTag(o.Transfer.Registry, o.Push)
	tmp, err := os.MkdirTemp(o.TempDir, "nos-kubevirt-")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(tmp)

	diskImg, err := ContainerDiskImage(ctx, tmp, qcow2)
	if err != nil {
		return nil, fmt.Errorf("the containerDisk image: %w", err)
	}
	initrd := filepath.Join(tmp, "initrd")
	if err := writeInitrd(ctx, initrd, im.Initrd, DiskGuestConfig(im, o.Name)); err != nil {
		return nil, err
	}
	kbImg, err := KernelBootImage(ctx, tmp, kernelPath, initrd)
	if err != nil {
		return nil, fmt.Errorf("the kernel-boot image: %w", err)
	}
	disk, err := transfer.PushImage(ctx, diskImg, o.Push, o.Transfer)
	if err != nil {
		return nil, err
	}
	kb, err := transfer.PushImage(ctx, kbImg, kbTag, o.Transfer)
	if err != nil {
		return nil, err
	}
	res := &KubeVirtResult{
		DiskImage:       disk.Ref + "@" + disk.Digest.String(),
		KernelBootImage: kb.Ref + "@" + kb.Digest.String(),
	}
	k := o.KubeVirt
	k.DiskImage, k.KernelBootImage = res.DiskImage, res.KernelBootImage
	yml, err := KubeVirtManifest(im, k)
	if err != nil {
		return nil, err
	}
	if o.Output == "" {
		if _, err := o.Stdout.Write(yml); err != nil {
			return nil, err
		}
		return res, nil
	}
	return res, replaceFile(o.Output, yml, o.Force)
}

// replaceFile writes b to dst through a temporary file beside it, renamed
// into place: dst is either untouched or complete. Without force an
// existing dst is refused.
func replaceFile(dst string, b []byte, force bool) (err error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if !force {
		// Link fails on an existing dst, where rename would replace it.
		if err := os.Link(f.Name(), dst); err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s: %w", dst, ErrExistsFile)
			}
			return fmt.Errorf("export: %w", err)
		}
		return os.Remove(f.Name())
	}
	if err := os.Rename(f.Name(), dst); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// ExportKubeVirt makes im's disk (WriteDisk, qcow2, in a temporary
// directory) and exports it with WriteKubeVirt.
func ExportKubeVirt(ctx context.Context, im *bootable.Image, kernelPath string, o KubeVirtExport) (*KubeVirtResult, error) {
	if err := CheckKubeVirt(im, o); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(o.TempDir, "nos-kubevirt-disk-")
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer os.RemoveAll(tmp)
	qcow2 := filepath.Join(tmp, "disk.qcow2")
	if err := WriteDisk(ctx, im, kernelPath, Disk{Format: "qcow2", Output: qcow2, Name: o.Name}); err != nil {
		return nil, err
	}
	return WriteKubeVirt(ctx, im, kernelPath, qcow2, o)
}
