package e2e

// Tests of nos building ordinary Linux software into images: programs
// taken from the host with their libraries (nginx, redis, python3), a root
// tree, and a container image pulled from a local registry. Their files go
// on an erofs root disk, so they boot the kernel nos builds with the
// features blk,net; `make test-deps` builds it and installs the Debian
// packages whose programs these tests run.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nosproject/nos/internal/home"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/kbuild"
)

const testDepsHint = "run `make test-deps`, which installs what the integration tests need"

// blkFeatures are the features of the kernel the tests boot root disks on.
var blkFeatures = []string{"blk", "net"}

var (
	blkOnce  sync.Once
	blkEntry *kbuild.Entry
	blkErr   error
)

// blkKernel returns the kernel nos built with exactly the features blk and
// net: the cache entry directory $NOS_TEST_BLK_KERNEL names, else the one in
// the default nos home's built-kernel cache. Without one the test fails.
func blkKernel(t *testing.T) *kbuild.Entry {
	t.Helper()
	blkOnce.Do(func() { blkEntry, blkErr = findBlkKernel() })
	if blkErr != nil {
		t.Fatalf("the test boots an image with a root disk on a kernel nos built with the features blk,net: %v; %s (it runs nos kernel build --features net,blk), or set NOS_TEST_BLK_KERNEL to a built kernel's directory", blkErr, testDepsHint)
	}
	return blkEntry
}

func findBlkKernel() (*kbuild.Entry, error) {
	if dir := os.Getenv("NOS_TEST_BLK_KERNEL"); dir != "" {
		dir, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		e, err := kbuild.Cache{Dir: filepath.Dir(dir)}.Get(filepath.Base(dir))
		if err != nil {
			return nil, fmt.Errorf("NOS_TEST_BLK_KERNEL=%s: %w", dir, err)
		}
		if !sameFeatures(e.Features, blkFeatures) {
			return nil, fmt.Errorf("NOS_TEST_BLK_KERNEL=%s has the features %v, want %v", dir, e.Features, blkFeatures)
		}
		return e, nil
	}
	l, err := home.Default()
	if err != nil {
		return nil, err
	}
	c := kbuild.Cache{Dir: l.BuiltKernels()}
	entries, err := c.List()
	if err != nil {
		return nil, err
	}
	// Kernels built before the blk feature had overlayfs, tmpfs xattrs and
	// virtiofs cannot give a writable root or share directories: skip them.
	var old *kbuild.Entry
	for _, e := range entries {
		if e.Origin == kbuild.OriginBuilt && sameFeatures(e.Features, blkFeatures) {
			if hasCurrentBlk(e) {
				return e, nil
			}
			old = e
		}
	}
	if old != nil {
		return nil, fmt.Errorf("the kernel with the features blk,net in %s (%s) was built before the blk feature had overlayfs, tmpfs xattrs and virtiofs", c.Dir, old.ShortID())
	}
	return nil, fmt.Errorf("no kernel with the features blk,net in %s", c.Dir)
}

// hasCurrentBlk reports whether a built kernel's config has what today's
// blk feature gives: overlayfs and xattrs on its tmpfs upper layer (a
// writable root), and virtiofs (host directories).
func hasCurrentBlk(e *kbuild.Entry) bool {
	b, err := os.ReadFile(e.ConfigPath())
	lines := strings.Split(string(b), "\n")
	return err == nil && e.Current() && slices.Contains(lines, "CONFIG_OVERLAY_FS=y") && slices.Contains(lines, "CONFIG_TMPFS_XATTR=y") && slices.Contains(lines, "CONFIG_VIRTIO_FS=y")
}

func sameFeatures(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// withBlkKernel copies the blk,net kernel into e's nos home, where nos
// build picks it for images with a root disk, and returns it.
func (e *nosEnv) withBlkKernel() *kbuild.Entry {
	e.t.Helper()
	k := blkKernel(e.t)
	if err := copyDir(k.Dir(), filepath.Join(home.Layout{Root: e.home}.BuiltKernels(), k.ID)); err != nil {
		e.t.Fatalf("copying the blk,net kernel: %v", err)
	}
	return k
}

// needProgram returns the path of a host program a test packages or
// drives (a name on PATH or an absolute path), failing when it is missing.
func needProgram(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatalf("the test needs %s: %v; %s (scripts/test-packages.sh)", prog, err, testDepsHint)
	}
	return p
}

// buildTree runs nos build with the home's default kernel (the blk,net one)
// and returns the digest.
func (e *nosEnv) buildTree(args ...string) string {
	e.t.Helper()
	r := e.nos(append([]string{"build"}, args...)...)
	digest := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(digest, "sha256:") {
		e.t.Fatalf("nos build %v: %v", args, r)
	}
	return digest
}

// imageConfig returns an image's config as nos inspect shows it.
func (e *nosEnv) imageConfig(ref string) image.Config {
	e.t.Helper()
	r := e.nos("inspect", ref)
	var out []struct{ Config image.Config }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out) != 1 {
		e.t.Fatalf("inspect %s: %v", ref, r)
	}
	return out[0].Config
}

// checkTreeImage checks what every image with a root disk has: the erofs
// root, the blk,net kernel and the user it runs as.
func checkTreeImage(t *testing.T, c image.Config, k *kbuild.Entry, user *guestapi.User) {
	t.Helper()
	if c.RootFS != "erofs" {
		t.Errorf("rootFS = %q, want erofs", c.RootFS)
	}
	if c.Kernel.Version != k.Version || !sameFeatures(c.Kernel.Features, blkFeatures) {
		t.Errorf("kernel = %s %v, want the blk,net kernel %s", c.Kernel.Version, c.Kernel.Features, k.Version)
	}
	if diff := cmp.Diff(user, c.User); diff != "" {
		t.Errorf("user (-want +got):\n%s", diff)
	}
}

// command runs a host program with a timeout and returns its combined
// output.
func command(t *testing.T, timeout time.Duration, prog string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %v: timed out after %v", prog, args, timeout)
	}
	return string(out), err
}

// waitCommand retries a host program until it succeeds with output
// containing want, dumping the instance when it never does.
func (e *nosEnv) waitCommand(id, want string, timeout time.Duration, prog string, args ...string) string {
	e.t.Helper()
	var out string
	var err error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, err = command(e.t, 10*time.Second, prog, args...)
		if err == nil && strings.Contains(out, want) {
			return out
		}
		if st := e.inspect(id).State.Status; st != "running" {
			e.dump(id)
			e.t.Fatalf("the instance is %s, not serving: %s %v: %v\n%s", st, prog, args, err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	e.dump(id)
	e.t.Fatalf("%s %v did not give %q within %v: %v\n%s", prog, args, want, timeout, err, out)
	return ""
}

// writeFile writes a file with exactly the given mode.
func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

// mkdir makes a directory with exactly the given mode (t.TempDir's are
// 0700, which a guest user other than root could not enter).
func mkdir(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// nginxConf runs nginx in the foreground as an unprivileged user: logs on
// stderr, its pid file and temporary files in the guest's /tmp (it
// writes nothing to its root, which --read-only may keep read-only),
// serving /srv/www on 8080.
const nginxConf = `daemon off;
worker_processes 1;
error_log stderr;
pid /tmp/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path /tmp/body;
	proxy_temp_path /tmp/proxy;
	fastcgi_temp_path /tmp/fastcgi;
	uwsgi_temp_path /tmp/uwsgi;
	scgi_temp_path /tmp/scgi;
	types { text/html html; }
	default_type application/octet-stream;
	server {
		listen 8080;
		root /srv/www;
	}
}
`

func TestNginxServesCurl(t *testing.T) {
	t.Parallel()
	nginx := needProgram(t, "/usr/sbin/nginx")
	curl := needProgram(t, "curl")
	needProgram(t, "mkfs.erofs")
	e := newEnv(t)
	k := e.withBlkKernel()

	dir := mkdir(t, filepath.Join(t.TempDir(), "nginx"), 0o755)
	conf := filepath.Join(dir, "nginx.conf")
	writeFile(t, conf, nginxConf, 0o644)
	www := mkdir(t, filepath.Join(dir, "www"), 0o755)
	page := "<h1>nginx in a nos VM</h1>\n"
	writeFile(t, filepath.Join(www, "index.html"), page, 0o644)

	e.buildTree("-t", "nginx", "--user", "33:33", "--port", "8080",
		"--add", conf+":/etc/nginx/nginx.conf", "--add", www+":/srv/www",
		"--entrypoint", `["/usr/sbin/nginx","-e","stderr"]`, nginx)
	c := e.imageConfig("nginx")
	checkTreeImage(t, c, k, &guestapi.User{UID: 33, GID: 33})
	if !slices.Equal(c.Entrypoint, []string{"/usr/sbin/nginx", "-e", "stderr"}) || !slices.Equal(c.ExposedPorts, []string{"8080/tcp"}) {
		t.Errorf("entrypoint %q, ports %q", c.Entrypoint, c.ExposedPorts)
	}

	port := freePort(t)
	id := e.runDetached("-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "nginx")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if body := e.waitCommand(id, "nginx in a nos VM", 2*time.Minute, curl, "-sS", "-f", "--max-time", "5", url); body != page {
		t.Errorf("curl %s = %q, want %q", url, body, page)
	}
	out, _ := command(t, 10*time.Second, curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", url+"no/such/page")
	if out != "404" {
		t.Errorf("a missing page: HTTP %q, want 404", out)
	}
	if r := e.nos("stop", id); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	if logs := e.logs(id); strings.Contains(logs, "[emerg]") || strings.Contains(logs, "[alert]") {
		t.Errorf("nginx complained:\n%s", logs)
	}
}

var rpsRE = regexp.MustCompile(`(?m)(SET|GET): ([0-9.]+) requests per second`)

func TestRedis(t *testing.T) {
	t.Parallel()
	needProgram(t, "redis-server")
	cli := needProgram(t, "redis-cli")
	bench := needProgram(t, "redis-benchmark")
	needProgram(t, "mkfs.erofs")
	e := newEnv(t)
	k := e.withBlkKernel()

	// A name on PATH, as the shell finds it.
	e.buildTree("-t", "redis", "--user", "65534", "--port", "6379",
		"--entrypoint", `["/usr/bin/redis-server","--port","6379","--protected-mode","no","--save","","--appendonly","no"]`, "redis-server")
	checkTreeImage(t, e.imageConfig("redis"), k, &guestapi.User{UID: 65534, GID: 65534})

	port := strconv.Itoa(freePort(t))
	id := e.runDetached("-p", "127.0.0.1:"+port+":6379", "redis")
	e.waitCommand(id, "PONG", 2*time.Minute, cli, "-h", "127.0.0.1", "-p", port, "PING")
	if out, err := command(t, 10*time.Second, cli, "-h", "127.0.0.1", "-p", port, "SET", "greeting", "hello from nos"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("redis-cli SET: %v %q", err, out)
	}
	if out, err := command(t, 10*time.Second, cli, "-h", "127.0.0.1", "-p", port, "GET", "greeting"); err != nil || strings.TrimSpace(out) != "hello from nos" {
		t.Fatalf("redis-cli GET: %v %q", err, out)
	}

	out, err := command(t, 2*time.Minute, bench, "-h", "127.0.0.1", "-p", port, "-n", "2000", "-c", "4", "-t", "set,get", "-q")
	if err != nil {
		e.dump(id)
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	rps := map[string]float64{}
	for _, m := range rpsRE.FindAllStringSubmatch(out, -1) {
		rps[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	if rps["SET"] <= 0 || rps["GET"] <= 0 {
		t.Fatalf("redis-benchmark reported no rate for SET and GET:\n%s", out)
	}
	t.Logf("redis-benchmark under %s: SET %.0f requests/s, GET %.0f requests/s", accel, rps["SET"], rps["GET"])
	// The data written is still there after the benchmark's own keys.
	if out, err := command(t, 10*time.Second, cli, "-h", "127.0.0.1", "-p", port, "GET", "greeting"); err != nil || strings.TrimSpace(out) != "hello from nos" {
		t.Errorf("redis-cli GET after the benchmark: %v %q", err, out)
	}
	if logs := e.logs(id); !strings.Contains(logs, "Ready to accept connections") {
		t.Errorf("redis's log lacks its ready line:\n%s", logs)
	}
}

func TestPython(t *testing.T) {
	t.Parallel()
	python := needProgram(t, "/usr/bin/python3")
	needProgram(t, "mkfs.erofs")
	// The standard library's directory (/usr/lib/python3.11 on Debian 12).
	out, err := command(t, time.Minute, python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))")
	stdlib := strings.TrimSpace(out)
	if err != nil || !filepath.IsAbs(stdlib) {
		t.Fatalf("finding python3's standard library: %v %q", err, out)
	}
	e := newEnv(t)
	k := e.withBlkKernel()

	app := filepath.Join(mkdir(t, filepath.Join(t.TempDir(), "py"), 0o755), "app.py")
	src, err := os.ReadFile(filepath.Join(repoRoot, "e2e", "testdata", "software", "pyapp", "app.py"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, app, string(src), 0o644)
	e.buildTree("-t", "py", "--user", "65534:65534", "--add", stdlib, "--add", app+":/app/app.py",
		"--entrypoint", `["/usr/bin/python3","/app/app.py"]`, python)
	checkTreeImage(t, e.imageConfig("py"), k, &guestapi.User{UID: 65534, GID: 65534})

	// What python prints for the primes below 50 (json.dumps' separators),
	// and their SHA-256.
	blob := `{"primes": [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]}`
	want := blob + "\n" +
		"sha256 " + fmt.Sprintf("%x", sha256.Sum256([]byte(blob))) + "\n" +
		"uid 65534 gid 65534\n" +
		"ssl OpenSSL sqlite 2\n" +
		"app dir: EACCES\n" + // the root is writable, /app is root's
		"tmp: writable\n"
	r := e.run("--rm", "py")
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Fatalf("python: want exit 0 and\n%s\ngot %v", want, r)
	}
	wantRO := strings.Replace(want, "app dir: EACCES", "app dir: EROFS", 1)
	if r := e.run("--rm", "--read-only", "py"); r.code != 0 || r.stdout != wantRO || r.stderr != "" {
		t.Fatalf("python --read-only: want exit 0 and\n%s\ngot %v", wantRO, r)
	}
	r = e.run("--rm", "py", "3")
	if r.code != 3 || r.stdout != want || !strings.Contains(r.stderr, "exiting with 3") {
		t.Fatalf("python exiting with 3: want exit 3, the same output and the message on stderr, got %v", r)
	}
	if ps := e.nos("ps", "-a", "-q"); ps.code != 0 || strings.TrimSpace(ps.stdout) != "" {
		t.Errorf("--rm left instances: %v", ps)
	}
}

// ociImage is a container image holding the static HTTP server at
// /app/httpserver, with the configuration TestOCIRegistry checks.
func ociImage(t *testing.T, server string) v1.Image {
	t.Helper()
	bin, err := os.ReadFile(server)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	hdrs := []*tar.Header{
		{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "app/httpserver", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layer.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.Config(img, v1.Config{
		Entrypoint:   []string{"/app/httpserver"},
		Cmd:          []string{"-addr", ":8080"},
		Env:          []string{"PATH=/app", "GREETING=hello from a registry"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		User:         "1000:1000",
		WorkingDir:   "/app",
	}); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// startRegistry runs Debian's docker-registry on a free loopback port,
// storing in a temporary directory, until the test ends; it returns
// host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	return startRegistryWith(t, "").addr
}

func TestOCIRegistry(t *testing.T) {
	t.Parallel()
	needProgram(t, "mkfs.erofs")
	e := newEnv(t)
	k := e.withBlkKernel()
	server := filepath.Join(t.TempDir(), "httpserver")
	goBuild(t, server, "amd64", "./examples/httpserver")
	reg := startRegistry(t)

	ref, err := name.ParseReference(reg+"/nos/test:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := remote.Write(ref, ociImage(t, server), remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing to the registry: %v", err)
	}

	e.buildTree("-t", "fromreg", "--from-oci", ref.String())
	c := e.imageConfig("fromreg")
	checkTreeImage(t, c, k, &guestapi.User{UID: 1000, GID: 1000})
	if !slices.Equal(c.Entrypoint, []string{"/app/httpserver"}) || !slices.Equal(c.Args, []string{"-addr", ":8080"}) ||
		!slices.Equal(c.ExposedPorts, []string{"8080/tcp"}) || c.WorkingDir != "/app" || !slices.Contains(c.Env, "GREETING=hello from a registry") {
		t.Errorf("the image does not carry the container image's config: %+v", c)
	}

	port := freePort(t)
	id := e.runDetached("-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "fromreg")
	body := waitHTTP(t, nil, fmt.Sprintf("http://127.0.0.1:%d/", port), 2*time.Minute)
	if !strings.HasPrefix(body, "hello from a registry\n") {
		e.dump(id)
		t.Errorf("unexpected body %q", body)
	}

	// An image the registry does not have: one line, nothing stored.
	images := e.nos("images", "-q")
	before := snapshot(t, e.home)
	missing := reg + "/nos/missing:1"
	r := e.nos("build", "-t", "missing", "--from-oci", missing)
	if last := lastLine(r.stderr); r.code != 1 || r.stdout != "" || !strings.HasPrefix(last, "nos: ") ||
		!strings.Contains(last, missing) || !strings.Contains(last, "does not resolve") || !strings.Contains(last, "manifest unknown") {
		t.Errorf("building from a missing image: want exit 1 and one line saying %s does not resolve (manifest unknown), got %v", missing, r)
	}
	if after := e.nos("images", "-q"); after.stdout != images.stdout {
		t.Errorf("nos images -q changed from %q to %q", images.stdout, after.stdout)
	}
	if diff := cmp.Diff(before, snapshot(t, e.home)); diff != "" {
		t.Errorf("store changed (-before +after):\n%s", diff)
	}
}

func TestRootfsDir(t *testing.T) {
	t.Parallel()
	needProgram(t, "mkfs.erofs")
	e := newEnv(t)
	k := e.withBlkKernel()

	// A small tree: the probe, its own passwd and group files, and data
	// files of several owners and modes.
	root := mkdir(t, filepath.Join(t.TempDir(), "rootfs"), 0o755)
	mkdir(t, filepath.Join(root, "bin"), 0o755)
	goBuild(t, filepath.Join(root, "bin", "treeprobe"), "amd64", "./e2e/testdata/software/treeprobe")
	writeFile(t, filepath.Join(root, "etc", "passwd"), "root:x:0:0:root:/:/bin/false\napp:x:1234:1234:app:/data:/bin/false\n", 0o644)
	writeFile(t, filepath.Join(root, "etc", "group"), "root:x:0:\napp:x:1234:\nextra:x:2000:app\n", 0o644)
	data := mkdir(t, filepath.Join(root, "data"), 0o755)
	files := []struct {
		name, content string
		mode          os.FileMode
		owner         int
	}{
		{"public", "for everyone\n", 0o644, 0},
		{"mine", "for app only\n", 0o600, 1234},
		{"group", "for app's group\n", 0o640, 4321}, // group 1234
		{"secret", "for root only\n", 0o600, 0},
	}
	asRoot := os.Geteuid() == 0
	for _, f := range files {
		p := filepath.Join(data, f.name)
		writeFile(t, p, f.content, f.mode)
		gid := f.owner
		if f.name == "group" {
			gid = 1234
		}
		if asRoot {
			if err := os.Lchown(p, f.owner, gid); err != nil {
				t.Fatal(err)
			}
		}
	}

	e.buildTree("-t", "tree", "--rootfs", root, "--user", "app", "--workdir", "/data",
		"--entrypoint", "/bin/treeprobe /data/public /data/mine /data/group /data/secret")
	checkTreeImage(t, e.imageConfig("tree"), k, &guestapi.User{UID: 1234, GID: 1234, Groups: []uint32{2000}})

	// As root, nos keeps the tree's owners; otherwise every file belongs
	// to root, and app reads only what everyone may.
	want := []string{
		"uid=1234 gid=1234 groups=[2000]",
		"cwd=/data ok",
		`/data/public: -rw-r--r-- 0:0 "for everyone\n"`,
	}
	if asRoot {
		want = append(want,
			`/data/mine: -rw------- 1234:1234 "for app only\n"`,
			`/data/group: -rw-r----- 4321:1234 "for app's group\n"`)
	} else {
		want = append(want,
			`/data/mine: -rw------- 0:0 permission denied`,
			`/data/group: -rw-r----- 0:0 permission denied`)
	}
	want = append(want,
		`/data/secret: -rw------- 0:0 permission denied`,
		"write /data/new: permission denied", // the root is writable, /data is root's
		"write /tmp/new: ok")
	check := func(t *testing.T, r result, readOnly bool) {
		t.Helper()
		want := slices.Clone(want)
		if readOnly {
			want[len(want)-2] = "write /data/new: read-only file system"
		}
		if got := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || !slices.Equal(got, want) {
			t.Errorf("want exit 0 and\n%s\ngot %v", strings.Join(want, "\n"), r)
		}
	}
	check(t, e.run("--rm", "tree"), false)
	check(t, e.run("--rm", "--read-only", "tree"), true)

	// A distribution's modular kernel (the one the other tests boot)
	// mounts the root disk with the virtio_blk and erofs modules, and the
	// writable root with overlay.
	t.Run("modular kernel", func(t *testing.T) {
		k, err := kernel.File{Path: kernelPath}.Find(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if k.ModulesDir == "" {
			t.Fatalf("the kernel the tests boot (%s) has no modules; the test wants Debian's (nos kernel fetch, in make deps)", kernelPath)
		}
		e := &nosEnv{t: t, home: e.home, env: e.env}
		e.buildTree("-t", "tree-modular", "--kernel", kernelPath, "--rootfs", root, "--user", "app", "--workdir", "/data",
			"--entrypoint", "/bin/treeprobe /data/public /data/mine /data/group /data/secret")
		c := e.imageConfig("tree-modular")
		for _, m := range []string{"virtio_blk", "erofs", "overlay"} {
			if !slices.Contains(c.Modules, m) {
				t.Errorf("the image's modules %v lack %s", c.Modules, m)
			}
		}
		check(t, e.run("--rm", "tree-modular"), false)
	})
}

// TestTreeBadInput: what cannot become an image with a root disk is
// refused with one line naming the cause, and nothing is stored.
func TestTreeBadInput(t *testing.T) {
	t.Parallel()
	needProgram(t, "mkfs.erofs")
	redis := needProgram(t, "redis-server")
	e := newEnv(t)

	tmp := t.TempDir()
	armPIE := filepath.Join(tmp, "hello-arm64")
	goBuildArgs(t, armPIE, "arm64", "-buildmode=pie", "./examples/hello")
	notTar := filepath.Join(tmp, "image.tar")
	writeFile(t, notTar, "not a tarball\n", 0o644)
	emptyDir := t.TempDir()
	if r := e.nos("images", "-q"); r.code != 0 || r.stdout != "" { // makes the empty store
		t.Fatalf("nos images -q in a new home: %v", r)
	}

	cases := []struct {
		name string
		args []string
		want []string // in the one-line error
	}{
		{"not ELF", []string{"/etc/hostname"}, []string{"/etc/hostname", "not an ELF executable"}},
		{"arm64 dynamic ELF", []string{armPIE}, []string{armPIE, "wrong architecture"}},
		{"from-oci missing dir", []string{"--from-oci", "/no/such/dir"}, []string{"/no/such/dir", "does not resolve"}},
		{"from-oci not an archive", []string{"--from-oci", notTar}, []string{notTar, "not a tar archive"}},
		{"from-oci empty dir", []string{"--from-oci", emptyDir}, []string{emptyDir, "not an OCI image layout"}},
		{"add missing", []string{"--add", "/no/such:/x", redis}, []string{"/no/such", "no such file"}},
		{"add relative guest", []string{"--add", "/etc/hostname:etc/hostname", redis}, []string{"ABSOLUTE_GUEST_PATH"}},
		{"unknown user", []string{"--user", "nosuchuser", redis}, []string{"nosuchuser", "/etc/passwd"}},
		{"unknown group", []string{"--user", "65534:nosuchgroup", redis}, []string{"nosuchgroup", "/etc/group"}},
		{"bad entrypoint", []string{"--entrypoint", `["/bin/x",`, redis}, []string{"--entrypoint", "JSON array"}},
		{"rootfs missing", []string{"--rootfs", "/no/such/tree", "--entrypoint", "/x"}, []string{"/no/such/tree"}},
		{"rootfs not a dir", []string{"--rootfs", "/etc/hostname", "--entrypoint", "/x"}, []string{"/etc/hostname", "not a directory"}},
		{"rootfs features", []string{"--features", "net", "--rootfs", emptyDir, "--entrypoint", "/x"}, []string{"blk"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, e.home)
			r := e.nos(append([]string{"build", "--kernel", kernelPath, "-t", "bad"}, c.args...)...)
			last := lastLine(r.stderr)
			ok := r.code == 1 && r.stdout == "" && strings.HasPrefix(last, "nos: ") && !strings.Contains(strings.TrimSpace(r.stderr), "\n")
			for _, w := range c.want {
				ok = ok && strings.Contains(last, w)
			}
			if !ok {
				t.Errorf("want exit 1 and a one-line error mentioning %q, got %v", c.want, r)
			}
			if diff := cmp.Diff(before, snapshot(t, e.home)); diff != "" {
				t.Errorf("store changed (-before +after):\n%s", diff)
			}
		})
	}
	if r := e.nos("images", "-q"); r.code != 0 || r.stdout != "" {
		t.Errorf("nos images -q after bad input: %v", r)
	}
}

// goBuildArgs is goBuild with extra go build flags.
func goBuildArgs(t *testing.T, out, arch string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
}
