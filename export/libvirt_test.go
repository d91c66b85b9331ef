package export

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"libvirt.org/go/libvirtxml"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/store"
	"github.com/nosproject/nos/vmm"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testImage is an image on the distribution kernel (modules listed), in
// the initramfs or, with rootFS, on an erofs root disk.
func testImage(rootFS bool) *bootable.Image {
	im := &bootable.Image{
		Ref: store.Image{Name: "web", Tag: "latest", Manifest: ocispec.Descriptor{Digest: "sha256:0c2f5fb17766058a2568953dff2c6767bd776457b5c887c4ce754168c9fba29f"}},
		Config: image.Config{
			Entrypoint: []string{"/app/web"}, Args: []string{"--port", "8080"}, Env: []string{"PATH=/usr/bin:/bin"},
			MemoryMiB: 256, CPUs: 2, KernelCmdline: "console=ttyS0 quiet panic=-1",
			Kernel:  image.KernelInfo{Version: "6.1.0-57-cloud-amd64"},
			Modules: []string{"virtio_mmio", "virtio_console", "virtio_net", "virtio_rng", "virtio_pci", "button", "evdev"},
			InitAPI: image.InitAPI,
		},
		KernelBlob: "/store/blobs/kernel",
		Initrd:     "/store/blobs/initrd",
	}
	if rootFS {
		im.Config.RootFS = "erofs"
		im.RootDisk = "/store/blobs/root"
	}
	return im
}

func TestDomainGolden(t *testing.T) {
	fwds := []vmm.Forward{
		{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8080, GuestPort: 8080},
		{Proto: "udp", HostPort: 5353, GuestPort: 53},
	}
	for _, tc := range []struct {
		name string
		im   *bootable.Image
		l    Libvirt
	}{
		{"initramfs-tcg", testImage(false), Libvirt{Name: "web", Accel: vmm.AccelTCG}},
		{"initramfs-kvm", testImage(false), Libvirt{Name: "web", Accel: vmm.AccelKVM}},
		{"rootdisk-tcg", testImage(true), Libvirt{Name: "nginx", Accel: vmm.AccelTCG}},
		{"forwards-tcg", testImage(false), Libvirt{Name: "web", Accel: vmm.AccelTCG, Forwards: fwds}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.l.Dir = "/srv/nos/" + tc.l.Name
			d, err := Domain(tc.im, tc.l)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".xml")
			if *update {
				if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got+"\n"); diff != "" {
				t.Errorf("domain XML differs from %s (-want +got; go test -update rewrites it):\n%s", golden, diff)
			}
			// It reads back into libvirt's types as it was written.
			var back libvirtxml.Domain
			if err := back.Unmarshal(string(want)); err != nil {
				t.Fatalf("decoding %s: %v", golden, err)
			}
			again, err := back.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), again+"\n"); diff != "" {
				t.Errorf("round trip through libvirtxml (-golden +decoded and encoded again):\n%s", diff)
			}
		})
	}
}

func TestDomainBadInput(t *testing.T) {
	if _, err := Domain(testImage(false), Libvirt{Name: "web", Accel: "hvf", Dir: "/srv"}); !errors.Is(err, ErrBadOption) {
		t.Errorf("accel hvf: err = %v, want ErrBadOption", err)
	}
	if _, err := Domain(testImage(false), Libvirt{Name: "web", Accel: vmm.AccelTCG, Dir: "out"}); !errors.Is(err, ErrBadOption) {
		t.Errorf("relative dir: err = %v, want ErrBadOption", err)
	}
	old := testImage(false)
	old.Config.InitAPI = image.InitAPINetworks
	if err := CheckBootable(old); !errors.Is(err, ErrCannotBoot) {
		t.Errorf("an older init: err = %v, want ErrCannotBoot", err)
	}
	noPCI := testImage(false)
	noPCI.Config.Modules = noPCI.Config.Modules[:4]
	if err := CheckBootable(noPCI); !errors.Is(err, ErrCannotBoot) {
		t.Errorf("no virtio_pci: err = %v, want ErrCannotBoot", err)
	}
}

func TestPowerButton(t *testing.T) {
	if !PowerButton(testImage(false)) {
		t.Error("the distribution kernel with button and evdev: no power button")
	}
	own := testImage(false)
	own.Config.Modules = nil
	own.Config.Kernel.Features = []string{"net"}
	if PowerButton(own) {
		t.Error("nos's own kernel (no CONFIG_INPUT): a power button")
	}
}

func TestGuestConfig(t *testing.T) {
	g := GuestConfig(testImage(true), Libvirt{Name: "nginx"})
	want := &guestapi.Config{
		Argv: []string{"/app/web", "--port", "8080"}, Env: []string{"PATH=/usr/bin:/bin"}, Hostname: "nginx",
		Network: &guestapi.Network{Interface: "eth0", MAC: MAC("nginx"), Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
		Root:    &guestapi.Root{Device: "/dev/vda", FSType: "erofs", Serial: rootSerial, Writable: true},
	}
	if d := cmp.Diff(want, g); d != "" {
		t.Errorf("guest config (-want +got):\n%s", d)
	}
}

// fakeFiles makes an image whose kernel, initramfs and root disk are small
// files, the initramfs a real gzip'd cpio (as nos wrote them before
// 2026-12).
func fakeFiles(t *testing.T, rootFS bool) (*bootable.Image, string) {
	dir := t.TempDir()
	im := testImage(rootFS)
	im.Initrd = filepath.Join(dir, "initrd")
	im.RootDisk = ""
	if rootFS {
		im.RootDisk = filepath.Join(dir, "root")
		os.WriteFile(im.RootDisk, []byte("erofs"), 0o644)
	}
	base, err := exec.Command("sh", "-c", "cd "+dir+" && mkdir -p in/app && echo hi > in/app/web && cd in && find . | cpio -o -H newc --quiet | gzip").Output()
	if err != nil {
		t.Fatalf("making a test initramfs with cpio and gzip (apt-get install cpio): %v", err)
	}
	os.WriteFile(im.Initrd, base, 0o644)
	kernel := filepath.Join(dir, "vmlinuz")
	os.WriteFile(kernel, []byte("kernel"), 0o644)
	return im, kernel
}

func TestWriteLibvirt(t *testing.T) {
	im, kernel := fakeFiles(t, true)
	out := filepath.Join(t.TempDir(), "web")
	l := Libvirt{Name: "web", Accel: vmm.AccelTCG, Dir: out}
	if err := WriteLibvirt(context.Background(), im, kernel, l, false); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{DomainFile, KernelFile, InitrdFile, RootDiskFile} {
		fi, err := os.Stat(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644 (QEMU runs as libvirt's user)", f, fi.Mode())
		}
	}
	// The initrd is the image's initramfs, byte for byte, then a second
	// archive (the kernel unpacks both, in order) holding the config.
	base, _ := os.ReadFile(im.Initrd)
	initrd, _ := os.ReadFile(filepath.Join(out, InitrdFile))
	if !bytes.HasPrefix(initrd, base) || len(initrd) == len(base) {
		t.Fatalf("initrd (%d bytes) does not start with the image's initramfs (%d bytes) followed by more", len(initrd), len(base))
	}
	// The config's archive is compressed as the image's is: gzip here.
	tail := filepath.Join(t.TempDir(), "tail.gz")
	os.WriteFile(tail, initrd[len(base):], 0o644)
	list, err := exec.Command("sh", "-c", "cd "+t.TempDir()+" && zcat "+tail+" | cpio -i -d --quiet && find . -type f && cat ."+guestapi.StandaloneConfig).CombinedOutput()
	if err != nil {
		t.Fatalf("unpacking the appended archive: %v\n%s", err, list)
	}
	if !strings.HasPrefix(string(list), "."+guestapi.StandaloneConfig+"\n") || !strings.Contains(string(list), `"argv":["/app/web","--port","8080"]`) {
		t.Errorf("appended archive holds:\n%s\nwant only the standalone config", list)
	}

	// An existing directory is refused, and left as it was.
	if err := WriteLibvirt(context.Background(), im, kernel, l, false); !errors.Is(err, ErrExists) {
		t.Errorf("second export: err = %v, want ErrExists", err)
	}
	// --force replaces it.
	if err := WriteLibvirt(context.Background(), im, kernel, l, true); err != nil {
		t.Errorf("export --force: %v", err)
	}
	// A failed export leaves nothing, neither under its name nor beside it.
	bad := Libvirt{Name: "web", Accel: vmm.AccelTCG, Dir: filepath.Join(filepath.Dir(out), "broken")}
	if err := WriteLibvirt(context.Background(), im, filepath.Join(t.TempDir(), "missing"), bad, false); err == nil {
		t.Fatal("export with a missing kernel succeeded")
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 || ents[0].Name() != "web" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("after a failed export the parent holds %v, want only web", names)
	}
}
