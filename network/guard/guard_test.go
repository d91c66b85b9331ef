package guard

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nosproject/nos/internal/netnstest"
)

// inNetns runs f on a locked thread inside a new network namespace (lo
// up, holding 198.51.100.7 too: this machine's kernel has no dummy links), so nothing touches the
// host's own firewall.
func inNetns(t *testing.T, f func()) {
	t.Helper()
	netnstest.Run(t, func() {
		for _, c := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"ip", "addr", "add", "198.51.100.7/32", "dev", "lo"},
		} {
			if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v: %s", c, err, out)
			}
		}
		f()
	})
}

const jailUID = 0x7000fff0

// serve answers "ok" on addr:0 and returns the port.
func serve(t *testing.T, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	return l.Addr().(*net.TCPAddr).Port
}

// fetch GETs url with curl as uid and says whether it answered.
func fetch(t *testing.T, uid uint32, url string) bool {
	t.Helper()
	c := exec.Command("curl", "-sS", "--max-time", "3", url)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, err := c.CombinedOutput()
	return err == nil && string(out) == "ok"
}

func TestGuardRejectsLocalAddresses(t *testing.T) {
	inNetns(t, func() {
		lo := serve(t, "127.0.0.1")
		own := serve(t, "198.51.100.7")
		urls := []string{fmt.Sprintf("http://127.0.0.1:%d/", lo), fmt.Sprintf("http://198.51.100.7:%d/", own)}
		for _, u := range urls {
			if !fetch(t, jailUID, u) {
				t.Fatalf("without a guard, uid %d cannot fetch %s: the test's set-up is wrong", jailUID, u)
			}
		}
		s := Spec{Table: TableName("0123456789abcdef"), UID: jailUID}
		for range 2 { // replacing is idempotent
			if err := Apply(s); err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range urls {
			if fetch(t, jailUID, u) {
				t.Errorf("the guard let uid %d fetch %s", jailUID, u)
			}
			if !fetch(t, jailUID+1, u) {
				t.Errorf("the guard kept another user from %s", u)
			}
		}
		start := time.Now()
		fetch(t, jailUID, urls[0])
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("a rejected connection took %v: want a reset, not a timeout", d)
		}
		// A port opened to the guest, on every local address.
		s.Ports = []uint16{uint16(own)}
		if err := Apply(s); err != nil {
			t.Fatal(err)
		}
		if !fetch(t, jailUID, urls[1]) || fetch(t, jailUID, urls[0]) {
			t.Errorf("with port %d open: want %s reachable and %s not", own, urls[1], urls[0])
		}
		if ts, err := Tables(); err != nil || !slices.Equal(ts, []string{s.Table}) {
			t.Errorf("Tables() = %v, %v", ts, err)
		}
		if err := Remove(s.Table); err != nil {
			t.Fatal(err)
		}
		if err := Remove(s.Table); err != nil {
			t.Fatalf("removing a missing table: %v", err)
		}
		if ts, _ := Tables(); len(ts) != 0 {
			t.Errorf("after Remove: %v", ts)
		}
	})
}

// TestGuardKeepsPublishedPorts: a server run as the jail user (QEMU's
// hostfwd listener) still answers clients on the host's loopback.
func TestGuardKeepsPublishedPorts(t *testing.T) {
	inNetns(t, func() {
		if err := Apply(Spec{Table: TableName("published"), UID: jailUID}); err != nil {
			t.Fatal(err)
		}
		// A directory the jail user can read (t.TempDir's parent is 0700).
		dir, err := os.MkdirTemp("", "nos-guard-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("ok"), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		srv := exec.Command("/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, fmt.Sprint(port))
		srv.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: jailUID, Gid: jailUID}}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { srv.Process.Kill(); srv.Wait() }()
		url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
		for deadline := time.Now().Add(10 * time.Second); ; {
			if fetch(t, 0, url) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a server run as the jail user does not answer %s", url)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// TestGuardAllowsNameservers: the host's resolver on a local address
// stays reachable on port 53 (slirp forwards the guest's DNS to it).
func TestGuardAllowsNameservers(t *testing.T) {
	inNetns(t, func() {
		l, err := net.Listen("tcp", "127.0.0.53:53")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("dns\n"))
				c.Close()
			}
		}()
		if err := Apply(Spec{Table: TableName("dns"), UID: jailUID, Nameservers: []netip.Addr{netip.MustParseAddr("127.0.0.53")}}); err != nil {
			t.Fatal(err)
		}
		c := exec.Command("curl", "-sS", "--max-time", "3", "telnet://127.0.0.53:53")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: jailUID, Gid: jailUID}}
		out, _ := c.CombinedOutput()
		if !strings.Contains(string(out), "dns") {
			t.Errorf("the nameserver is not reachable through the guard: %q", out)
		}
	})
}
