package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestGuestHostAccess: by default a guest reaches neither the host's
// loopback (through the user-mode gateway, which QEMU maps to it) nor the
// host's own addresses, while the outside stays reachable; --add-host
// NAME:host-gateway opens the host, --host-port only some of its ports;
// a guest on a private network reaches the outside but not the host.
// "The host" is a network namespace the test makes: its loopback and its
// own address 198.51.100.2 hold the listeners, and a second namespace
// behind a veth (198.51.100.1) plays the outside.
func TestGuestHostAccess(t *testing.T) {
	t.Parallel()
	e := netEnv(t)
	outer := e.outside()
	probe := t.TempDir() + "/probe"
	goBuild(t, probe, "amd64", "./e2e/testdata/probe")
	for _, s := range [][]string{
		{e.netns, "on the host", ":8080"},            // loopback and 198.51.100.2
		{e.netns, "loopback only", "127.0.0.1:8081"}, // what a host thinks private
		{outer, "hello from outside", "198.51.100.1:8080"},
	} {
		srv := exec.Command("ip", "netns", "exec", s[0], probe, "serve", s[1], s[2])
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	}
	if r := e.nos("network", "create", "--subnet", "10.91.5.0/24", "pub"); r.code != 0 {
		t.Fatalf("network create: %v", r)
	}

	const (
		gw      = "http://10.0.2.2:8080/"
		gwLo    = "http://10.0.2.2:8081/"
		own     = "http://198.51.100.2:8080/"
		outside = "http://198.51.100.1:8080/"
	)
	def := e.runDetached("probe", "fetch-loop", gw, gwLo, own, outside)
	opened := e.runDetached("--add-host", "hostbox:host-gateway", "probe", "fetch-loop", "http://hostbox:8081/", own)
	some := e.runDetached("--add-host", "hostbox:host-gateway", "--host-port", "8081", "probe", "fetch-loop", "http://hostbox:8081/", "http://hostbox:8080/")
	priv := e.runDetached("--network", "pub", "probe", "fetch-loop", "http://10.91.5.1:8080/", outside)

	logs := e.waitLog(def, `got `+outside+` hello from outside`, 3*time.Minute)
	logs = e.waitLog(def, `(?s)err `+gw+`.*err `+gwLo+`.*err `+own, time.Minute)
	if strings.Contains(logs, "got "+gw) || strings.Contains(logs, "got "+gwLo) || strings.Contains(logs, "got "+own) {
		t.Errorf("by default, the guest reached the host:\n%s", logs)
	}
	e.waitLog(opened, `got http://hostbox:8081/ loopback only`, 3*time.Minute)
	e.waitLog(opened, `got `+own+` on the host`, time.Minute)
	e.waitLog(some, `got http://hostbox:8081/ loopback only`, 3*time.Minute)
	logs = e.waitLog(some, `err http://hostbox:8080/`, time.Minute)
	if strings.Contains(logs, "got http://hostbox:8080/") {
		t.Errorf("--host-port 8081 opened port 8080 too:\n%s", logs)
	}
	e.waitLog(priv, `got `+outside+` hello from outside`, 3*time.Minute)
	logs = e.waitLog(priv, `err http://10.91.5.1:8080/`, time.Minute)
	if strings.Contains(logs, "got http://10.91.5.1:8080/") {
		t.Errorf("a guest on a private network reached the host through its gateway:\n%s", logs)
	}
	if tables, _ := e.inNS("nft", "list", "tables"); !strings.Contains(tables, "nos-g-"+def[:12]) || strings.Contains(tables, "nos-g-"+opened[:12]) {
		t.Errorf("want a guard table for the default instance and none for the open one:\n%s", tables)
	}

	// Bad input: one line, nothing made.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--add-host", "h:host-gateway", "--network", "pub"}, "private networks"},
		{[]string{"--host-port", "80"}, "add --add-host NAME:host-gateway"},
		{[]string{"--add-host", "h:nowhere"}, "not an IP address"},
		{[]string{"--add-host", "h:host-gateway", "--host-port", "99999"}, "not a port number"},
	} {
		r := e.nos(append(append([]string{"run", "-d", "--accel", accel}, c.args...), "probe", "exit", "0")...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, "nos: ") || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("nos run %v: want one line naming %q, got %v", c.args, c.want, r)
		}
	}
	if r := e.nos("ps", "-aq"); len(strings.Fields(r.stdout)) != 4 {
		t.Errorf("bad input made instances: %v", r)
	}
	for _, id := range []string{def, opened, some, priv} {
		if r := e.nos("rm", "-f", id); r.code != 0 {
			t.Errorf("rm: %v", r)
		}
	}
	if r := e.nos("network", "rm", "pub"); r.code != 0 {
		t.Errorf("network rm: %v", r)
	}
	if left := e.leftovers(); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestGuestHostAccessWithoutRoot: nos run by an unprivileged user has no
// jail user and no firewall to filter the hypervisor by; its guests go
// through passt, which does not map the gateway to the host's loopback:
// a listener on the (namespace's) loopback is out of the guest's reach
// unless the instance names the host with --add-host NAME:host-gateway,
// and the outside stays reachable. --host-port, which needs the firewall,
// is refused with one line. (The host's other addresses stay reachable
// without root: RELIABILITY.md says so.)
func TestGuestHostAccessWithoutRoot(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("passt"); err != nil {
		t.Fatal("passt is needed: apt-get install passt")
	}
	root := netEnv(t)
	outer := root.outside()
	probe := t.TempDir() + "/probe"
	goBuild(t, probe, "amd64", "./e2e/testdata/probe")
	for _, s := range [][]string{
		{root.netns, "on the host", ":8080"},
		{root.netns, "loopback only", "127.0.0.1:8081"},
		{outer, "hello from outside", "198.51.100.1:8080"},
	} {
		srv := exec.Command("ip", "netns", "exec", s[0], probe, "serve", s[1], s[2])
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	}

	// A user of its own, a home it owns, the image handed over as an
	// archive (nos save, nos load).
	const uid = "4271"
	home, err := os.MkdirTemp("", "nos-e2e-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	archive := home + "/probe.tar"
	if r := root.nos("save", "-o", archive, "probe"); r.code != 0 {
		t.Fatalf("save: %v", r)
	}
	if out, err := exec.Command("chown", "-R", uid+":"+uid, home).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	if err := os.Chmod(binDir, 0o755); err != nil { // the user runs the test's nos
		t.Fatal(err)
	}
	e := &nosEnv{t: t, home: home + "/nos", netns: root.netns,
		asUser: []string{"setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--"},
		env:    append(envWithout("NOS_HOME", "HOME"), "NOS_HOME="+home+"/nos", "HOME="+home)}
	if r := e.nos("load", "-i", archive); r.code != 0 {
		t.Fatalf("load as uid %s: %v", uid, r)
	}
	t.Cleanup(func() {
		if r := e.nos("ps", "-aq"); r.code == 0 {
			for _, id := range strings.Fields(r.stdout) {
				e.nos("rm", "-f", id)
			}
		}
	})

	const (
		gw      = "http://10.0.2.2:8080/"
		gwLo    = "http://10.0.2.2:8081/"
		outside = "http://198.51.100.1:8080/"
	)
	def := e.runDetached("probe", "fetch-loop", gw, gwLo, outside)
	opened := e.runDetached("--add-host", "hostbox:host-gateway", "probe", "fetch-loop", "http://hostbox:8081/")
	e.waitLog(def, `got `+outside+` hello from outside`, 3*time.Minute)
	logs := e.waitLog(def, `(?s)err `+gw+`.*err `+gwLo, time.Minute)
	if strings.Contains(logs, "got "+gw) || strings.Contains(logs, "got "+gwLo) {
		t.Errorf("without root, the guest reached the host's loopback:\n%s", logs)
	}
	e.waitLog(opened, `got http://hostbox:8081/ loopback only`, 3*time.Minute)
	for _, id := range []string{def, opened} {
		if r := e.nos("inspect", "-f", "{{.Config.UserProxy}} {{.Config.JailUID}}", id); strings.TrimSpace(r.stdout) != "passt 0" {
			t.Errorf("want passt and no jail user, got %v", r)
		}
	}
	if r := e.nos("inspect", def); !strings.Contains(r.stdout, "cannot reach the host's loopback") {
		t.Errorf("inspect: want the note on what the guest can reach: %v", r)
	}
	r := e.nos("run", "-d", "--accel", accel, "--add-host", "h:host-gateway", "--host-port", "8081", "probe", "exit", "0")
	if r.code == 0 || !strings.HasPrefix(r.stderr, "nos: ") || !strings.Contains(r.stderr, "needs nos run as root") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("--host-port without root: want one line, got %v", r)
	}
	for _, id := range []string{def, opened} {
		if r := e.nos("rm", "-f", id); r.code != 0 {
			t.Errorf("rm: %v", r)
		}
	}
	// The monitors, QEMU and passt end shortly after rm.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-a", "-u", uid).CombinedOutput()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("processes of uid %s left 20 s after rm: %s", uid, out)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
}
