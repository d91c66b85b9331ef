package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFullDisk: NOS_HOME on a small tmpfs the test mounts. Once the file
// system is full, a build fails with one line naming the store, what is
// free and what it needs; nos system check finds the store consistent; a
// running instance keeps running while its log cannot be written, and
// its output is logged again once there is room.
func TestFullDisk(t *testing.T) {
	t.Parallel()
	needVM(t)
	if os.Geteuid() != 0 {
		t.Fatal("the full-disk test mounts a tmpfs: it needs root (CI runs as root)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	home := filepath.Join(mnt, "home")
	e := &nosEnv{t: t, home: home, env: append(envWithout("NOS_HOME"), "NOS_HOME="+home)}
	t.Cleanup(func() {
		if r := e.nos("ps", "-aq"); r.code == 0 {
			for _, id := range strings.Fields(r.stdout) {
				e.nos("rm", "-f", id)
			}
		}
	})
	e.build("probe", "./e2e/testdata/probe")
	id := e.runDetached("probe", "chatter")
	e.waitLog(id, `chatter 1 `, 3*time.Minute)

	// Fill the file system.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	var st syscall.Statfs_t
	syscall.Statfs(mnt, &st)
	t.Logf("filled: %d bytes free", st.Bavail*uint64(st.Bsize))

	r := e.nos("build", "--kernel", kernelPath, "-t", "other", "./examples/httpserver")
	if r.code == 0 || !strings.HasPrefix(r.stderr, "nos: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, "no space left on the file system of the store "+home) || !strings.Contains(r.stderr, "MiB free") {
		t.Errorf("a build on a full disk: want one line naming the store and its free space, got %v", r)
	}
	r = e.nos("volume", "create", "data")
	if r.code == 0 || !strings.HasPrefix(r.stderr, "nos: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 ||
		!strings.Contains(r.stderr, "no space left on the file system of the volumes "+home) || !strings.Contains(r.stderr, "MiB free") {
		t.Errorf("a volume create on a full disk: want one line naming the volumes' file system and its free space, got %v", r)
	}
	if r := e.nos("volume", "ls", "--format", "{{.Name}}"); strings.TrimSpace(r.stdout) != "" {
		t.Errorf("volumes after the failed create: %v", r)
	}
	if r := e.nos("system", "check"); r.code != 0 || !strings.Contains(r.stdout+r.stderr, "0 problems") {
		t.Errorf("system check after the failed build and volume create: %v", r)
	}
	if r := e.nos("images", "-q"); len(strings.Fields(r.stdout)) != 1 {
		t.Errorf("images after the failed build: %v", r)
	}
	// The instance runs on while its log cannot grow.
	time.Sleep(4 * time.Second)
	if s := e.inspect(id).State; s.Status != "running" {
		t.Fatalf("with its log on a full disk the instance is %q (%s), want running", s.Status, s.Error)
	}
	os.Remove(filler)
	before := strings.Count(e.logs(id), "chatter ")
	waitFor(t, "the output to be logged again once there is room", time.Minute, func() bool {
		return strings.Count(e.logs(id), "chatter ") > before+20
	})
	mon, _ := os.ReadFile(filepath.Join(e.inspectDir(id), "monitor.log"))
	if !strings.Contains(string(mon), "written again: output was dropped") {
		t.Errorf("monitor.log does not say output was dropped:\n%s", mon)
	}
	if s := e.inspect(id).State; s.Status != "running" || !e.inspect(id).MonitorAlive {
		t.Errorf("after the disk filled and emptied: %+v", s)
	}
}

// TestNoFilesNoTmp: a build with the open-file limit exhausted, and one
// whose TMPDIR does not exist, each fail in one line saying what to do,
// and leave the store as it was.
func TestNoFilesNoTmp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.build("hello", "./examples/hello")
	images := e.nos("images", "-q").stdout
	for name, c := range map[string]struct {
		cmd  *exec.Cmd
		want string
	}{
		"open files": {exec.Command("sh", "-c", "ulimit -n 12 && exec \"$0\" \"$@\"", nosBin, "build", "--kernel", kernelPath, "-t", "other", "./examples/httpserver"), "raise the limit, e.g. ulimit -n"},
		"no TMPDIR":  {exec.Command(nosBin, "build", "--kernel", kernelPath, "-t", "other", "./examples/httpserver"), "set TMPDIR to a writable directory"},
	} {
		c.cmd.Dir, c.cmd.Env = repoRoot, e.env
		if name == "no TMPDIR" {
			c.cmd.Env = append(c.cmd.Env, "TMPDIR="+filepath.Join(t.TempDir(), "gone"))
		}
		out, err := c.cmd.CombinedOutput()
		s := strings.TrimSpace(string(out))
		if err == nil || !strings.HasPrefix(s, "nos: ") || strings.Contains(s, "\n") || !strings.Contains(s, c.want) {
			t.Errorf("%s: want one line saying %q, got %v: %s", name, c.want, err, s)
		}
		if r := e.nos("system", "check"); r.code != 0 || !strings.Contains(r.stdout+r.stderr, "0 problems") {
			t.Errorf("%s: system check: %v", name, r)
		}
		if got := e.nos("images", "-q").stdout; got != images {
			t.Errorf("%s: the store's images changed: %q, was %q", name, got, images)
		}
	}
}

// TestMonitorOutOfFiles: a running instance's monitor whose open-file
// limit is exhausted (its soft limit lowered to what it holds) keeps the
// instance running and its socket alive: a `nos stop` sent meanwhile waits
// in the socket's backlog and is answered once descriptors are free, and
// monitor.log says what happened.
func TestMonitorOutOfFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.build("probe", "./e2e/testdata/probe")
	id := e.runDetached("probe", "chatter")
	e.waitLog(id, `chatter 1 `, 3*time.Minute)
	pid := e.inspect(id).State.MonitorPID
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	// A limit below what it holds: every new descriptor fails with EMFILE.
	lim := unix.Rlimit{Cur: 3}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	lim.Max = old.Max // lowering the hard limit could not be undone without CAP_SYS_RESOURCE
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatal(err)
	}
	// On failure too, before the instance is removed (cleanups run last first).
	t.Cleanup(func() { unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil) })
	t.Logf("monitor %d holds %d files; its limit is now %d", pid, len(fds), lim.Cur)
	stop := exec.Command(nosBin, "stop", "-t", "20", id)
	stop.Dir, stop.Env = repoRoot, e.env
	var out strings.Builder
	stop.Stdout, stop.Stderr = &out, &out
	if err := stop.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if s := e.inspect(id); s.State.Status != "running" || !s.MonitorAlive {
		mon, _ := os.ReadFile(filepath.Join(e.inspectDir(id), "monitor.log"))
		t.Fatalf("with its monitor out of files the instance is %q (monitor alive %v), want running; monitor.log:\n%s", s.State.Status, s.MonitorAlive, mon)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
		t.Fatal(err)
	}
	if err := stop.Wait(); err != nil {
		t.Errorf("nos stop sent while the monitor was out of files: %v: %s", err, out.String())
	}
	if s := e.inspect(id).State; s.Status != "exited" {
		t.Errorf("after nos stop: %+v", s)
	}
	mon, _ := os.ReadFile(filepath.Join(e.inspectDir(id), "monitor.log"))
	if !strings.Contains(string(mon), "cannot accept, retrying") || !strings.Contains(string(mon), "accepting again") {
		t.Errorf("monitor.log does not tell the failed accepts:\n%s", mon)
	}
}
