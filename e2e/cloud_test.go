package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/export"
	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/kernel/kbuild"
	"github.com/nosproject/nos/store"
)

// cloudFeatures are the kernel features an exported cloud disk's image
// is built with.
var cloudFeatures = []string{"blk", "cloud", "net"}

// withCloudKernel copies the built kernel with the cloud feature into e's
// nos home, so that nos build --features blk,cloud,net finds it.
func (e *nosEnv) withCloudKernel() {
	e.t.Helper()
	l, err := home.Default()
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := kbuild.Cache{Dir: l.BuiltKernels()}.Match(cloudFeatures)
	if err != nil {
		e.t.Fatalf("the cloud tests boot a kernel built with `nos kernel build --features blk,cloud,net`: %v", err)
	}
	if err := copyDir(k.Dir(), filepath.Join(home.Layout{Root: e.home}.BuiltKernels(), k.ID)); err != nil {
		e.t.Fatalf("copying the cloud kernel: %v", err)
	}
}

// cloudImage is an image booted by hand, as an exported disk's firmware
// would: its kernel and initramfs, and the standalone config a cloud
// export writes.
type cloudImage struct {
	kernel, initrd string
	rootDisk       string // the erofs root, "" when the app is in the initramfs
	cmdline        string
	cfg            guestapi.Config
}

// buildCloudImage builds an image with the cloud kernel (nos build
// args…, then -t name) and loads it.
func buildCloudImage(t *testing.T, e *nosEnv, name string, args ...string) *cloudImage {
	t.Helper()
	args = append([]string{"build", "--features", strings.Join(cloudFeatures, ","), "-t", name}, args...)
	if r := e.nos(args...); r.code != 0 {
		t.Fatalf("nos build: %v", r)
	}
	l := home.Layout{Root: e.home}
	st, err := store.Open(l.Images())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	im, err := bootable.Load(ctx, st, name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(im.Config.Kernel.Features, "cloud") {
		t.Fatalf("the image's kernel has the features %v, not cloud", im.Config.Kernel.Features)
	}
	k, err := im.Kernel(ctx, l.UnpackedKernels())
	if err != nil {
		t.Fatal(err)
	}
	c := im.Config
	return &cloudImage{kernel: k, initrd: im.Initrd, rootDisk: im.RootDisk, cmdline: c.KernelCmdline, cfg: guestapi.Config{
		Argv:          append(slices.Clone(c.Entrypoint), c.Args...),
		EntrypointLen: len(c.Entrypoint),
		Env:           c.Env,
		WorkingDir:    c.WorkingDir,
		Hostname:      "cloudweb",
		User:          c.User,
		Caps:          c.Caps,
		Network:       &guestapi.Network{DHCP: true},
	}}
}

// fakeCloud plays a platform's metadata service and Azure's wire server
// on loopback; QEMU's guestfwd connects the guest's link-local addresses
// to them.
type fakeCloud struct {
	metadata, wire *http.Server
	mdPort, wPort  int
	mu             sync.Mutex
	requests       []string // "METHOD path" of every request
	reports        []string // bodies of health reports
}

// cloudAnswers maps "METHOD path" to a reply body and the header it
// needs ("" for none).
type cloudAnswer struct{ header, value, body string }

func startFakeCloud(t *testing.T, answers map[string]cloudAnswer) *fakeCloud {
	t.Helper()
	f := &fakeCloud{}
	handler := func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.RequestURI()
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		f.mu.Lock()
		f.requests = append(f.requests, key)
		if r.URL.Query().Get("comp") == "health" {
			f.reports = append(f.reports, string(body))
		}
		f.mu.Unlock()
		a, ok := answers[key]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if a.header != "" && r.Header.Get(a.header) != a.value {
			http.Error(w, "want header "+a.header, http.StatusBadRequest)
			return
		}
		io.WriteString(w, a.body)
	}
	serve := func() (*http.Server, int) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := &http.Server{Handler: http.HandlerFunc(handler), ReadHeaderTimeout: 10 * time.Second}
		go s.Serve(l)
		t.Cleanup(func() { s.Close() })
		return s, l.Addr().(*net.TCPAddr).Port
	}
	f.metadata, f.mdPort = serve()
	f.wire, f.wPort = serve()
	return f
}

func (f *fakeCloud) seen() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests), slices.Clone(f.reports)
}

// cloudBoot is one guest booted with QEMU directly.
type cloudBoot struct {
	cmd     *exec.Cmd
	console string
	port    int // the host's loopback port forwarded to the app
}

// bootCloud boots img under QEMU's q35 machine with cfg in its initramfs:
// a user-mode NIC whose DHCP server gives the address, restricted so that
// nothing leaves it but the forwards: the app's port to a loopback port,
// and the metadata addresses to f. smbios plays the platform; extra are
// more QEMU arguments (disks).
func bootCloud(t *testing.T, img *cloudImage, cfg guestapi.Config, appPort int, f *fakeCloud, smbios []string, extra ...string) *cloudBoot {
	t.Helper()
	qemu := needProgram(t, "qemu-system-x86_64")
	socat := needProgram(t, "socat")
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.img")
	if err := export.WriteStandaloneInitrd(context.Background(), initrd, img.initrd, &cfg); err != nil {
		t.Fatal(err)
	}
	b := &cloudBoot{console: filepath.Join(dir, "console.log"), port: freePort(t)}
	netdev := fmt.Sprintf("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:%d", b.port, appPort)
	if f != nil {
		// QEMU forwards only addresses inside its network: one that
		// holds both services' (metaNet), which its DHCP server then
		// hands out addresses of.
		netdev += ",net=" + metaNet + ",host=" + metaGateway + ",dns=168.0.0.3,dhcpstart=" + metaGuest
		netdev += fmt.Sprintf(",guestfwd=tcp:169.254.169.254:80-cmd:%s - TCP:127.0.0.1:%d", socat, f.mdPort)
		netdev += fmt.Sprintf(",guestfwd=tcp:168.63.129.16:80-cmd:%s - TCP:127.0.0.1:%d", socat, f.wPort)
	}
	args := []string{"-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:" + b.console,
		"-kernel", img.kernel, "-initrd", initrd, "-append", img.cmdline,
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
		"-device", "virtio-rng-pci"}
	for _, s := range smbios {
		args = append(args, "-smbios", s)
	}
	args = append(args, extra...)
	b.cmd = exec.Command(qemu, args...)
	out := &lockedBuffer{}
	b.cmd.Stdout, b.cmd.Stderr = out, out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("qemu output:\n%s\nconsole:\n%s", out.String(), b.log())
		}
	})
	return b
}

func (b *cloudBoot) log() string {
	c, _ := os.ReadFile(b.console)
	return string(c)
}

// get waits for the app and returns its answer.
func (b *cloudBoot) get(t *testing.T) string {
	t.Helper()
	return waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", b.port), 3*time.Minute)
}

// waitConsole waits until the console log holds want.
func (b *cloudBoot) waitConsole(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(b.log(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the console has no %q within %v", want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func wantIn(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s has no %q:\n%s", what, w, s)
		}
	}
}

// The user-mode network of the guests that reach a fake metadata service:
// the smallest that holds 169.254.169.254 and Azure's 168.63.129.16, as
// QEMU's guestfwd needs. It is QEMU's own, with restrict=on: nothing in
// it reaches the host's network.
const (
	metaNet     = "168.0.0.0/7"
	metaGateway = "168.0.0.2"
	metaGuest   = "168.0.0.15"
)

// Azure's chassis asset tag, as its VMs' DMI tables carry it.
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// TestCloudGuest boots an image built for cloud disks the way a cloud's
// firmware would (q35, kernel and initramfs with a standalone config
// asking for DHCP), plays each platform with QEMU's SMBIOS tables and a
// metadata service on loopback, and checks that the app runs with the
// user-data's environment, arguments and hostname.
func TestCloudGuest(t *testing.T) {
	e := newEnv(t)
	e.withCloudKernel()
	img := buildCloudImage(t, e, "cloudweb", "--port", "8080", "./examples/httpserver")

	t.Run("aws", func(t *testing.T) {
		const token = "e2e-token"
		f := startFakeCloud(t, map[string]cloudAnswer{
			"PUT /latest/api/token":                {"X-aws-ec2-metadata-token-ttl-seconds", "300", token},
			"GET /latest/meta-data/local-hostname": {"X-aws-ec2-metadata-token", token, "ip-10-0-2-15.ec2.internal"},
			"GET /latest/user-data":                {"X-aws-ec2-metadata-token", token, "#nos-config\n" + `{"env":["GREETING=hello from aws user-data"],"hostname":"aws-web"}`},
		})
		b := bootCloud(t, img, img.cfg, 8080, f, []string{"type=1,manufacturer=Amazon EC2,product=m5.large"})
		body := b.get(t)
		wantIn(t, "the app's answer", body, "hello from aws user-data", "host: aws-web")
		wantIn(t, "the console", b.log(), "nos-init: platform: aws", "nos-init: dhcp: eth0: "+metaGuest+"/7")
	})

	t.Run("bad user-data", func(t *testing.T) {
		// The app runs as built, the console says why; no hostname from
		// the platform (404): the image's name stays.
		const token = "e2e-token"
		f := startFakeCloud(t, map[string]cloudAnswer{
			"PUT /latest/api/token": {"X-aws-ec2-metadata-token-ttl-seconds", "300", token},
			"GET /latest/user-data": {"X-aws-ec2-metadata-token", token, `{"env":["NOEQUALS"],"hostname":"bad"}`},
		})
		b := bootCloud(t, img, img.cfg, 8080, f, []string{"type=1,manufacturer=Amazon EC2"})
		wantIn(t, "the app's answer", b.get(t), "Hello from a nos VM", "host: cloudweb")
		wantIn(t, "the console", b.log(), "nos-init: ERROR: user-data from aws metadata is ignored, the application runs as built", `"NOEQUALS"`)
	})

	t.Run("gce", func(t *testing.T) {
		// No hostname in the user-data: the platform's is used; args
		// move the app to another port.
		f := startFakeCloud(t, map[string]cloudAnswer{
			"GET /computeMetadata/v1/instance/hostname":             {"Metadata-Flavor", "Google", "gce-vm.c.project.internal"},
			"GET /computeMetadata/v1/instance/attributes/user-data": {"Metadata-Flavor", "Google", `{"args":["-addr",":9090"],"env":["GREETING=hello from gce"]}`},
		})
		b := bootCloud(t, img, img.cfg, 9090, f, []string{"type=1,manufacturer=Google,product=Google Compute Engine"})
		wantIn(t, "the app's answer", b.get(t), "hello from gce", "host: gce-vm")
		wantIn(t, "the console", b.log(), "nos-init: platform: gce")
	})

	t.Run("azure", func(t *testing.T) {
		const container, instance = "c6d5e1f4-22b1-4a5e-9a73-0d2e2a1b3c4d", "896b4d1a7c3f4e0e8f5a6b7c8d9e0f1a.cloudweb"
		ud := base64.StdEncoding.EncodeToString([]byte(`{"env":["GREETING=hello from azure"]}`))
		goal := `<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="goalstate10.xsd">
  <Version>2012-11-30</Version>
  <Incarnation>1</Incarnation>
  <Machine><ExpectedState>Started</ExpectedState></Machine>
  <Container>
    <ContainerId>` + container + `</ContainerId>
    <RoleInstanceList>
      <RoleInstance>
        <InstanceId>` + instance + `</InstanceId>
        <State>Started</State>
      </RoleInstance>
    </RoleInstanceList>
  </Container>
</GoalState>`
		f := startFakeCloud(t, map[string]cloudAnswer{
			"GET /metadata/instance/compute?api-version=2021-02-01": {"Metadata", "true", `{"name":"azure-web","location":"westeurope","userData":"` + ud + `"}`},
			"GET /machine/?comp=goalstate":                          {"x-ms-version", "2012-11-30", goal},
			"POST /machine/?comp=health":                            {"x-ms-agent-name", "nos-init", ""},
		})
		b := bootCloud(t, img, img.cfg, 8080, f, []string{
			"type=1,manufacturer=Microsoft Corporation,product=Virtual Machine",
			"type=3,manufacturer=Microsoft Corporation,asset=" + azureAssetTag,
		})
		wantIn(t, "the app's answer", b.get(t), "hello from azure", "host: azure-web")
		b.waitConsole(t, "nos-init: azure: reported ready", time.Minute)
		_, reports := f.seen()
		if len(reports) != 1 {
			t.Fatalf("%d health reports, want 1", len(reports))
		}
		wantIn(t, "the health report", reports[0], "<ContainerId>"+container+"</ContainerId>", "<InstanceId>"+instance+"</InstanceId>",
			"<GoalStateIncarnation>1</GoalStateIncarnation>", "<State>Ready</State>")
	})

	t.Run("nocloud and root by partition label", func(t *testing.T) {
		// The app on an erofs root, in a GPT partition named nos-root on
		// a SCSI disk, as an exported disk has it; the cidata disk is a
		// virtio one, as KubeVirt attaches it.
		tree := t.TempDir()
		os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(tree, "bin", "web"), "./examples/httpserver")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		needProgram(t, "mkfs.erofs")
		rimg := buildCloudImage(t, e, "cloudtree", "--port", "8080", "--rootfs", tree, "--entrypoint", `["/bin/web"]`)
		if rimg.rootDisk == "" {
			t.Fatal("the image has no root disk")
		}
		cfg := rimg.cfg
		cfg.Root = &guestapi.Root{PartLabel: "nos-root", FSType: "erofs", Writable: true}
		disk := gptDisk(t, rimg.rootDisk, "nos-root")
		iso := cidataISO(t, "#nos-config\n"+`{"env":["GREETING=hello from nocloud"]}`, "instance-id: iid-e2e\nlocal-hostname: nocloud-web\n")
		// No platform, no metadata service: the disk alone configures it.
		b := bootCloud(t, rimg, cfg, 8080, nil, nil,
			"-device", "virtio-scsi-pci,id=scsi0",
			"-drive", "file="+disk+",if=none,id=root,format=raw,readonly=on", "-device", "scsi-hd,drive=root,bus=scsi0.0",
			"-drive", "file="+iso+",if=virtio,format=raw,readonly=on")
		wantIn(t, "the app's answer", b.get(t), "hello from nocloud", "host: nocloud-web")
		wantIn(t, "the console", b.log(), "nos-init: platform: none", `instance-id "iid-e2e"`, `nos-init: root: partition "nos-root" is /dev/sda`)
	})
}

// cidataISO makes a NoCloud disk as cloud-localds does, with Debian's
// genisoimage.
func cidataISO(t *testing.T, userData, metaData string) string {
	t.Helper()
	genisoimage := needProgram(t, "genisoimage")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "user-data"), []byte(userData), 0o644)
	os.WriteFile(filepath.Join(dir, "meta-data"), []byte(metaData), 0o644)
	iso := filepath.Join(dir, "cidata.iso")
	cmd := exec.Command(genisoimage, "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock", "user-data", "meta-data")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, out)
	}
	return iso
}

// gptDisk makes a GPT disk (with sfdisk) whose one partition, named
// label, holds the filesystem image fs.
func gptDisk(t *testing.T, fs, label string) string {
	t.Helper()
	sfdisk := needProgram(t, "sfdisk")
	b, err := os.ReadFile(fs)
	if err != nil {
		t.Fatal(err)
	}
	const start = 1 << 20
	sectors := (len(b) + 511) / 512
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, int64(start+sectors*512+start)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sfdisk, "--quiet", disk)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: gpt\nstart=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=%s\n", start/512, sectors, label))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, start); err != nil {
		t.Fatal(err)
	}
	return disk
}
