package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Debian's OVMF (package ovmf): UEFI firmware for q35, without Secure
// Boot, as code (read-only) and a variable store (copied per boot).
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// buildCloudImages builds the example HTTP app on the cloud kernel twice:
// in an initramfs ("web") and on an erofs root disk ("treeweb").
func buildCloudImages(t *testing.T, e *nosEnv) {
	t.Helper()
	e.withCloudKernel()
	feat := strings.Join(cloudFeatures, ",")
	if r := e.nos("build", "--features", feat, "-t", "web", "--port", "8080", "./examples/httpserver"); r.code != 0 {
		t.Fatalf("nos build: %v", r)
	}
	needProgram(t, "mkfs.erofs")
	tree := webTree(t)
	if r := e.nos("build", "--features", feat, "-t", "treeweb", "--port", "8080", "--rootfs", tree, "--entrypoint", `["/bin/web"]`); r.code != 0 {
		t.Fatalf("nos build --rootfs: %v", r)
	}
}

// TestDiskExports exports the example app in every disk format, checks
// each file with qemu-img (and the GCE archive's listing), that exports
// are reproducible, and boots each format the way its platform attaches
// it, under q35 with Debian's OVMF (UEFI, no Secure Boot, TCG): raw and
// qcow2 on virtio-blk, the AWS disk on NVMe, the GCE disk on virtio-scsi,
// the VHD after converting it back with qemu-img. The app must answer
// HTTP through a user-mode port forward, with its output on the serial
// console.
func TestDiskExports(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"qemu-img", "fsck.fat"} {
		needProgram(t, p)
	}
	for _, f := range []string{ovmfCode, ovmfVars, "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("disk exports need %s: %v (apt-get install ovmf systemd-boot-efi)", f, err)
		}
	}
	buildCloudImages(t, e)
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }

	exports := []struct {
		image, format, file string
	}{
		{"web", "raw", "web.raw"},
		{"treeweb", "qcow2", "treeweb.qcow2"},
		{"web", "vmdk", "web.vmdk"},
		{"web", "vhd", "web.vhd"},
		{"treeweb", "gce", "treeweb.tar.gz"},
		{"treeweb", "aws", "treeweb-aws.raw"},
	}
	for _, x := range exports {
		r := e.nos("export", x.image, "--format", x.format, "--name", x.image+"-"+x.format, "-o", out(x.file))
		if r.code != 0 {
			t.Fatalf("nos export --format %s: %v", x.format, r)
		}
		if strings.TrimSpace(r.stdout) != out(x.file) {
			t.Errorf("export printed %q, want the file's path", r.stdout)
		}
	}

	t.Run("files", func(t *testing.T) {
		for _, f := range []string{"treeweb.qcow2", "web.vmdk"} {
			if o, err := exec.Command("qemu-img", "check", out(f)).CombinedOutput(); err != nil {
				t.Errorf("qemu-img check %s: %v\n%s", f, err, o)
			}
		}
		for f, want := range map[string]string{"web.raw": "raw", "treeweb.qcow2": "qcow2", "web.vmdk": "vmdk", "web.vhd": "vpc", "treeweb-aws.raw": "raw"} {
			info := qemuImgInfo(t, out(f), "")
			if want == "vpc" {
				// A fixed VHD has its footer only at the end, where
				// qemu-img's probe does not look: it reads as raw unless
				// told (as Azure's is, by its page blob).
				if info.Format != "raw" {
					t.Errorf("%s: qemu-img probes it as %s", f, info.Format)
				}
				info = qemuImgInfo(t, out(f), "vpc")
			}
			if info.Format != want {
				t.Errorf("%s: qemu-img says format %s, want %s", f, info.Format, want)
			}
			if info.VirtualSize%(1<<20) != 0 || info.VirtualSize < 66<<20 {
				t.Errorf("%s: virtual size %d, want whole MiB and room for the 64 MiB system partition", f, info.VirtualSize)
			}
		}
		// Azure's fixed VHD: a whole number of MiB, then the 512-byte footer.
		st, err := os.Stat(out("web.vhd"))
		if err != nil {
			t.Fatal(err)
		}
		if info := qemuImgInfo(t, out("web.vhd"), "vpc"); st.Size() != info.VirtualSize+512 {
			t.Errorf("web.vhd: %d bytes for a virtual size of %d, want the size plus a 512-byte footer", st.Size(), info.VirtualSize)
		}
		// GCE: exactly disk.raw, GNU format, a whole number of GiB.
		names, size := tarListing(t, out("treeweb.tar.gz"))
		if !slices.Equal(names, []string{"disk.raw"}) || size%(1<<30) != 0 {
			t.Errorf("GCE archive holds %q of %d bytes, want only disk.raw of whole GiB", names, size)
		}
		// Reproducible: the same image gives the same bytes, here for the
		// raw disk and for the VMDK (whose descriptor qemu-img fills with a
		// random content ID that nos replaces).
		for _, x := range []struct{ image, format, file string }{{"web", "raw", "web.raw"}, {"web", "vmdk", "web.vmdk"}, {"web", "vhd", "web.vhd"}} {
			again := out("again-" + x.file)
			if r := e.nos("export", x.image, "--format", x.format, "--name", x.image+"-"+x.format, "-o", again); r.code != 0 {
				t.Fatalf("second export: %v", r)
			}
			if fileSum(t, again) != fileSum(t, out(x.file)) {
				t.Errorf("two %s exports of one image differ", x.format)
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		r := e.nos("export", "web", "--format", "raw", "-o", out("web.raw"))
		if r.code == 0 || !strings.Contains(r.stderr, "--force") {
			t.Errorf("export over an existing file: %v", r)
		}
		if r := e.nos("export", "web", "--format", "ova", "-o", out("x.ova")); r.code == 0 || !strings.Contains(r.stderr, "unknown format") {
			t.Errorf("--format ova: %v", r)
		}
		if r := e.nos("export", "web", "--format", "raw", "-o", dir); r.code == 0 || !strings.Contains(r.stderr, "is a directory") {
			t.Errorf("-o DIR: %v", r)
		}
		// An image on a kernel without the cloud feature: refused, with the
		// build command to use, and nothing written.
		if r := e.nos("build", "--kernel", kernelPath, "-t", "plain", "./examples/httpserver"); r.code != 0 {
			t.Fatalf("nos build: %v", r)
		}
		r = e.nos("export", "plain", "--format", "qcow2", "-o", out("plain.qcow2"))
		if r.code == 0 || !strings.Contains(r.stderr, "--features blk,cloud,net") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("export of an image without the cloud kernel: %v", r)
		}
		if _, err := os.Stat(out("plain.qcow2")); err == nil {
			t.Error("a refused export left its file")
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
			t.Errorf("exports left temporary files: %q", left)
		}
	})

	// The VHD goes back to raw with qemu-img, as a check that what Azure
	// gets is the disk.
	vhdRaw := out("vhd-back.raw")
	if o, err := exec.Command("qemu-img", "convert", "-f", "vpc", "-O", "raw", out("web.vhd"), vhdRaw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert the VHD back: %v\n%s", err, o)
	}
	diskRaw := out("disk.raw")
	extractTar(t, out("treeweb.tar.gz"), "disk.raw", diskRaw)

	// The VHD boots on QEMU's plain PC: its default CPU (no RDRAND) and
	// NIC (e1000e), no RNG device: the guest must find entropy for DHCP
	// and a driver for that NIC by itself.
	boots := []struct {
		name, file, format, bus, host string
	}{
		{"raw on virtio-blk", out("web.raw"), "raw", "virtio", "web-raw"},
		{"qcow2 on virtio-blk", out("treeweb.qcow2"), "qcow2", "virtio", "treeweb-qcow2"},
		{"aws on nvme", out("treeweb-aws.raw"), "raw", "nvme", "treeweb-aws"},
		{"gce on virtio-scsi", diskRaw, "raw", "scsi", "treeweb-gce"},
		{"vhd back to raw on a plain PC", vhdRaw, "raw", "virtio-plain-pc", "web-vhd"},
	}
	t.Run("boot", func(t *testing.T) {
		for _, b := range boots {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				vm := bootUEFI(t, b.file, b.format, b.bus)
				body := waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", vm.port), 6*time.Minute)
				if !strings.Contains(body, "host: "+b.host) {
					t.Errorf("app answered %q, want host %s", body, b.host)
				}
				if c := vm.console(); !strings.Contains(c, "listening on :8080") {
					t.Errorf("the app's output is not on the serial console:\n%s", c)
				}
			})
		}
	})
}

// uefiVM is a QEMU q35 machine booted by OVMF from one disk.
type uefiVM struct {
	port        int
	consolePath string
}

func (v *uefiVM) console() string {
	b, _ := os.ReadFile(v.consolePath)
	return string(b)
}

// bootUEFI starts QEMU the way a cloud or KubeVirt attaches a disk: q35,
// OVMF, the disk on bus (virtio, nvme or scsi, never written: snapshot),
// a virtio NIC (QEMU's default NIC and CPU with "virtio-plain-pc") on
// user-mode networking (whose DHCP server gives the guest
// its address) with the app's port 8080 forwarded from loopback, the
// serial console to a file. It is killed when the test ends.
func bootUEFI(t *testing.T, disk, format, bus string, extra ...string) *uefiVM {
	t.Helper()
	dir := t.TempDir()
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	b, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, b, 0o644); err != nil {
		t.Fatal(err)
	}
	vm := &uefiVM{port: freePort(t), consolePath: filepath.Join(dir, "console.log")}
	args := []string{
		"-machine", "q35", "-accel", "tcg", "-m", "256", "-smp", "1",
		"-nodefaults", "-nographic", "-no-reboot",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-serial", "file:" + vm.consolePath,
		"-drive", "if=none,id=d0,snapshot=on,format=" + format + ",file=" + disk,
	}
	hostfwd := fmt.Sprintf("user,id=n0,hostfwd=tcp:127.0.0.1:%d-:8080", vm.port)
	if bus == "virtio-plain-pc" {
		// QEMU's default CPU and NIC model.
		args = append(args, "-nic", strings.Replace(hostfwd, ",id=n0", "", 1))
	} else {
		args = append(args, "-cpu", "max", "-netdev", hostfwd, "-device", "virtio-net-pci,netdev=n0")
	}
	switch bus {
	case "virtio", "virtio-plain-pc":
		args = append(args, "-device", "virtio-blk-pci,drive=d0")
	case "nvme":
		args = append(args, "-device", "nvme,drive=d0,serial=nos0")
	case "scsi":
		args = append(args, "-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-hd,drive=d0,bus=scsi0.0")
	default:
		t.Fatalf("bus %q", bus)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("qemu: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("console of %s:\n%s", filepath.Base(disk), vm.console())
		}
	})
	return vm
}

type imgInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

// qemuImgInfo runs qemu-img info on path, in format (or probing, "").
func qemuImgInfo(t *testing.T, path, format string) imgInfo {
	t.Helper()
	args := []string{"info", "--output=json"}
	if format != "" {
		args = append(args, "-f", format)
	}
	o, err := exec.Command("qemu-img", append(args, path)...).Output()
	if err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	var info imgInfo
	if err := json.Unmarshal(o, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// openTar opens a gzip'd tar; the file is closed when the test ends.
func openTar(t *testing.T, path string) *tar.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return tar.NewReader(zr)
}

// tarListing returns the names in a gzip'd tar, checking each header is
// in GNU format, and the size of the last.
func tarListing(t *testing.T, path string) (names []string, size int64) {
	t.Helper()
	tr := openTar(t, path)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, size
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Format != tar.FormatGNU {
			t.Errorf("%s: tar header format %v, want GNU", h.Name, h.Format)
		}
		names, size = append(names, h.Name), h.Size
	}
}

func extractTar(t *testing.T, archive, name, dst string) {
	t.Helper()
	tr := openTar(t, archive)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s has no %s: %v", archive, name, err)
		}
		if h.Name != name {
			continue
		}
		out, err := os.Create(dst)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
}
