package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The engine tests run containers through nos-runtime under containerd
// (ctr, with the runc shim) and docker, each daemon started by the test
// with its own root, state and socket in the test's directories, and
// stopped at the end: nothing collides with a system daemon and nothing
// is left behind. The image is made here: ocihello in a one-layer image,
// written in docker save's format (which ctr images import and docker
// load both read).

// ociImageArchive writes a docker-save tarball of ocihello as ref to path.
func ociImageArchive(t *testing.T, path, ref string) {
	t.Helper()
	imageArchive(t, path, ref, ociRootfs, "/bin/ocihello")
}

// imageArchive writes a docker-save tarball of the root fill makes, with
// entrypoint, as ref to path.
func imageArchive(t *testing.T, path, ref string, fill func(*testing.T, string), entrypoint ...string) {
	t.Helper()
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	fill(t, rootfs)
	layerTar := filepath.Join(dir, "layer.tar")
	if out, err := exec.Command("tar", "-C", rootfs, "-cf", layerTar, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	layer, err := tarball.LayerFromFile(layerTar)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: entrypoint, Env: []string{"PATH=/bin:/usr/sbin:/usr/bin"}, WorkingDir: "/"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}

// runTool runs a command with the runtime's kernel in its environment.
func runTool(t *testing.T, env []string, prog string, args ...string) result {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var x *exec.ExitError
	if errors.As(err, &x) {
		code = x.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", prog, args, err)
	}
	return result{stdout: so.String(), stderr: se.String(), code: code}
}

// daemon is a daemon the test started; stop ends it and waits.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startDaemon(t *testing.T, logPath string, env []string, prog string, args ...string) *daemon {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a stop reaches the daemon alone, and the
	// test's terminal signals do not.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", prog, err)
	}
	d := &daemon{name: filepath.Base(prog), cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(d.done)
	}()
	return d
}

func (d *daemon) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after a grace period.
func (d *daemon) stop(t *testing.T) {
	if !d.running() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop on SIGTERM: killed", d.name)
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// waitDaemon polls ok until it holds or the time is up.
func waitDaemon(t *testing.T, what string, limit time.Duration, d *daemon, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if !d.running() {
			t.Fatalf("%s exited while waiting for %s", d.name, what)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after %v", d.name, what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// containerdRunDir is where containerd 1.6 puts its shims' sockets
// whatever its config says (/run/containerd/s); the test removes it when
// it made it.
const containerdRunDir = "/run/containerd"

// startContainerd starts a containerd of the test's own: config, root,
// state and sockets in dir, env added to its environment (its shims and
// the runtimes they run inherit it). It returns the gRPC socket.
func startContainerd(t *testing.T, dir string, env []string) string {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Fatal("containerd is not installed (apt-get install containerd; .ci/run installs it)")
	}
	if _, err := os.Stat(containerdRunDir); errors.Is(err, os.ErrNotExist) {
		t.Cleanup(func() { removeIfOnlyShimDirs(t, containerdRunDir) })
	}
	sock := filepath.Join(dir, "containerd.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "debug.sock"))
	cfgPath := filepath.Join(dir, "containerd.toml")
	writeFile(t, cfgPath, cfg, 0o644)
	d := startDaemon(t, filepath.Join(dir, "containerd.log"), env, bin, "--config", cfgPath)
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() || testing.Verbose() {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Logf("containerd's log:\n%s", tail(string(b), 4000))
		}
	})
	waitDaemon(t, "socket", time.Minute, d, func() bool {
		return runTool(t, nil, "ctr", "--address", sock, "version").code == 0
	})
	return sock
}

// removeIfOnlyShimDirs removes containerd's run directory when it holds
// nothing but the empty directories containerd made for shim sockets.
func removeIfOnlyShimDirs(t *testing.T, dir string) {
	empty := true
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			empty = false
		}
		return nil
	})
	if !empty {
		t.Logf("%s holds files: left alone", dir)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("removing %s: %v", dir, err)
	}
}

// supervisorLogs logs the tail of every nos-runtime supervisor's log and
// VM console under dir (the engine's runtime root is there), while the
// container still exists: an engine removes them with it.
func supervisorLogs(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (d.Name() == "supervisor.log" || d.Name() == "console.log") {
			b, _ := os.ReadFile(p)
			t.Logf("%s:\n%s", p, tail(string(b), 3000))
		}
		return nil
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestContainerdRunsNosRuntime: ctr run --rm with the runc shim and
// --runc-binary nos-runtime prints the app's output and exits with its
// code, zero or not.
func TestContainerdRunsNosRuntime(t *testing.T) {
	needVM(t)
	t.Parallel()
	if _, err := exec.LookPath("ctr"); err != nil {
		t.Fatal("ctr is not installed (apt-get install containerd; .ci/run installs it)")
	}
	dir := t.TempDir()
	// The shim runs nos-runtime with containerd's environment.
	sock := startContainerd(t, dir, []string{"NOS_RUNTIME_KERNEL=" + ociKernel(t)})
	archive := filepath.Join(dir, "image.tar")
	const ref = "localhost/nos-ocihello:test"
	ociImageArchive(t, archive, ref)
	ctr := func(args ...string) result {
		return runTool(t, nil, "ctr", append([]string{"--address", sock}, args...)...)
	}
	if r := ctr("images", "import", archive); r.code != 0 {
		t.Fatalf("ctr images import: %v", r)
	}
	rt := runtimeBin(t)
	runc := []string{"run", "--rm", "--runtime", "io.containerd.runc.v2", "--runc-binary", rt, "--runc-root", filepath.Join(dir, "runc-root")}
	began := time.Now()
	r := ctr(append(runc, "--env", "FOO=bar", ref, "ctr1", "/bin/ocihello", "info")...)
	t.Logf("ctr run --rm took %v", time.Since(began).Round(time.Millisecond))
	if r.code != 0 || !strings.Contains(r.stdout, "marker=from the rootfs") || !strings.Contains(r.stdout, "FOO=bar") || !strings.Contains(r.stderr, "to stderr") {
		t.Errorf("ctr run --rm info: %v", r)
	}
	// The shim ran nos-runtime, not runc: its initramfs cache is in the
	// root the shim gave it (ROOT/NAMESPACE).
	if m, _ := filepath.Glob(filepath.Join(dir, "runc-root", "default", "initrd-*.cpio")); len(m) != 1 {
		t.Errorf("nos-runtime's root holds no initramfs: %v", m)
	}
	if r := ctr(append(runc, ref, "ctr2", "/bin/ocihello", "exit", "7")...); r.code != 7 {
		t.Errorf("ctr run exit 7: %v", r)
	}
	if r := ctr("containers", "ls", "-q"); strings.TrimSpace(r.stdout) != "" {
		t.Errorf("containers left after run --rm: %v", r)
	}
	ctr("images", "rm", ref)
}

// Paths dockerd 20.10 makes whatever its flags say: its plugin socket
// directory and its (deprecated) trust key. The test removes them after
// its daemon stops when they were not there before it.
var dockerFixedPaths = []string{"/run/docker", "/etc/docker/key.json"}

// startDockerd starts a dockerd of the test's own, with its data root,
// exec root, pid file and socket in dir, no bridge, no iptables, its own
// containerd (which dockerd starts and stops), and nos-runtime as the
// runtime "nos". It returns the DOCKER_HOST value.
func startDockerd(t *testing.T, dir, rt string, env []string) string {
	t.Helper()
	return startDockerdIn(t, "", dir, rt, env)
}

// startDockerdIn is startDockerd in the network namespace netns (made by
// the test) when it is not "": there dockerd gets its default bridge
// (docker0, 172.17.0.1/16) and its iptables rules, inside the namespace,
// never on the host's own interfaces.
func startDockerdIn(t *testing.T, netns, dir, rt string, env []string) string {
	t.Helper()
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Fatal("dockerd is not installed (apt-get install docker.io; .ci/run installs it)")
	}
	for _, p := range dockerFixedPaths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			t.Cleanup(func() {
				if p == "/run/docker" {
					removeIfOnlyShimDirs(t, p)
				} else {
					_ = os.Remove(p)
				}
			})
		}
	}
	if _, err := os.Stat(containerdRunDir); errors.Is(err, os.ErrNotExist) {
		t.Cleanup(func() { removeIfOnlyShimDirs(t, containerdRunDir) })
	}
	host := "unix://" + filepath.Join(dir, "docker.sock")
	logPath := filepath.Join(dir, "dockerd.log")
	args := []string{
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "--host", host,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--add-runtime", "nos=" + rt}
	prog := bin
	if netns == "" {
		args = append(args, "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false")
	} else {
		// nsenter, not ip netns exec, which would mount a sysfs of the
		// namespace's over /sys and hide the cgroup mounts dockerd needs.
		prog, args = "nsenter", append([]string{"--net=/run/netns/" + netns, bin}, append(args, "--ip6tables=false")...)
	}
	d := startDaemon(t, logPath, env, prog, args...)
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() || testing.Verbose() {
			b, _ := os.ReadFile(logPath)
			t.Logf("dockerd's log:\n%s", tail(string(b), 4000))
		}
	})
	writeFile(t, filepath.Join(dir, "daemon.json"), "{}", 0o644)
	waitDaemon(t, "API socket", 2*time.Minute, d, func() bool {
		return runTool(t, []string{"DOCKER_HOST=" + host}, dockerClient(t), "version").code == 0
	})
	return host
}

// dockerClient is docker.io's client, beside dockerd's package (a newer
// client elsewhere on PATH talks to it too, but this is the tested pair).
func dockerClient(t *testing.T) string {
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	p, err := exec.LookPath("docker")
	if err != nil {
		t.Fatal("docker is not installed (apt-get install docker.io; .ci/run installs it)")
	}
	return p
}

// TestDockerRunsNosRuntime: docker run --runtime nos prints the app's
// output and exits with its code; run -d, exec, then stop: the app sees
// SIGTERM and exits 0. The test's dockerd runs with --network none
// containers only (no bridge, no iptables).
func TestDockerRunsNosRuntime(t *testing.T) {
	needVM(t)
	t.Parallel()
	dir := t.TempDir()
	rt := runtimeBin(t)
	host := startDockerd(t, dir, rt, []string{"NOS_RUNTIME_KERNEL=" + ociKernel(t)})
	docker := func(args ...string) result {
		return runTool(t, []string{"DOCKER_HOST=" + host}, dockerClient(t), args...)
	}
	archive := filepath.Join(dir, "image.tar")
	const ref = "localhost/nos-ocihello:test"
	ociImageArchive(t, archive, ref)
	if r := docker("load", "-i", archive); r.code != 0 {
		t.Fatalf("docker load: %v", r)
	}
	began := time.Now()
	r := docker("run", "--rm", "--runtime", "nos", "--network", "none", "-e", "FOO=bar", ref, "info")
	t.Logf("docker run --rm took %v", time.Since(began).Round(time.Millisecond))
	if r.code != 0 || !strings.Contains(r.stdout, "marker=from the rootfs") || !strings.Contains(r.stdout, "FOO=bar") || !strings.Contains(r.stderr, "to stderr") {
		t.Errorf("docker run --rm info: %v", r)
	}
	// The files docker bind-mounts reach the guest as copies.
	r = docker("run", "--rm", "--runtime", "nos", "--network", "none", "--hostname", "myhost", "--add-host", "db.example:10.1.2.3", "--dns", "192.0.2.53", ref, "files")
	for _, want := range []string{"== /etc/hostname err=<nil>\nmyhost\n", "10.1.2.3\tdb.example", "nameserver 192.0.2.53"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("docker run files: no %q in %v", want, r)
		}
	}
	if r := docker("run", "--rm", "--runtime", "nos", "--network", "none", ref, "exit", "7"); r.code != 7 {
		t.Errorf("docker run exit 7: %v", r)
	}
	r = docker("run", "-d", "--runtime", "nos", "--network", "none", ref, "wait")
	if r.code != 0 {
		t.Fatalf("docker run -d: %v", r)
	}
	id := strings.TrimSpace(r.stdout)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(docker("logs", id).stdout, "waiting") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	// docker exec, through containerd's shim and nos-runtime exec.
	if r := docker("exec", "-e", "EXTRA=1", id, "/bin/ocihello", "info"); r.code != 0 || !strings.Contains(r.stdout, "marker=from the rootfs") || !strings.Contains(r.stdout, "EXTRA=1") {
		t.Errorf("docker exec info: %v", r)
		supervisorLogs(t, dir)
	}
	if r := docker("exec", id, "/bin/ocihello", "exit", "5"); r.code != 5 {
		t.Errorf("docker exec exit 5: %v", r)
		supervisorLogs(t, dir)
	}
	cmd := exec.Command(dockerClient(t), "exec", "-i", id, "/bin/ocihello", "cat")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
	cmd.Stdin = strings.NewReader("to exec\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "to exec\n\nEOF after 8 bytes err=<nil>") {
		t.Errorf("echo data | docker exec -i cat: %v\n%s", err, out)
	}
	if r := docker("stop", "-t", "60", id); r.code != 0 {
		t.Errorf("docker stop: %v", r)
	}
	if r := docker("inspect", "--format", "{{.State.ExitCode}} {{.HostConfig.Runtime}}", id); strings.TrimSpace(r.stdout) != "0 nos" {
		t.Errorf("exit code and runtime after stop: %v", r)
	}
	if r := docker("logs", id); !strings.Contains(r.stdout, "got SIGTERM") {
		t.Errorf("the app did not see SIGTERM: %v", r)
	}
	if r := docker("rm", id); r.code != 0 {
		t.Errorf("docker rm: %v", r)
	}
	// nos-runtime ran them: its initramfs cache is in the root dockerd
	// gave the runtime.
	if m, _ := filepath.Glob(filepath.Join(dir, "exec", "runtime-*", "moby", "initrd-*.cpio")); len(m) != 1 {
		e, _ := filepath.Glob(filepath.Join(dir, "exec", "*", "*"))
		t.Errorf("nos-runtime's root holds no initramfs: %v (exec root: %v)", m, e)
	}
	docker("rmi", ref)
}

// TestDockerNetworkNosRuntime: dockerd in a network namespace of the
// test's, with its default bridge network and iptables there: docker run
// -d -p of a nos-runtime container holding Debian's nginx serves the
// page at the published port (reached from inside that namespace), docker
// exec runs nginx -t in the VM, docker stop ends it with exit 0.
func TestDockerNetworkNosRuntime(t *testing.T) {
	needVM(t)
	t.Parallel()
	ns := fmt.Sprintf("nosdocker%d", os.Getpid())
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	dir := t.TempDir()
	host := startDockerdIn(t, ns, dir, runtimeBin(t), []string{"NOS_RUNTIME_KERNEL=" + ociKernel(t)})
	docker := func(args ...string) result {
		return runTool(t, []string{"DOCKER_HOST=" + host}, dockerClient(t), args...)
	}
	archive := filepath.Join(dir, "nginx.tar")
	const ref = "localhost/nos-nginx:test"
	imageArchive(t, archive, ref, nginxRootfs, "/usr/sbin/nginx", "-e", "stderr")
	if r := docker("load", "-i", archive); r.code != 0 {
		t.Fatalf("docker load: %v", r)
	}
	defer docker("rmi", "-f", ref)
	r := docker("run", "-d", "--runtime", "nos", "-p", "127.0.0.1:8080:80", ref)
	if r.code != 0 {
		t.Fatalf("docker run -d -p: %v", r)
	}
	id := strings.TrimSpace(r.stdout)
	defer docker("rm", "-f", id)
	var page result
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		page = runTool(t, nil, "ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:8080/")
		if page.code == 0 {
			break
		}
		if st := docker("inspect", "--format", "{{.State.Status}}", id); strings.TrimSpace(st.stdout) != "running" {
			t.Fatalf("the container is %s: %v", st.stdout, docker("logs", id))
		}
		time.Sleep(time.Second)
	}
	if page.stdout != nginxPage {
		t.Fatalf("no page at the published port: %v; logs: %v", page, docker("logs", id))
	}
	t.Logf("the container answered at the published port: %q", page.stdout)
	checkNginxContainer(t, "docker", docker, id)
}
