package e2e

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/nosproject/nos/guestapi"
)

// TestKubeVirt exports the example HTTP app for KubeVirt to a loopback
// registry (Debian's docker-registry), pulls the containerDisk and the
// kernel-boot image back as a node would, and boots each the way
// KubeVirt's virt-launcher does, under TCG: q35; the disk through OVMF
// (UEFI, no Secure Boot) on virtio-blk, or the kernel and initrd by
// QEMU's direct kernel boot; the manifest's user-data (edited, as a user
// would) on a NoCloud ISO made with genisoimage -volid cidata -joliet
// -rock, as virt-launcher makes it; a virtio NIC on user-mode networking,
// whose DHCP server stands in for the masquerade network's, with the app's
// port forwarded from loopback. The app must answer HTTP with the
// user-data's greeting and the meta-data's hostname.
func TestKubeVirt(t *testing.T) {
	e := registryEnv(t)
	for _, p := range []string{"qemu-system-x86_64", "genisoimage"} {
		needProgram(t, p)
	}
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the KubeVirt test boots under OVMF: %v (apt-get install ovmf)", err)
		}
	}
	reg := startRegistryWith(t, "")
	e.withCloudKernel()
	if r := e.nos("build", "--features", strings.Join(cloudFeatures, ","), "-t", "web", "--port", "8080", "./examples/httpserver"); r.code != 0 {
		t.Fatalf("nos build: %v", r)
	}
	dir := t.TempDir()
	manifest := filepath.Join(dir, "vm.yaml")
	push := reg.addr + "/team/web:1.0"

	t.Run("bad input", func(t *testing.T) {
		r := e.nos("export", "web", "--format", "kubevirt", "-o", manifest)
		oneLineError(t, "no --push", r, "needs a registry reference")
		// An image on a kernel without the cloud feature.
		if r := e.nos("build", "--kernel", kernelPath, "-t", "plain", "./examples/httpserver"); r.code != 0 {
			t.Fatalf("nos build: %v", r)
		}
		r = e.nos("export", "plain", "--format", "kubevirt", "--push", reg.addr+"/plain:1", "-o", manifest)
		oneLineError(t, "an image without the cloud kernel", r, "--features blk,cloud,net")
		if _, err := os.Stat(manifest); err == nil {
			t.Error("a refused export wrote its manifest")
		}
		if repos := catalog(t, reg.addr); len(repos) != 0 {
			t.Errorf("refused exports pushed %v", repos)
		}
	})

	r := e.nosWithin(10*time.Minute, "export", "web", "--format", "kubevirt", "--push", push, "--health-http", "/healthz", "-o", manifest)
	if r.code != 0 {
		t.Fatalf("nos export --format kubevirt: %v", r)
	}
	if strings.TrimSpace(r.stdout) != manifest {
		t.Errorf("export printed %q, want the manifest's path", r.stdout)
	}
	if r := e.nos("export", "web", "--format", "kubevirt", "--push", push, "-o", manifest); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("export over an existing manifest: %v", r)
	}
	vm, svc := readKubeVirtManifest(t, manifest)
	spec := vm.Spec.Template.Spec
	if svc == nil || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 {
		t.Errorf("service %+v: want port 8080", svc)
	}
	if p := spec.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.IntValue() != 8080 {
		t.Errorf("readiness probe %+v: want GET /healthz on 8080", p)
	}
	var diskRef, userData string
	for _, v := range spec.Volumes {
		switch {
		case v.ContainerDisk != nil:
			diskRef = v.ContainerDisk.Image
		case v.CloudInitNoCloud != nil:
			userData = v.CloudInitNoCloud.UserData
		}
	}
	if !strings.HasPrefix(diskRef, reg.addr+"/team/web@sha256:") {
		t.Fatalf("the containerDisk is %q, want the pushed image by digest", diskRef)
	}

	// The user edits the user-data in the manifest: a greeting, and the
	// arguments spelt out.
	u, err := guestapi.ParseUserData([]byte(userData))
	if err != nil {
		t.Fatalf("the manifest's user-data %q: %v", userData, err)
	}
	u.Env = append(u.Env, "GREETING=hello from kubevirt")
	args := []string{"-addr", ":8080"}
	u.Args = &args
	b, _ := json.Marshal(u)
	cidata := noCloudISO(t, guestapi.UserDataHeader+"\n"+string(b)+"\n", "kv-web")

	// What a node pulls: the tag and the digest are one image.
	disk := filepath.Join(dir, "disk.qcow2")
	pullFile(t, diskRef, "disk/disk.qcow2", disk)
	tagged, err := remote.Head(mustParse(t, push))
	if err != nil || !strings.HasSuffix(diskRef, "@"+tagged.Digest.String()) {
		t.Errorf("%s is %v (%v), the manifest names %s", push, tagged, err, diskRef)
	}
	if info := qemuImgInfo(t, disk, ""); info.Format != "qcow2" {
		t.Errorf("the containerDisk's file is %s, want qcow2", info.Format)
	}

	t.Run("uefi disk", func(t *testing.T) {
		t.Parallel()
		vm := bootUEFI(t, disk, "qcow2", "virtio",
			"-drive", "if=none,id=ci,readonly=on,format=raw,file="+cidata, "-device", "virtio-blk-pci,drive=ci")
		checkKubeVirtApp(t, vm)
	})

	t.Run("kernel boot", func(t *testing.T) {
		t.Parallel()
		kb := reg.addr + "/team/web:1.0-kernelboot"
		kernel, initrd := filepath.Join(t.TempDir(), "vmlinuz"), filepath.Join(t.TempDir(), "initrd")
		pullFile(t, kb, "boot/vmlinuz", kernel)
		pullFile(t, kb, "boot/initrd", initrd)
		// The manifest the --kernel-boot export writes names that image.
		kbManifest := filepath.Join(t.TempDir(), "vm.yaml")
		if r := e.nosWithin(10*time.Minute, "export", "web", "--format", "kubevirt", "--push", push, "--kernel-boot", "-o", kbManifest); r.code != 0 {
			t.Fatalf("nos export --kernel-boot: %v", r)
		}
		kvm, _ := readKubeVirtManifest(t, kbManifest)
		fw := kvm.Spec.Template.Spec.Domain.Firmware
		if fw == nil || fw.KernelBoot == nil || fw.KernelBoot.Container == nil || !strings.HasPrefix(fw.KernelBoot.Container.Image, reg.addr+"/team/web@sha256:") {
			t.Fatalf("--kernel-boot manifest's firmware: %+v", fw)
		}
		vm := bootKernel(t, kernel, initrd, fw.KernelBoot.KernelArgs, "-drive", "if=none,id=ci,readonly=on,format=raw,file="+cidata, "-device", "virtio-blk-pci,drive=ci")
		checkKubeVirtApp(t, vm)
	})
}

func checkKubeVirtApp(t *testing.T, vm *uefiVM) {
	t.Helper()
	body := waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", vm.port), 6*time.Minute)
	if !strings.HasPrefix(body, "hello from kubevirt\n") {
		t.Errorf("app answered %q, want the user-data's greeting", body)
	}
	if !strings.Contains(body, "host: kv-web") {
		t.Errorf("app answered %q, want the NoCloud meta-data's hostname kv-web", body)
	}
}

// bootKernel starts QEMU as KubeVirt does for firmware.kernelBoot: q35,
// its default BIOS, the kernel and initrd given to QEMU, a virtio NIC on
// user-mode networking with port 8080 forwarded from loopback.
func bootKernel(t *testing.T, kernel, initrd, cmdline string, extra ...string) *uefiVM {
	t.Helper()
	dir := t.TempDir()
	vm := &uefiVM{port: freePort(t), consolePath: filepath.Join(dir, "console.log")}
	args := []string{
		"-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "256", "-smp", "1",
		"-nodefaults", "-nographic", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd, "-append", cmdline,
		"-serial", "file:" + vm.consolePath,
		"-netdev", fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:8080", vm.port),
		"-device", "virtio-net-pci,netdev=n0",
	}
	cmd := exec.Command("qemu-system-x86_64", append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("console:\n%s", vm.console())
		}
	})
	return vm
}

// noCloudISO makes the NoCloud disk virt-launcher attaches for a
// cloudInitNoCloud volume: an ISO 9660 volume labelled cidata (Joliet and
// Rock Ridge) holding user-data and meta-data (instance-id and
// local-hostname, as KubeVirt writes them).
func noCloudISO(t *testing.T, userData, hostname string) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "user-data"), userData, 0o644)
	writeFile(t, filepath.Join(dir, "meta-data"), fmt.Sprintf("instance-id: %s.default\nlocal-hostname: %s\n", hostname, hostname), 0o644)
	iso := filepath.Join(t.TempDir(), "cidata.iso")
	cmd := exec.Command("genisoimage", "-output", iso, "-volid", "cidata", "-joliet", "-rock", "-quiet", "user-data", "meta-data")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

// readKubeVirtManifest decodes an export's manifest strictly into
// KubeVirt's and Kubernetes's types.
func readKubeVirtManifest(t *testing.T, path string) (*kubevirtv1.VirtualMachine, *corev1.Service) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(b), "\n---\n")
	var vm kubevirtv1.VirtualMachine
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &vm); err != nil {
		t.Fatalf("%s: the VirtualMachine: %v", path, err)
	}
	if len(docs) < 2 {
		return &vm, nil
	}
	var svc corev1.Service
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &svc); err != nil {
		t.Fatalf("%s: the Service: %v", path, err)
	}
	return &vm, &svc
}

func mustParse(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pullFile pulls ref, checks that it is a one-layer image with no base
// whose every entry is owned by 107:107 (KubeVirt's qemu user), and
// copies the file at member out of it to dst.
func pullFile(t *testing.T, ref, member, dst string) {
	t.Helper()
	img, err := remote.Image(mustParse(t, ref))
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%s has %d layers, want one and no base", ref, len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if h.Uid != 107 || h.Gid != 107 {
			t.Errorf("%s: %s is owned by %d:%d, want 107:107", ref, h.Name, h.Uid, h.Gid)
		}
		if h.Name != member {
			continue
		}
		found = true
		f, err := os.Create(dst)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("%s has no %s", ref, member)
	}
}

// catalog lists the registry's repositories.
func catalog(t *testing.T, addr string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v2/_catalog")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct{ Repositories []string }
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c.Repositories
}
