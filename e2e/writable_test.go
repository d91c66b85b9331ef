package e2e

// Tests of the writable root: an image with a root disk runs on an overlay
// of it with a tmpfs upper layer, as a container runs on its writable
// layer; --read-only keeps the root read-only, --tmpfs-size caps the
// layer, --tmpfs adds tmpfs mounts.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nginxDefaultSite replaces Debian's sites-enabled/default, whose
// `listen [::]:80` needs IPv6, which nos's kernels leave out. The rest of
// the configuration is Debian's: nginx.conf logs to /var/log/nginx and
// keeps its temporary files in /var/lib/nginx, on the root disk.
const nginxDefaultSite = `server {
	listen 80 default_server;
	root /var/www/html;
	index index.html;
	server_name _;
}
`

// buildStockNginx builds Debian's nginx with the host's /etc/nginx, its
// optional modules (modules-enabled) left out, and returns the image name.
func buildStockNginx(t *testing.T, e *nosEnv, page string) string {
	t.Helper()
	nginx := needProgram(t, "/usr/sbin/nginx")
	if _, err := os.Stat("/etc/nginx/nginx.conf"); err != nil {
		t.Fatalf("the test needs Debian's nginx configuration: %v; %s", err, testDepsHint)
	}
	dir := mkdir(t, filepath.Join(t.TempDir(), "nginx"), 0o755)
	etc := filepath.Join(dir, "etc")
	if out, err := command(t, time.Minute, "cp", "-a", "/etc/nginx", etc); err != nil {
		t.Fatalf("copying /etc/nginx: %v\n%s", err, out)
	}
	for _, d := range []string{"modules-enabled", "sites-enabled"} {
		if err := os.RemoveAll(filepath.Join(etc, d)); err != nil {
			t.Fatal(err)
		}
		mkdir(t, filepath.Join(etc, d), 0o755)
	}
	writeFile(t, filepath.Join(etc, "sites-enabled", "default"), nginxDefaultSite, 0o644)
	www := mkdir(t, filepath.Join(dir, "www"), 0o755)
	writeFile(t, filepath.Join(www, "index.html"), page, 0o644)
	passwd := filepath.Join(dir, "passwd")
	writeFile(t, passwd, "root:x:0:0:root:/root:/bin/false\nwww-data:x:33:33:www-data:/var/www:/bin/false\n", 0o644)
	group := filepath.Join(dir, "group")
	writeFile(t, group, "root:x:0:\nadm:x:4:\nwww-data:x:33:\n", 0o644)
	logs := mkdir(t, filepath.Join(dir, "log"), 0o755)
	lib := mkdir(t, filepath.Join(dir, "lib"), 0o755)

	// The master runs as root, binds port 80 and makes its temporary
	// directories for the workers, which run as www-data (nginx.conf's
	// user): those capabilities, no others.
	e.buildTree("-t", "nginx-stock", "--port", "80",
		"--cap-add", "NET_BIND_SERVICE", "--cap-add", "SETUID", "--cap-add", "SETGID", "--cap-add", "CHOWN",
		"--add", etc+":/etc/nginx", "--add", www+":/var/www/html",
		"--add", logs+":/var/log/nginx", "--add", lib+":/var/lib/nginx",
		"--add", passwd+":/etc/passwd", "--add", group+":/etc/group",
		"--entrypoint", `["/usr/sbin/nginx","-g","daemon off;"]`, nginx)
	return "nginx-stock"
}

// TestNginxStockConfigWritableRoot: Debian's nginx, with its own
// configuration writing to /var/log/nginx and /var/lib/nginx, serves with
// no flag; with --read-only it fails, and says why in nos logs.
func TestNginxStockConfigWritableRoot(t *testing.T) {
	t.Parallel()
	curl := needProgram(t, "curl")
	needProgram(t, "mkfs.erofs")
	e := newEnv(t)
	e.withBlkKernel()
	page := "<h1>stock nginx on a writable root</h1>\n"
	img := buildStockNginx(t, e, page)

	port := freePort(t)
	id := e.runDetached("-p", fmt.Sprintf("127.0.0.1:%d:80", port), img)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if body := e.waitCommand(id, "stock nginx", 2*time.Minute, curl, "-sS", "-f", "--max-time", "5", url); body != page {
		t.Errorf("curl %s = %q, want %q", url, body, page)
	}
	if r := e.nos("stop", id); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	if logs := e.logs(id); strings.Contains(logs, "[emerg]") || strings.Contains(logs, "[alert]") {
		t.Errorf("nginx complained:\n%s", logs)
	}

	// Read-only: nginx cannot open its logs, says so, and exits 1.
	ro := e.runDetached("--read-only", img)
	if r := e.nos("wait", ro); r.code != 0 || strings.TrimSpace(r.stdout) != "1" {
		e.dump(ro)
		t.Fatalf("nginx on a read-only root: wait = %v, want exit code 1", r)
	}
	logs := e.logs(ro)
	if !regexp.MustCompile(`\[(emerg|alert)\] .*"/var/(log|lib)/nginx/[a-z.]*" failed \(30: Read-only file system\)`).MatchString(logs) {
		t.Errorf("nos logs of nginx on a read-only root: want nginx's own read-only error, got:\n%s", logs)
	}
}

// buildRootProbe builds the probe as the only program of a root tree,
// so that its root is a root disk, and returns the image name.
func buildRootProbe(t *testing.T, e *nosEnv) string {
	t.Helper()
	root := mkdir(t, filepath.Join(t.TempDir(), "rootfs"), 0o755)
	mkdir(t, filepath.Join(root, "bin"), 0o755)
	goBuild(t, filepath.Join(root, "bin", "probe"), "amd64", "./e2e/testdata/probe")
	writeFile(t, filepath.Join(root, "data", "sub", "file"), "from the image\n", 0o644)
	writeFile(t, filepath.Join(root, "data", "file"), "from the image\n", 0o644)
	e.buildTree("-t", "rootprobe", "--rootfs", root, "--entrypoint", "/bin/probe")
	return "rootprobe"
}

// TestWritableRootLostAtStop: what the app writes to / is there while it
// runs and gone at the next boot; a directory of the image can be
// replaced; --read-only refuses the write; --tmpfs-size caps what can be
// written.
func TestWritableRootLostAtStop(t *testing.T) {
	t.Parallel()
	needProgram(t, "mkfs.erofs")
	e := newEnv(t)
	e.withBlkKernel()
	img := buildRootProbe(t, e)

	r := e.run("--name", "persist", img, "persist", "/state")
	if r.code != 0 || r.stdout != "before: absent\nwrote /state\n" {
		t.Fatalf("first boot: want the file absent, then written; got %v", r)
	}
	if r := e.nos("start", "persist"); r.code != 0 {
		t.Fatalf("start: %v", r)
	}
	if r := e.nos("wait", "persist"); strings.TrimSpace(r.stdout) != "0" {
		e.dump("persist")
		t.Fatalf("second boot: wait = %v, want 0", r)
	}
	if logs := e.logs("persist"); strings.Count(logs, "before: absent\n") != 2 || strings.Contains(logs, "written") {
		t.Errorf("after a stop and a start the file must be gone again; logs:\n%s", logs)
	}
	e.nos("rm", "-f", "persist")

	// A directory of the image replaced by an empty one (rm -rf, mkdir):
	// overlayfs marks it opaque, with an xattr on the tmpfs.
	r = e.run("--rm", img, "replace-dir", "/data")
	if r.code != 0 || r.stdout != "replaced /data entries: 0\n" {
		t.Errorf("removing and making again a directory of the image: %v", r)
	}

	r = e.run("--rm", "--read-only", img, "persist", "/state")
	if r.code != 1 || !strings.Contains(r.stdout, "write: open /state: read-only file system") {
		t.Errorf("--read-only: want the write refused with EROFS, exit 1; got %v", r)
	}

	r = e.run("--rm", "--tmpfs-size", "1m", img, "fill", "/big")
	checkFilled(t, "--tmpfs-size 1m", r, 1024)
}

// checkFilled checks the probe's fill output: the write ended with ENOSPC
// at no more than max KiB.
func checkFilled(t *testing.T, what string, r result, max int) {
	t.Helper()
	m := regexp.MustCompile(`^wrote (\d+) KiB; enospc: true `).FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("%s: want a write that ends with ENOSPC; got %v", what, r)
	}
	if n, _ := strconv.Atoi(m[1]); n > max || n == 0 {
		t.Errorf("%s: wrote %d KiB before ENOSPC, want at most %d", what, n, max)
	}
}

// TestTmpfsMount: --tmpfs PATH:size=1m mounts a tmpfs of that size,
// making its mount point; a bad mount point is refused before booting.
func TestTmpfsMount(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	r := e.run("--rm", "--tmpfs", "/scratch:size=1m,mode=1777", "probe", "fill", "/scratch/f")
	checkFilled(t, "--tmpfs /scratch:size=1m", r, 1024)

	r = e.run("--rm", "--tmpfs", "/scratch/../etc", "probe", "exit", "0")
	if r.code != 125 || !strings.Contains(r.stderr, "absolute, clean path") {
		t.Errorf("--tmpfs with ..: want a refusal, exit 125; got %v", r)
	}
	r = e.run("--rm", "--read-only", "probe", "exit", "0")
	if r.code != 125 || !strings.Contains(r.stderr, "has no root disk") {
		t.Errorf("--read-only on an initramfs image: want a refusal, exit 125; got %v", r)
	}
}
