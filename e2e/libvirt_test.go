package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const libvirtURI = "qemu:///system"

// virsh runs virsh against the system daemon.
func virsh(args ...string) (string, error) {
	out, err := exec.Command("virsh", append([]string{"-c", libvirtURI}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// needLibvirtd makes sure Debian's libvirtd answers on qemu:///system,
// starting it (with virtlogd, which it hands serial logs to) when it does
// not. This machine has no systemd as PID 1, so the daemons are started
// directly; both stay running for later tests, as a system service would.
func needLibvirtd(t *testing.T) {
	t.Helper()
	needProgram(t, "virsh")
	if _, err := virsh("version"); err == nil {
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("libvirtd is not running and starting it needs root: sudo libvirtd -d (or systemctl start libvirtd)")
	}
	for _, d := range []string{"virtlogd", "libvirtd"} {
		if out, err := exec.Command(needProgram(t, d), "-d").CombinedOutput(); err != nil {
			t.Fatalf("starting %s: %v\n%s", d, err, out)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := virsh("version")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd started but does not answer on %s: %v\n%s", libvirtURI, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// readableDir is a temporary directory libvirt's QEMU user
// (libvirt-qemu) can reach: the test's own temporary directories are
// private (0700).
func readableDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestLibvirt exports the example HTTP app for libvirt and runs it with
// virsh on the real system daemon, under TCG: define, start, HTTP through a
// port forwarded on loopback, a graceful shutdown that reaches the app as
// SIGTERM, undefine.
func TestLibvirt(t *testing.T) {
	e := newEnv(t)
	e.build("httpserver", "./examples/httpserver", "--port", "8080")
	dir := filepath.Join(readableDir(t), "web")

	t.Run("bad input", func(t *testing.T) {
		r := e.nos("export", "httpserver", "--format", "ova", "-o", dir)
		if r.code == 0 || !strings.Contains(r.stderr, "unknown format") {
			t.Errorf("--format ova: %v", r)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Error("a refused export left its directory")
		}
		r = e.nos("export", "nosuchimage", "--format", "libvirt", "-o", dir)
		if r.code == 0 {
			t.Errorf("export of a missing image: %v", r)
		}
	})

	exportAndRun(t, e, "httpserver", dir)
}

// TestLibvirtRootDisk does the same for an image whose app is on an erofs
// root disk, attached as a read-only virtio disk.
func TestLibvirtRootDisk(t *testing.T) {
	e := newEnv(t)
	needProgram(t, "mkfs.erofs")
	tree := webTree(t)
	if r := e.nos("build", "--kernel", kernelPath, "-t", "treeweb", "--port", "8080", "--rootfs", tree, "--entrypoint", `["/bin/web"]`); r.code != 0 {
		t.Fatalf("nos build --rootfs: %v", r)
	}
	dir := filepath.Join(readableDir(t), "treeweb")
	exportAndRun(t, e, "treeweb", dir)
	if _, err := os.Stat(filepath.Join(dir, "root.erofs")); err != nil {
		t.Errorf("the export has no root disk: %v", err)
	}
}

// exportAndRun exports img into dir with a loopback forward, and runs it
// on libvirt: define, start, HTTP, shutdown (SIGTERM seen), undefine.
func exportAndRun(t *testing.T, e *nosEnv, img, dir string) {
	t.Helper()
	port := freePort(t)
	name := fmt.Sprintf("nos-e2e-%s-%d", img, os.Getpid())
	r := e.nos("export", img, "--format", "libvirt", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "-o", dir)
	if r.code != 0 {
		t.Fatalf("nos export: %v", r)
	}
	powerButton := !strings.Contains(r.stderr, "no ACPI power button")
	if r := e.nos("export", img, "--format", "libvirt", "-o", dir); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("export into an existing directory: %v", r)
	}

	// The export needed no libvirtd; running it does.
	needLibvirtd(t)
	if out, err := virsh("define", filepath.Join(dir, "domain.xml")); err != nil {
		t.Fatalf("virsh define: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		virsh("destroy", name)
		if out, err := virsh("undefine", name); err != nil && !strings.Contains(out, "failed to get domain") {
			t.Errorf("virsh undefine: %v\n%s", err, out)
		}
		if out, _ := virsh("list", "--all", "--name"); strings.Contains(out, name) {
			t.Errorf("domain %s still defined:\n%s", name, out)
		}
	})
	if out, err := virsh("start", name); err != nil {
		t.Fatalf("virsh start: %v\n%s", err, out)
	}
	console := filepath.Join(dir, "console.log")
	body := waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", port), 3*time.Minute)
	if !strings.Contains(body, "host: "+name) {
		t.Errorf("app answered %q, want its hostname %s (the domain's name, from the standalone config)", body, name)
	}

	if !powerButton {
		t.Log("the kernel has no ACPI power button: virsh shutdown cannot stop it; destroying")
		return
	}
	if out, err := virsh("shutdown", name); err != nil {
		t.Fatalf("virsh shutdown: %v\n%s", err, out)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		state, _ := virsh("domstate", name)
		if state == "shut off" {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(console)
			t.Fatalf("domain is %q two minutes after virsh shutdown\nconsole:\n%s", state, b)
		}
		time.Sleep(500 * time.Millisecond)
	}
	b, err := os.ReadFile(console)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"power button pressed", "stopping", "stopped"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("console log lacks %q (the app's SIGTERM handling):\n%s", want, b)
		}
	}
}

// webTree returns a root tree holding the example HTTP app as /bin/web,
// for images whose app is on a root disk.
func webTree(t *testing.T) string {
	t.Helper()
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(tree, "bin", "web"), "./examples/httpserver")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return tree
}
