package e2e

import (
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

	"github.com/nosproject/nos/assemble/elfdeps"
	"github.com/nosproject/nos/internal/fsutil"
)

// nos-runtime's networking: the container's network namespace (an
// engine's veth with the container's address) becomes the VM's NIC.

// httpRootfs makes a rootfs holding the example HTTP server, static, as
// /bin/httpserver.
func httpRootfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "httpserver"), "./examples/httpserver")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building httpserver: %v\n%s", err, out)
	}
}

// containerNginxConf is nginxConf as a container's root runs it: on 80,
// its workers as nobody, logging at notice (the signals it gets).
var containerNginxConf = strings.NewReplacer("listen 8080;", "listen 80;", "error_log stderr;", "error_log stderr notice;").Replace(nginxConf)

// nginxPage is what nginxRootfs serves at /.
const nginxPage = "<h1>nginx in a nos-runtime microVM</h1>\n"

// nginxRootfs makes a container root holding the host's (Debian's) nginx
// and the libraries it loads, found as nos build finds them, a
// configuration, a page, and the passwd and group entries of its
// workers' user.
func nginxRootfs(t *testing.T, dir string) {
	t.Helper()
	nginx := needProgram(t, "/usr/sbin/nginx")
	res, err := elfdeps.Resolve(nginx, elfdeps.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Files {
		dst := filepath.Join(dir, f.GuestPath)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if f.Symlink != "" {
			if err := os.Symlink(f.Symlink, dst); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := fsutil.CopyFile(f.HostPath, dst, f.Mode.Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tmp", "srv/www", "etc/nginx", "var/log/nginx", "var/lib/nginx"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "etc/nginx/nginx.conf"), containerNginxConf, 0o644)
	writeFile(t, filepath.Join(dir, "srv/www/index.html"), nginxPage, 0o644)
	writeFile(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", 0o644)
	writeFile(t, filepath.Join(dir, "etc/group"), "root:x:0:\nnogroup:x:65534:\n", 0o644)
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// TestOCIRuntimeNetwork: a namespace made as podman makes one (a veth
// with the container's address and a default route, its peer in a second
// namespace standing for the engine's bridge); create/start of a bundle
// naming it runs an HTTP server the peer's side reaches at the veth's
// address; after delete the namespace holds no tap and no redirect.
func TestOCIRuntimeNetwork(t *testing.T) {
	needVM(t)
	t.Parallel()
	ctr, peer := fmt.Sprintf("nosrt-c%d", os.Getpid()), fmt.Sprintf("nosrt-p%d", os.Getpid())
	for _, ns := range []string{ctr, peer} {
		ipCmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}
	// Made inside the container's namespace, the peer moved to the other
	// one: the host's own interfaces are never touched.
	ipCmd(t, "-n", ctr, "link", "add", "eth0", "type", "veth", "peer", "name", "br0", "netns", peer)
	ipCmd(t, "-n", ctr, "addr", "add", "192.0.2.2/24", "dev", "eth0")
	ipCmd(t, "-n", ctr, "link", "set", "eth0", "up")
	ipCmd(t, "-n", ctr, "route", "add", "default", "via", "192.0.2.1")
	ipCmd(t, "-n", peer, "addr", "add", "192.0.2.1/24", "dev", "br0")
	ipCmd(t, "-n", peer, "link", "set", "br0", "up")

	b := t.TempDir()
	httpRootfs(t, filepath.Join(b, "rootfs"))
	resolv := filepath.Join(b, "resolv.conf")
	writeFile(t, resolv, "nameserver 192.0.2.1\n", 0o644)
	cfg := map[string]any{
		"ociVersion": "1.0.2",
		"root":       map[string]any{"path": "rootfs"},
		"hostname":   "netctr",
		"process": map[string]any{
			"args": []string{"/bin/httpserver"}, "cwd": "/",
			"env":  []string{"PATH=/bin", "GREETING=hello over the veth"},
			"user": map[string]any{"uid": 0, "gid": 0},
		},
		"mounts": []map[string]any{{"destination": "/etc/resolv.conf", "type": "bind", "source": resolv, "options": []string{"bind", "ro"}}},
		"linux": map[string]any{
			"namespaces": []map[string]any{{"type": "pid"}, {"type": "network", "path": "/run/netns/" + ctr}},
			"resources":  map[string]any{"memory": map[string]any{"limit": 128 << 20}},
		},
	}
	b2, _ := json.Marshal(cfg)
	writeFile(t, filepath.Join(b, "config.json"), string(b2), 0o644)

	curl := fmt.Sprintf(`for i in $(seq 150); do if ip netns exec %s curl -sS -m 3 http://192.0.2.2:8080/ 2>/dev/null; then exit 0; fi; grep -q nos-runtime: %s && exit 2; sleep 1; done; exit 1`, peer, filepath.Join(b, "app.out"))
	tr, app := lifecycle(t, b, "net1", "create", "start", "sh:"+curl,
		"sh:ip netns exec "+ctr+" tc filter show dev eth0 ingress",
		"sh:ip netns exec "+peer+" ip neigh show 192.0.2.2",
		"kill:TERM", "wait", "delete")
	if !strings.Contains(tr, "sh: err=<nil> hello over the veth\nhost: netctr") {
		t.Errorf("the peer's side did not reach the app at the veth's address")
	}
	if !strings.Contains(tr, "mirred") || !strings.Contains(tr, "nos-tap0") {
		t.Errorf("no mirred redirect to the tap while the container ran")
	}
	if !strings.Contains(app, "listening on :8080") {
		t.Errorf("the app did not start")
	}
	// nos-init wrote the bundle's name servers into the (shared) root.
	if rc, _ := os.ReadFile(filepath.Join(b, "rootfs", "etc", "resolv.conf")); !strings.Contains(string(rc), "nameserver 192.0.2.1") {
		t.Errorf("the guest's resolv.conf: %q", rc)
	}
	// The peer learned the veth's MAC for the guest's address: the NIC has it.
	mac, _ := exec.Command("ip", "-n", ctr, "-br", "link", "show", "eth0").CombinedOutput()
	if f := strings.Fields(string(mac)); len(f) < 3 || !strings.Contains(tr, f[2]) {
		t.Errorf("the guest's MAC is not the veth's (%s)", mac)
	}
	if out, err := exec.Command("ip", "-n", ctr, "link", "show", "nos-tap0").CombinedOutput(); err == nil {
		t.Errorf("the tap is left after delete: %s", out)
	}
	if out, _ := exec.Command("ip", "netns", "exec", ctr, "tc", "qdisc", "show", "dev", "eth0", "ingress").CombinedOutput(); strings.Contains(string(out), "ingress") {
		t.Errorf("the ingress qdisc is left after delete: %s", out)
	}
	if out, _ := exec.Command("ip", "-n", ctr, "-4", "addr", "show", "eth0").CombinedOutput(); !strings.Contains(string(out), "192.0.2.2/24") {
		t.Errorf("the veth lost its address: %s", out)
	}
}

// TestPodmanNetworkNosRuntime: rootful podman with netavark's bridge
// network publishes port 80 of a nos-runtime container holding Debian's
// nginx on loopback (netavark's DNAT to the container's address, which
// the VM answers at): curl from the host gets the page; podman exec runs
// nginx -t in the running VM; podman stop ends it gracefully (nginx logs
// the SIGTERM, exit 0).
func TestPodmanNetworkNosRuntime(t *testing.T) {
	needVM(t)
	t.Parallel()
	pm, tarball := newPodmanRig(t, nginxRootfs)
	podman := pm.run
	const image = "localhost/nos-nginx:test"
	if r := podman("import", "--change", `ENTRYPOINT ["/usr/sbin/nginx","-e","stderr"]`, tarball, image); r.code != 0 {
		t.Fatalf("import: %v", r)
	}
	defer podman("rmi", "-f", image)
	port := freePort(t)
	r := podman("run", "-d", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), image)
	if r.code != 0 {
		t.Fatalf("podman run -d -p: %v", r)
	}
	id := strings.TrimSpace(r.stdout)
	defer podman("rm", "-f", id)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var body string
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		c := http.Client{Timeout: 3 * time.Second}
		if resp, err := c.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if st := podman("inspect", "--format", "{{.State.Status}}", id); strings.TrimSpace(st.stdout) != "running" {
			t.Fatalf("the container is %s: %v", st.stdout, podman("logs", id))
		}
		time.Sleep(time.Second)
	}
	if body != nginxPage {
		t.Fatalf("no page at %s: %q; logs: %v", url, body, podman("logs", id))
	}
	t.Logf("the container answered at %s: %q", url, body)
	checkNginxContainer(t, "podman", podman, id)
	if r := podman("rm", id); r.code != 0 {
		t.Errorf("podman rm: %v", r)
	}
}

// checkNginxContainer: in the running nginx container id, the engine's
// exec runs nginx -t in the VM; stop ends it gracefully (nginx logs the
// SIGTERM, exit code 0).
func checkNginxContainer(t *testing.T, engine string, cli func(args ...string) result, id string) {
	t.Helper()
	ip := cli("inspect", "--format", "{{.NetworkSettings.IPAddress}}", id)
	t.Logf("%s: the container's address is %s", engine, strings.TrimSpace(ip.stdout))
	if r := cli("exec", id, "/usr/sbin/nginx", "-t", "-e", "stderr"); r.code != 0 || !strings.Contains(r.stderr, "syntax is ok") {
		t.Errorf("%s exec nginx -t: %v", engine, r)
	}
	if r := cli("stop", "-t", "60", id); r.code != 0 {
		t.Errorf("%s stop: %v", engine, r)
	}
	if r := cli("inspect", "--format", "{{.State.ExitCode}}", id); strings.TrimSpace(r.stdout) != "0" {
		t.Errorf("%s: exit code after stop: %v", engine, r)
	}
	if r := cli("logs", id); !strings.Contains(r.stderr+r.stdout, "signal 15 (SIGTERM) received") {
		t.Errorf("%s: nginx did not see SIGTERM: %v", engine, r)
	}
}
