package e2e

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestHostDirectories: a read-write share shows the guest's writes on the
// host byte for byte; a read-only one refuses writes in the host's kernel,
// even after the guest (given CAP_SYS_ADMIN) remounts it read-write; the
// guest reaches nothing outside the shared directory by symbolic links,
// "..", hard links or renames; and no virtiofsd outlives the instance.
func TestHostDirectories(t *testing.T) {
	t.Parallel()
	e := volumeEnv(t)
	base := t.TempDir()
	rw, ro, outside := filepath.Join(base, "rw"), filepath.Join(base, "ro"), filepath.Join(base, "outside")
	for _, d := range []string{rw, ro, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(outside, "secret.txt")
	writeFile(t, secret, "SECRET of the host\n", 0o644)
	writeFile(t, filepath.Join(rw, "in.txt"), "host rw\n", 0o644)
	writeFile(t, filepath.Join(ro, "in.txt"), "host ro\n", 0o644)
	if err := os.Symlink(secret, filepath.Join(rw, "abs-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside/secret.txt", filepath.Join(rw, "rel-link")); err != nil {
		t.Fatal(err)
	}

	r := e.run("--rm", "--cap-add", "SYS_ADMIN", "-v", rw+":/rw", "--mount", "type=bind,source="+ro+",target=/ro,readonly", "kv", "share", "/rw", "/ro", secret)
	if r.code != 0 {
		t.Fatalf("run: %v", r)
	}
	got := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(l, "check "), ": "); ok && strings.HasPrefix(l, "check ") {
			got[k] = v
		}
	}
	if strings.Contains(r.stdout, "SECRET") {
		t.Errorf("the guest read the host's file outside the share:\n%s", r.stdout)
	}
	for k, want := range map[string]string{
		"abs-link": "ENOENT", "rel-link": "ENOENT", "dotdot": "ENOENT", "outside-path": "ENOENT",
		"hardlink-in": "EXDEV", "hardlink-out": "EXDEV", "rename-out": "EXDEV",
		"rw-write": "ok",
		"ro-write": "EROFS", "ro-create": "EROFS",
		// The guest's own read-only flag is gone: what refuses now is
		// the host's read-only bind mount under virtiofsd.
		"ro-remount": "ok", "ro-write-after-remount": "EROFS", "ro-unlink-after-remount": "EROFS",
		"ro-read": `read "host ro\n"`,
	} {
		if got[k] != want {
			t.Errorf("check %s: got %q, want %q", k, got[k], want)
		}
	}
	if t.Failed() {
		t.Fatalf("guest output:\n%s\n%s", r.stdout, r.stderr)
	}
	// The guest's write, on the host, byte for byte.
	b, err := os.ReadFile(filepath.Join(rw, "from-guest.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if c := fmt.Sprintf("%08x", crc32.ChecksumIEEE(b)); c != got["rw-crc"] || len(b) != 1<<20+123 {
		t.Errorf("the guest wrote %s (%d bytes), the host reads %s", got["rw-crc"], 1<<20+123, c)
	}
	if fi, err := os.Stat(filepath.Join(rw, "from-guest.dat")); err != nil || fi.Mode().Perm() != 0o640 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the guest's file on the host: %v %v", fi, err)
	}
	for p, want := range map[string]string{filepath.Join(ro, "in.txt"): "host ro\n", filepath.Join(rw, "in.txt"): "host rw\n", secret: "SECRET of the host\n"} {
		if b, err := os.ReadFile(p); err != nil || string(b) != want {
			t.Errorf("%s after the run: %q, %v; want %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(ro, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("the read-only share gained a file: %v", err)
	}
	noDaemonFor(t, base)

	// A detached instance: the share is live (the host sees the guest's
	// file while it runs), inspect and ps show it, and its daemon ends
	// with the instance.
	id := e.runDetached("--name", "shares", "-v", rw+":/data", "kv", "files", "/data", "live.txt")
	e.waitApp(id, 1)
	if b, err := os.ReadFile(filepath.Join(rw, "live.txt")); err != nil || !strings.HasPrefix(string(b), "written by 0") {
		t.Errorf("the running guest's write, on the host: %q, %v", b, err)
	}
	if logs := e.logs(id); !strings.Contains(logs, "file /data/in.txt 0:0 644 8") {
		t.Errorf("the guest's listing of the share lacks the host's file:\n%s", logs)
	}
	r = e.nos("inspect", "--format", "{{range .Mounts}}{{.Type}} {{.Destination}} {{.Mode}} {{.Source}}{{end}}", "shares")
	if want := "bind /data rw " + rw; r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Errorf("inspect's mounts: %v, want %q", r, want)
	}
	if r := e.nos("ps", "--format", "{{.Names}} {{.Mounts}}"); !strings.Contains(r.stdout, "shares "+rw+":/data") {
		t.Errorf("ps {{.Mounts}}: %v", r)
	}
	if r := e.nos("stop", id); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	noDaemonFor(t, base)
}

// noDaemonFor fails t if a virtiofsd serving a directory under base runs.
func noDaemonFor(t *testing.T, base string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if c, _ := os.ReadFile(p); bytes.Contains(c, []byte("virtiofsd")) && bytes.Contains(c, []byte(base)) {
			t.Errorf("a virtiofsd outlived its instance: %s: %q", p, c)
		}
	}
}
