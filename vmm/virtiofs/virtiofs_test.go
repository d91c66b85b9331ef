package virtiofs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The test binary is also the read-only helper, as nos is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == HelperVerb {
		err := RunHelper(os.Args[2:])
		os.Stdout.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestArgs(t *testing.T) {
	want := []string{"--fd=3", "-o", `source=/srv/a\,b\\c`, "-o", "sandbox=namespace", "-o", "cache=auto", "-o", "no_posix_lock", "-o", "no_flock", "-o", "modcaps=-mknod:-setfcap", "-o", "log_level=warn", "--rlimit-nofile=65536"}
	if diff := cmp.Diff(want, Args(3, Share{Source: `/srv/a,b\c`})); diff != "" {
		t.Errorf("Args (-want +got):\n%s", diff)
	}
}

// TestReadOnlyHelperEnforcesOnTheHost: what the helper execs (virtiofsd in
// nos; touch here) cannot write in the shared directory, and the read-only
// mount stays in the helper's namespace: the host still writes there.
func TestReadOnlyHelperEnforcesOnTheHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the read-only helper test needs root: it makes a mount namespace (CI runs as root)")
	}
	touch, err := exec.LookPath("touch")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], HelperVerb, dir, touch, filepath.Join(dir, "from-helper"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil || !strings.Contains(out.String(), "Read-only file system") {
		t.Fatalf("a write under the helper: %v, %q; want it refused with EROFS", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "from-helper")); !os.IsNotExist(err) {
		t.Fatalf("the file was made: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "from-host"), []byte("x"), 0o644); err != nil {
		t.Fatalf("the host can no longer write its directory: %v", err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte(" "+dir+" ")) {
		t.Fatalf("the helper's bind mount of %s leaked into the host's namespace", dir)
	}
}

// TestStartAndStop: a daemon starts on a directory and ends when its
// client's end closes, without being killed.
func TestStartAndStop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("virtiofsd's namespace sandbox needs root (CI runs as root)")
	}
	if _, err := Binary(); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		var log bytes.Buffer
		s, err := Start(Share{Source: t.TempDir(), ReadOnly: ro, Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(10 * 1e9); err != nil {
			t.Errorf("read-only %v: the daemon ended with %v (%s)", ro, err, log.String())
		}
	}
	if _, err := Start(Share{Source: "rel"}); err == nil {
		t.Error("a relative share was accepted")
	}
}
