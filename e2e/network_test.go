package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// netEnv is a nos home whose commands run in a network namespace the
// test makes (and removes): bridges, taps, nftables tables, QEMU and the
// resolvers live there, and no traffic leaves it.
func netEnv(t *testing.T) *nosEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the network tests need root: they make network namespaces, bridges and taps")
	}
	e := newEnv(t)
	ns := fmt.Sprintf("nos-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Whatever the test left: instances first (their monitors run in
		// the namespace), then the namespace.
		if r := e.nos("ps", "-aq"); r.code == 0 {
			for _, id := range strings.Fields(r.stdout) {
				e.nos("rm", "-f", id)
			}
		}
		exec.Command("ip", "netns", "del", ns).Run()
	})
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	e.netns = ns
	e.build("probe", "./e2e/testdata/probe")
	return e
}

// outside makes a second namespace behind a veth, the outside world of
// e's namespace: 198.51.100.1 there, 198.51.100.2 on e's side. It is
// removed when the test ends.
func (e *nosEnv) outside() string {
	t := e.t
	t.Helper()
	outer := e.netns + "-out"
	if out, err := exec.Command("ip", "netns", "add", outer).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", outer).Run() })
	for _, c := range [][]string{
		{"ip", "netns", "exec", e.netns, "ip", "link", "add", "vout0", "type", "veth", "peer", "name", "vout1", "netns", outer},
		{"ip", "netns", "exec", e.netns, "ip", "addr", "add", "198.51.100.2/24", "dev", "vout0"},
		{"ip", "netns", "exec", e.netns, "ip", "link", "set", "vout0", "up"},
		{"ip", "netns", "exec", outer, "ip", "addr", "add", "198.51.100.1/24", "dev", "vout1"},
		{"ip", "netns", "exec", outer, "ip", "link", "set", "vout1", "up"},
		{"ip", "netns", "exec", outer, "ip", "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	return outer
}

// inNS runs a command in e's namespace.
func (e *nosEnv) inNS(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", e.netns}, args...)...).CombinedOutput()
	return string(out), err
}

// waitLog waits until the instance's output matches pattern.
func (e *nosEnv) waitLog(ref, pattern string, timeout time.Duration) string {
	e.t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := e.logs(ref); re.MatchString(l) {
			return l
		}
		time.Sleep(500 * time.Millisecond)
	}
	e.dump(ref)
	e.t.Fatalf("instance %s: no output matching %q in %v", ref, pattern, timeout)
	return ""
}

// leftovers lists what nos made in the namespace and still exists:
// interfaces named nos-*, nftables tables named nos-*, resolvers of e's
// home.
func (e *nosEnv) leftovers() []string {
	e.t.Helper()
	var out []string
	links, err := e.inNS("ip", "-o", "link")
	if err != nil {
		e.t.Fatalf("ip link: %v: %s", err, links)
	}
	for _, l := range strings.Split(links, "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], "nos-") {
			out = append(out, "link "+strings.TrimSuffix(f[1], ":"))
		}
	}
	tables, err := e.inNS("nft", "list", "tables")
	if err != nil {
		e.t.Fatalf("nft list tables: %v: %s", err, tables)
	}
	for _, l := range strings.Split(tables, "\n") {
		if strings.Contains(l, " nos-") {
			out = append(out, l)
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		c, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
		if s := string(c); strings.Contains(s, "__dns") && strings.Contains(s, e.home) {
			out = append(out, "resolver "+strings.ReplaceAll(s, "\x00", " "))
		}
	}
	return out
}

// TestPrivateNetworks: instances on a network find each other by name and
// by alias, a name resolves for an instance started after its client and
// stops resolving when it is removed; an instance on two networks reaches
// both, one on a third reaches neither; -p publishes a port of an
// instance on a private network; nothing is left behind.
func TestPrivateNetworks(t *testing.T) {
	t.Parallel()
	e := netEnv(t)
	for _, n := range []string{"front", "back", "other"} {
		if r := e.nos("network", "create", n); r.code != 0 {
			t.Fatalf("network create %s: %v", n, r)
		}
	}
	// The client asks for "server" before there is one.
	lookup := e.runDetached("--network", "front", "--name", "asker", "probe", "lookup-loop", "server")
	e.waitLog(lookup, `lookup server err`, 3*time.Minute)

	port := strconv.Itoa(20000 + os.Getpid()%20000)
	server := e.runDetached("--network", "front", "--name", "server", "--network-alias", "web", "-p", "127.0.0.1:"+port+":8080", "probe", "serve", "hello from front")
	backsrv := e.runDetached("--network", "back", "--name", "backsrv", "probe", "serve", "hello from back")
	e.waitApp(server, 1)
	e.waitApp(backsrv, 1)
	srvIP := e.inspect(server).Config.Networks[0].Addr

	// A name that appeared after the client resolves.
	e.waitLog(lookup, `lookup server `+regexp.QuoteMeta(srvIP), time.Minute)
	// By name and by alias, and across two networks.
	multi := e.runDetached("--network", "front", "--network", "back", "--name", "multi", "probe", "fetch-loop", "http://web:8080/", "http://server:8080/", "http://backsrv:8080/")
	e.waitLog(multi, `got http://web:8080/ hello from front`, 3*time.Minute)
	e.waitLog(multi, `got http://server:8080/ hello from front`, time.Minute)
	e.waitLog(multi, `got http://backsrv:8080/ hello from back`, time.Minute)
	// An instance on another network reaches neither by name nor by address.
	outsider := e.runDetached("--network", "other", "--name", "outsider", "probe", "fetch-loop", "http://server:8080/", "http://"+srvIP+":8080/")
	logs := e.waitLog(outsider, `err http://`+regexp.QuoteMeta(srvIP)+`:8080/`, 3*time.Minute)
	if strings.Contains(logs, "hello from") {
		t.Errorf("an instance on another network reached the server:\n%s", logs)
	}
	if !strings.Contains(logs, "err http://server:8080/") {
		t.Errorf("the server's name resolved on another network:\n%s", logs)
	}
	// The published port, from the namespace's loopback.
	if out, err := e.inNS("curl", "-sS", "--max-time", "10", "http://127.0.0.1:"+port+"/"); err != nil || out != "hello from front" {
		t.Errorf("curl of the published port: %q, %v", out, err)
	}
	// inspect and network inspect agree on the address.
	if r := e.nos("network", "inspect", "--format", "{{range .Containers}}{{.Name}}={{.IPv4Address}} {{end}}", "front"); !strings.Contains(r.stdout, "server="+srvIP+"/24") {
		t.Errorf("network inspect: %v", r)
	}
	// Removing the server makes its name stop resolving.
	if r := e.nos("rm", "-f", server); r.code != 0 {
		t.Fatal(r)
	}
	before := strings.Count(e.logs(lookup), "lookup server err")
	waitFor(t, "the removed server's name to stop resolving", time.Minute, func() bool {
		return strings.Count(e.logs(lookup), "lookup server err") > before+1
	})
	// network rm refuses a network with instances, then cleans up.
	if r := e.nos("network", "rm", "front"); r.code == 0 || !strings.Contains(r.stderr, "asker") {
		t.Errorf("network rm of a network in use: %v", r)
	}
	for _, id := range []string{lookup, backsrv, multi, outsider} {
		e.nos("rm", "-f", id)
	}
	for _, n := range []string{"front", "back", "other"} {
		if r := e.nos("network", "rm", n); r.code != 0 {
			t.Errorf("network rm %s: %v", n, r)
		}
	}
	if left := e.leftovers(); len(left) > 0 {
		t.Errorf("left behind after rm -f and network rm: %v", left)
	}

	// A killed monitor: its QEMU dies with it and the tap with QEMU;
	// system prune removes the instance, its lease and the network.
	if r := e.nos("network", "create", "--subnet", "10.91.0.0/24", "crash"); r.code != 0 {
		t.Fatal(r)
	}
	id := e.runDetached("--network", "crash", "--ip", "10.91.0.50", "probe", "serve", "x")
	e.waitApp(id, 1)
	if got := e.inspect(id).Config.Networks[0].Addr; got != "10.91.0.50" {
		t.Errorf("--ip 10.91.0.50: got %s", got)
	}
	mon := e.inspect(id).State.MonitorPID
	if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the monitor to die", time.Minute, func() bool { return !e.inspect(id).MonitorAlive })
	if r := e.nos("system", "prune"); r.code != 0 || !strings.Contains(r.stdout, "Removed network crash") {
		t.Errorf("system prune: %v", r)
	}
	waitFor(t, "nothing of nos left in the namespace", 30*time.Second, func() bool { return len(e.leftovers()) == 0 })
}

// TestNetworkBadInput: each mistake is one line and changes nothing.
func TestNetworkBadInput(t *testing.T) {
	t.Parallel()
	e := netEnv(t)
	if r := e.nos("network", "create", "--subnet", "10.92.0.0/16", "taken"); r.code != 0 {
		t.Fatal(r)
	}
	id := e.runDetached("--network", "taken", "--ip", "10.92.0.9", "probe", "serve", "x")
	before := e.nos("network", "inspect", "taken").stdout
	for _, args := range [][]string{
		{"network", "create", "--subnet", "10.92.3.0/24", "overlap"},
		{"network", "create", "--subnet", "10.93.0.0/24", "--gateway", "10.94.0.1", "badgw"},
		{"network", "create", "--subnet", "nonsense", "bad"},
		{"network", "create", "taken"},
		{"network", "create", "none"},
		{"network", "rm", "nosuch"},
		{"run", "--accel", accel, "--network", "nosuch", "probe", "exit", "0"},
		{"run", "--accel", accel, "--network", "taken", "--ip", "10.99.0.5", "probe", "exit", "0"},
		{"run", "--accel", accel, "--network", "taken", "--ip", "10.92.0.9", "probe", "exit", "0"},
		{"run", "--accel", accel, "--ip", "10.92.0.10", "probe", "exit", "0"},
		{"run", "--accel", accel, "--network", "none", "-p", "8080:8080", "probe", "exit", "0"},
		{"network", "rm", "taken"},
	} {
		r := e.nos(args...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, "nos: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("nos %s: want one `nos: ` line and a failure, got %v", strings.Join(args, " "), r)
		}
	}
	if after := e.nos("network", "inspect", "taken").stdout; after != before {
		t.Errorf("bad input changed the network:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if r := e.nos("network", "ls", "--format", "{{.Name}}"); strings.TrimSpace(r.stdout) != "taken" {
		t.Errorf("network ls after bad input: %v", r)
	}
	// Without privileges (a home and a nos binary of nobody's own): one
	// line naming them and the default networking.
	nobody, err := os.MkdirTemp("", "nos-e2e-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(nobody) })
	b, err := os.ReadFile(nosBin)
	if err != nil || os.WriteFile(nobody+"/nos", b, 0o755) != nil || os.Chown(nobody, 65534, 65534) != nil {
		t.Fatal("preparing nobody's nos", err)
	}
	r, err := exec.Command("ip", "netns", "exec", e.netns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "env", "NOS_HOME="+nobody+"/home", nobody+"/nos", "network", "create", "unpriv").CombinedOutput()
	if err == nil || !strings.Contains(string(r), "CAP_NET_ADMIN") || !strings.Contains(string(r), "user-mode") || strings.Count(strings.TrimSpace(string(r)), "\n") != 0 {
		t.Errorf("network create without privileges: %v: %s", err, r)
	}
	e.nos("rm", "-f", id)
}

// TestNetworkOutboundNAT: an instance on a network reaches a server
// outside through the host's masquerade, and one on an --internal network
// does not. "Outside" is a second namespace the test makes, joined to the
// first by a veth pair (198.51.100.0/24, TEST-NET-2): nothing leaves the
// test's namespaces.
func TestNetworkOutboundNAT(t *testing.T) {
	t.Parallel()
	e := netEnv(t)
	outer := e.outside()
	probe := t.TempDir() + "/probe"
	goBuild(t, probe, "amd64", "./e2e/testdata/probe")
	srv := exec.Command("ip", "netns", "exec", outer, probe, "serve", "hello from outside")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })

	// A subnet the namespace already routes (vout0's) is refused.
	if r := e.nos("network", "create", "--subnet", "198.51.100.128/25", "clash"); r.code == 0 || !strings.Contains(r.stderr, "198.51.100.0/24") {
		t.Errorf("a subnet overlapping a host route: %v", r)
	}
	for _, c := range [][]string{{"network", "create", "pub"}, {"network", "create", "--internal", "priv"}} {
		if r := e.nos(c...); r.code != 0 {
			t.Fatalf("%v: %v", c, r)
		}
	}
	out := e.runDetached("--network", "pub", "probe", "fetch-loop", "http://198.51.100.1:8080/")
	in := e.runDetached("--network", "priv", "probe", "fetch-loop", "http://198.51.100.1:8080/")
	e.waitLog(out, `got http://198.51.100.1:8080/ hello from outside`, 3*time.Minute)
	logs := e.waitLog(in, `err http://198.51.100.1:8080/`, 3*time.Minute)
	if strings.Contains(logs, "hello from outside") {
		t.Errorf("an instance on an internal network reached the outside:\n%s", logs)
	}
}
