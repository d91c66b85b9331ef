package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/internal/registry"
	"github.com/nosproject/nos/transfer"
)

const (
	testDisk       = "registry.example/team/web@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	testKernelBoot = "registry.example/team/web@sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func kubevirtImage(rootFS bool) *bootable.Image {
	im := testImage(rootFS)
	cloudImage(im)
	im.Config.ExposedPorts = []string{"8080/tcp", "53/udp"}
	im.Config.Env = append(im.Config.Env, "GREETING=hello world")
	return im
}

// cloudImage makes im one on nos's cloud kernel, with an init that boots
// from an exported disk.
func cloudImage(im *bootable.Image) {
	im.Config.Kernel = image.KernelInfo{Version: "6.1.192-nos", Origin: "built", Features: []string{"blk", "cloud", "net"}}
	im.Config.Modules = nil
	im.Config.KernelCmdline = "console=ttyS0 panic=-1"
	im.Config.InitAPI = image.InitAPIDisk
}

func cloudFiles(t *testing.T, rootFS bool) (*bootable.Image, string) {
	im, kernel := fakeFiles(t, rootFS)
	cloudImage(im)
	return im, kernel
}

func TestKubeVirtGolden(t *testing.T) {
	noNet := testImage(false)
	cloudImage(noNet)
	noNet.Config.Kernel.NoNetwork = true
	noNet.Config.Args = nil
	for _, tc := range []struct {
		name string
		im   *bootable.Image
		k    KubeVirt
	}{
		{"kubevirt-uefi", kubevirtImage(false), KubeVirt{Name: "web", Health: &Health{Port: 8080, HTTPPath: "/healthz", Interval: 10 * time.Second, Timeout: 1500 * time.Millisecond, Retries: 3}}},
		{"kubevirt-kernelboot-rootdisk", kubevirtImage(true), KubeVirt{Name: "nginx", KernelBoot: true, Health: &Health{Port: 8080, StartPeriod: 5 * time.Second}}},
		{"kubevirt-kernelboot-nonet", noNet, KubeVirt{Name: "batch", KernelBoot: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.k.DiskImage, tc.k.KernelBootImage = testDisk, testKernelBoot
			got, err := KubeVirtManifest(tc.im, tc.k)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("manifest differs from %s (-want +got; go test -update rewrites it):\n%s", golden, diff)
			}
			if strings.Contains(string(want), "/store/") || strings.Contains(string(want), "creationTimestamp: \"2") {
				t.Errorf("%s names a host path or a time", golden)
			}
			vm, svc := decodeManifest(t, want)
			// Its user-data is nos's, and changes nothing by itself.
			vols := vm.Spec.Template.Spec.Volumes
			ud := vols[len(vols)-1].CloudInitNoCloud
			if ud == nil {
				t.Fatalf("the last volume is not the NoCloud one: %+v", vols)
			}
			u, err := guestapi.ParseUserData([]byte(ud.UserData))
			if err != nil {
				t.Fatalf("user-data %q: %v", ud.UserData, err)
			}
			cfg := DiskGuestConfig(tc.im, tc.k.Name)
			before := *cfg
			before.Argv = slices.Clone(cfg.Argv)
			u.Apply(cfg)
			if d := cmp.Diff(&before, cfg); d != "" {
				t.Errorf("the image's own user-data changed its config (-before +after):\n%s", d)
			}
			if (svc == nil) != (tc.im.Config.Kernel.NoNetwork) {
				t.Errorf("service %v for an image with network %v", svc, !tc.im.Config.Kernel.NoNetwork)
			}
		})
	}
}

// decodeManifest decodes a KubeVirt export's documents strictly (an
// unknown or misspelt field is an error) into KubeVirt's and
// Kubernetes's types, and checks that they encode back to the same YAML.
func decodeManifest(t *testing.T, b []byte) (*kubevirtv1.VirtualMachine, *corev1.Service) {
	t.Helper()
	docs := strings.Split(string(b), "\n---\n")
	if len(docs) > 2 {
		t.Fatalf("%d documents, want a VirtualMachine and at most a Service", len(docs))
	}
	var vm kubevirtv1.VirtualMachine
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &vm); err != nil {
		t.Fatalf("decoding the VirtualMachine strictly: %v", err)
	}
	if vm.Kind != "VirtualMachine" || vm.APIVersion != "kubevirt.io/v1" {
		t.Errorf("first document is %s %s", vm.APIVersion, vm.Kind)
	}
	again, err := yaml.Marshal(&vm)
	if err != nil {
		t.Fatal(err)
	}
	first := docs[0]
	if i := strings.Index(first, "\n"); strings.HasPrefix(first, "#") {
		first = first[i+1:]
	}
	if d := cmp.Diff(strings.TrimSuffix(first, "\n"), strings.TrimSuffix(string(again), "\n")); d != "" {
		t.Errorf("VirtualMachine round trip (-written +decoded and encoded again):\n%s", d)
	}
	if len(docs) == 1 {
		return &vm, nil
	}
	var svc corev1.Service
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &svc); err != nil {
		t.Fatalf("decoding the Service strictly: %v", err)
	}
	if svc.Kind != "Service" || svc.Spec.Selector[kvNameLabel] != vm.Spec.Template.ObjectMeta.Labels[kvNameLabel] {
		t.Errorf("the Service %+v does not select the VM's pods (labels %v)", svc, vm.Spec.Template.ObjectMeta.Labels)
	}
	return &vm, &svc
}

func TestKubeVirtBadInput(t *testing.T) {
	im := kubevirtImage(false)
	for _, tc := range []struct {
		what string
		k    KubeVirt
	}{
		{"upper-case name", KubeVirt{Name: "Web", DiskImage: testDisk}},
		{"name starting with a digit", KubeVirt{Name: "1web", DiskImage: testDisk}},
		{"no disk image", KubeVirt{Name: "web"}},
		{"kernel boot without its image", KubeVirt{Name: "web", DiskImage: testDisk, KernelBoot: true}},
		{"probe port 0", KubeVirt{Name: "web", DiskImage: testDisk, Health: &Health{}}},
		{"relative probe path", KubeVirt{Name: "web", DiskImage: testDisk, Health: &Health{Port: 80, HTTPPath: "healthz"}}},
	} {
		if _, err := VirtualMachine(im, tc.k); !errors.Is(err, ErrBadOption) {
			t.Errorf("%s: err = %v, want ErrBadOption", tc.what, err)
		}
	}
	o := KubeVirtExport{KubeVirt: KubeVirt{Name: "web"}}
	if err := CheckKubeVirt(im, o); !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), "registry reference") {
		t.Errorf("no --push: err = %v", err)
	}
	o.Push = "127.0.0.1:5000/web@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	if err := CheckKubeVirt(im, o); !errors.Is(err, ErrBadOption) {
		t.Errorf("--push by digest: err = %v, want ErrBadOption", err)
	}
	old := kubevirtImage(false)
	old.Config.InitAPI = image.InitAPIStandalone
	ok := KubeVirtExport{KubeVirt: KubeVirt{Name: "web"}, Push: "127.0.0.1:5000/web"}
	if err := CheckKubeVirt(old, ok); !errors.Is(err, ErrCannotBoot) {
		t.Errorf("an init that cannot boot from a disk: err = %v, want ErrCannotBoot", err)
	}
	if err := CheckKubeVirt(testImage(false), ok); !errors.Is(err, ErrNoCloudKernel) {
		t.Errorf("the distribution kernel: err = %v, want ErrNoCloudKernel", err)
	}
	if err := CheckKubeVirt(im, ok); err != nil {
		t.Errorf("a good export refused: %v", err)
	}
}

func TestKernelBootTag(t *testing.T) {
	for ref, want := range map[string]string{
		"127.0.0.1:5000/web":          "127.0.0.1:5000/web:latest-kernelboot",
		"127.0.0.1:5000/team/web:1.0": "127.0.0.1:5000/team/web:1.0-kernelboot",
		"localhost/web:v2":            "localhost/web:v2-kernelboot",
	} {
		got, err := KernelBootTag(registry.Config{}, ref)
		if err != nil || got != want {
			t.Errorf("KernelBootTag(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
}

// testRegistry is go-containerregistry's in-process registry on a
// loopback port.
func testRegistry(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func TestWriteKubeVirtPushes(t *testing.T) {
	im, kernel := cloudFiles(t, false)
	im.Config.ExposedPorts = []string{"8080/tcp"}
	qcow2 := filepath.Join(t.TempDir(), "disk.qcow2")
	os.WriteFile(qcow2, []byte("QFI\xfb a small stand-in for a disk"), 0o600)
	reg := testRegistry(t)
	out := filepath.Join(t.TempDir(), "vm.yaml")
	o := KubeVirtExport{
		KubeVirt: KubeVirt{Name: "web"},
		Push:     reg + "/team/web:1.0",
		Output:   out,
		TempDir:  t.TempDir(),
	}
	res, err := WriteKubeVirt(context.Background(), im, kernel, qcow2, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := reg + "/team/web@sha256:"; !strings.HasPrefix(res.DiskImage, want) || !strings.HasPrefix(res.KernelBootImage, want) {
		t.Errorf("pushed %s and %s, want both by digest in %s", res.DiskImage, res.KernelBootImage, want)
	}
	if ents, _ := os.ReadDir(o.TempDir); len(ents) != 0 {
		t.Errorf("the export left %d entries in its temporary directory", len(ents))
	}

	// The tag and the manifest's reference are the same image.
	byTag := pull(t, o.Push)
	byDigest := pull(t, res.DiskImage)
	if d1, d2 := digestOf(t, byTag), digestOf(t, byDigest); d1 != d2 {
		t.Errorf("%s is %s, the manifest names %s", o.Push, d1, d2)
	}
	diskBytes, _ := os.ReadFile(qcow2)
	checkScratchImage(t, byTag, map[string]fileWant{
		"disk/":           {typ: tar.TypeDir, mode: 0o555},
		"disk/disk.qcow2": {typ: tar.TypeReg, mode: 0o440, content: diskBytes},
	})
	kb := pull(t, reg+"/team/web:1.0-kernelboot")
	if d := digestOf(t, kb); res.KernelBootImage != reg+"/team/web@"+d {
		t.Errorf("the kernel-boot tag is %s, the result says %s", d, res.KernelBootImage)
	}
	kernelBytes, _ := os.ReadFile(kernel)
	base, _ := os.ReadFile(im.Initrd)
	files := checkScratchImage(t, kb, map[string]fileWant{
		"boot/":        {typ: tar.TypeDir, mode: 0o555},
		"boot/vmlinuz": {typ: tar.TypeReg, mode: 0o444, content: kernelBytes},
		"boot/initrd":  {typ: tar.TypeReg, mode: 0o444},
	})
	if initrd := files["boot/initrd"]; !bytes.HasPrefix(initrd, base) || len(initrd) == len(base) {
		t.Errorf("the kernel-boot initrd (%d bytes) is not the image's initramfs (%d bytes) followed by the config", len(initrd), len(base))
	}

	// The manifest names both by digest, and decodes.
	yml, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	vm, _ := decodeManifest(t, yml)
	if img := vm.Spec.Template.Spec.Volumes[0].ContainerDisk; img == nil || img.Image != res.DiskImage {
		t.Errorf("the manifest's containerDisk is %+v, want %s", img, res.DiskImage)
	}

	// The same input makes the same images.
	o.Force = true
	again, err := WriteKubeVirt(context.Background(), im, kernel, qcow2, o)
	if err != nil {
		t.Fatal(err)
	}
	if *again != *res {
		t.Errorf("a second export pushed %+v, the first %+v: not reproducible", again, res)
	}

	// An existing manifest is refused without --force, before anything
	// is pushed.
	o.Force = false
	o.Push = reg + "/other:1"
	if _, err := WriteKubeVirt(context.Background(), im, kernel, qcow2, o); !errors.Is(err, ErrExistsFile) {
		t.Errorf("export over an existing manifest: err = %v, want ErrExistsFile", err)
	}
	if _, err := remote.Head(mustRef(t, o.Push)); err == nil {
		t.Errorf("a refused export pushed %s", o.Push)
	}
}

func TestWriteKubeVirtFailedPush(t *testing.T) {
	im, kernel := cloudFiles(t, false)
	qcow2 := filepath.Join(t.TempDir(), "disk.qcow2")
	os.WriteFile(qcow2, []byte("disk"), 0o600)
	s := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	addr := strings.TrimPrefix(s.URL, "http://")
	s.Close() // nothing answers there now
	dir := t.TempDir()
	o := KubeVirtExport{
		KubeVirt: KubeVirt{Name: "web"},
		Push:     addr + "/web:1",
		Output:   filepath.Join(dir, "vm.yaml"),
		Transfer: transfer.Options{Registry: registry.Config{DialTimeout: time.Second}},
	}
	if _, err := WriteKubeVirt(context.Background(), im, kernel, qcow2, o); err == nil {
		t.Fatal("an export to a registry that is gone succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a failed export left %v in the output's directory", ents)
	}
	// A missing disk fails before anything is pushed.
	reg := testRegistry(t)
	o.Push = reg + "/web:1"
	if _, err := WriteKubeVirt(context.Background(), im, kernel, filepath.Join(dir, "missing.qcow2"), o); err == nil {
		t.Fatal("an export of a missing disk succeeded")
	}
	if _, err := remote.Head(mustRef(t, o.Push)); err == nil {
		t.Error("a failed export pushed its containerDisk")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a failed export left %v in the output's directory", ents)
	}
}

func TestWriteKubeVirtStdout(t *testing.T) {
	im, kernel := cloudFiles(t, true)
	qcow2 := filepath.Join(t.TempDir(), "disk.qcow2")
	os.WriteFile(qcow2, []byte("disk"), 0o600)
	var out bytes.Buffer
	o := KubeVirtExport{KubeVirt: KubeVirt{Name: "nginx", KernelBoot: true}, Push: testRegistry(t) + "/nginx", Stdout: &out}
	res, err := WriteKubeVirt(context.Background(), im, kernel, qcow2, o)
	if err != nil {
		t.Fatal(err)
	}
	vm, _ := decodeManifest(t, out.Bytes())
	fw := vm.Spec.Template.Spec.Domain.Firmware
	if fw == nil || fw.KernelBoot == nil || fw.KernelBoot.Container.Image != res.KernelBootImage {
		t.Errorf("--kernel-boot manifest's firmware %+v, want the kernel-boot image %s", fw, res.KernelBootImage)
	}
	// The root disk's image is attached: its partition holds the root.
	if v := vm.Spec.Template.Spec.Volumes; v[0].ContainerDisk == nil || v[0].ContainerDisk.Image != res.DiskImage {
		t.Errorf("volumes %+v: want the containerDisk %s first", v, res.DiskImage)
	}
}

type fileWant struct {
	typ     byte
	mode    int64
	content []byte // nil: not compared
}

// checkScratchImage checks that img has no base (one layer, nothing else),
// is for linux/amd64, and that its layer holds exactly want, every entry
// owned by 107:107 and dated the epoch. It returns the files' contents.
func checkScratchImage(t *testing.T, img v1.Image, want map[string]fileWant) map[string][]byte {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("manifest %+v: want an OCI image with exactly one gzip'd layer", m)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || len(cf.RootFS.DiffIDs) != 1 || len(cf.History) != 1 || !cf.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("config %+v: want linux/amd64, one layer and no base, created at the epoch", cf)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	r, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	got := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name] = b
		w, ok := want[h.Name]
		switch {
		case !ok:
			t.Errorf("layer holds %s, not wanted", h.Name)
		case h.Typeflag != w.typ || h.Mode != w.mode:
			t.Errorf("%s: type %c mode %o, want %c %o", h.Name, h.Typeflag, h.Mode, w.typ, w.mode)
		case w.content != nil && !bytes.Equal(b, w.content):
			t.Errorf("%s: %d bytes differ from the file's %d", h.Name, len(b), len(w.content))
		}
		if h.Uid != 107 || h.Gid != 107 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: owner %d:%d, time %v; want 107:107 at the epoch", h.Name, h.Uid, h.Gid, h.ModTime)
		}
	}
	for n := range want {
		if _, ok := got[n]; !ok {
			t.Errorf("layer lacks %s", n)
		}
	}
	return got
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func pull(t *testing.T, ref string) v1.Image {
	t.Helper()
	img, err := remote.Image(mustRef(t, ref))
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
