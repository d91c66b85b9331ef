package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jailUIDBase is the first of the users nos runs hypervisors as (see
// instance.JailUIDBase).
const jailUIDBase = 0x70000000

// TestHypervisorIsConfined proves each layer of the hypervisor's
// confinement from the outside, in /proc and the cgroup files: the seccomp
// sandbox, the unprivileged user, the rlimits, a cgroup of its own with
// the memory and CPU limits, and no descriptor it was not meant to get —
// nos is started with a descriptor it inherits by accident (not
// close-on-exec), which must not reach QEMU. As root every layer must be
// on; otherwise nos inspect must say what is off.
func TestHypervisorIsConfined(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	leak, err := os.CreateTemp(t.TempDir(), "leaked-fd-")
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	cmd := exec.Command(nosBin, "run", "-d", "--accel", accel, "-m", "200m", "--cpus", "2", "probe", "term")
	cmd.Dir, cmd.Env = repoRoot, e.env
	cmd.ExtraFiles = []*os.File{leak} // fd 3 in nos, without close-on-exec
	out, err := cmd.Output()
	id := strings.TrimSpace(string(out))
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("run -d: %v: %q", err, out)
	}
	t.Cleanup(func() { e.nos("rm", "-f", id) })
	e.waitApp(id, 1)

	var got []struct {
		State struct {
			VMPID    int `json:"vmPid"`
			Confined struct {
				Seccomp bool
				UID     uint32
				Cgroup  string
				Rlimits bool
				Notes   []string
			}
		}
	}
	if r := e.nos("inspect", id); r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || len(got) != 1 {
		t.Fatalf("inspect: %v", r)
	}
	st := got[0].State
	pid := strconv.Itoa(st.VMPID)
	status := procFields(t, "/proc/"+pid+"/status")
	if status["Seccomp"] != "2" {
		t.Errorf("QEMU's Seccomp mode is %q, want 2 (filter)", status["Seccomp"])
	}
	if !st.Confined.Seccomp {
		t.Errorf("inspect says seccomp is off: %+v", st.Confined)
	}

	root := os.Geteuid() == 0
	uids := strings.Fields(status["Uid"])
	if root {
		want := strconv.FormatUint(uint64(st.Confined.UID), 10)
		if st.Confined.UID < jailUIDBase || len(uids) != 4 || uids[0] != want || uids[1] != want || uids[2] != want || uids[3] != want {
			t.Errorf("QEMU runs as uids %q, inspect says %d; want all four a jail user >= %d", uids, st.Confined.UID, jailUIDBase)
		}
		if g := strings.Fields(status["Gid"]); len(g) != 4 || g[0] != want {
			t.Errorf("QEMU's gids %q, want %s", g, want)
		}
		if status["CapEff"] != "0000000000000000" || status["CapPrm"] != "0000000000000000" {
			t.Errorf("QEMU keeps capabilities: effective %s, permitted %s", status["CapEff"], status["CapPrm"])
		}
		if status["Groups"] != "" {
			t.Errorf("QEMU keeps supplementary groups %q", status["Groups"])
		}
		switch why := cgroupUnusable(t); {
		case why == "" && len(st.Confined.Notes) != 0:
			t.Errorf("as root, on a host whose cgroups this process may write, every layer must be on; inspect notes %q", st.Confined.Notes)
		case why != "" && (st.Confined.Cgroup != "" || !strings.Contains(strings.Join(st.Confined.Notes, " "), "cgroup")):
			t.Errorf("this host allows no cgroup (%s), yet inspect reports cgroup %q and notes %q", why, st.Confined.Cgroup, st.Confined.Notes)
		}
	} else if len(st.Confined.Notes) == 0 {
		t.Errorf("not root, yet inspect notes nothing about the user QEMU runs as: %+v", st.Confined)
	}

	limits, err := os.ReadFile("/proc/" + pid + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`Max open files\s+256\s+256`, `Max file size\s+1073741824\s+1073741824`} {
		if !regexp.MustCompile(want).Match(limits) {
			t.Errorf("QEMU's limits lack %s:\n%s", want, limits)
		}
	}
	if !st.Confined.Rlimits {
		t.Errorf("inspect says rlimits are off")
	}

	// Its cgroup: its own, with memory = guest + overhead, CPU = --cpus.
	if root && cgroupUnusable(t) == "" {
		if !strings.HasSuffix(st.Confined.Cgroup, "/nos-"+id[:12]) {
			t.Errorf("cgroup %q, want one named nos-%s", st.Confined.Cgroup, id[:12])
		}
		mem, cpu := cgroupLimits(t, pid)
		if want := int64(200+384) << 20; mem != want {
			t.Errorf("memory limit %d, want %d (200 MiB guest + 384 MiB overhead)", mem, want)
		}
		if cpu != 2*100000 {
			t.Errorf("CPU quota %d per 100 ms period, want 200000 (--cpus 2)", cpu)
		}
	}

	// Every descriptor QEMU holds is one nos gave it: none is the leak, and
	// none names a path in the store.
	fds, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink("/proc/" + pid + "/fd/" + fd.Name())
		if err != nil {
			continue
		}
		if target == leak.Name() {
			t.Errorf("QEMU inherited fd %s, the descriptor nos was started with by accident (%s)", fd.Name(), target)
		}
		if strings.Contains(target, filepath.Join(e.home, "images")) {
			t.Errorf("QEMU holds fd %s on the store: %s", fd.Name(), target)
		}
	}

	// The cgroup goes with the VM.
	if root && cgroupUnusable(t) == "" {
		dirs := cgroupDirs(t, pid)
		if r := e.nos("stop", "-t", "5", id); r.code != 0 {
			t.Fatalf("stop: %v", r)
		}
		waitFor(t, "the cgroup removed", 30*time.Second, func() bool {
			for _, d := range dirs {
				if _, err := os.Stat(d); err == nil {
					return false
				}
			}
			return true
		})
	}
}

// procFields reads a /proc "Key:\tvalue" file.
func procFields(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		m[k] = strings.TrimSpace(v)
	}
	return m
}

// cgroupDirs are the directories of process pid's memory and cpu cgroups
// (the v2 one, or the v1 ones).
func cgroupDirs(t *testing.T, pid string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				dirs["v2"] = filepath.Join("/sys/fs/cgroup", parts[2])
			}
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" || c == "cpu" {
				dirs[c] = filepath.Join("/sys/fs/cgroup", c, parts[2])
			}
		}
	}
	return dirs
}

// cgroupLimits reads the memory limit (bytes) and CPU quota (per 100 ms)
// of process pid's cgroup.
func cgroupLimits(t *testing.T, pid string) (mem, cpu int64) {
	t.Helper()
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	dirs := cgroupDirs(t, pid)
	if d, ok := dirs["v2"]; ok {
		mem, _ = strconv.ParseInt(read(filepath.Join(d, "memory.max")), 10, 64)
		q, _, _ := strings.Cut(read(filepath.Join(d, "cpu.max")), " ")
		cpu, _ = strconv.ParseInt(q, 10, 64)
		return mem, cpu
	}
	mem, _ = strconv.ParseInt(read(filepath.Join(dirs["memory"], "memory.limit_in_bytes")), 10, 64)
	cpu, _ = strconv.ParseInt(read(filepath.Join(dirs["cpu"], "cpu.cfs_quota_us")), 10, 64)
	return mem, cpu
}

// cgroupUnusable says why this process may not make a child cgroup with
// the memory and cpu controllers under its own ("" when it may): then nos,
// started from it, may not either, and must say so instead.
func cgroupUnusable(t *testing.T) string {
	t.Helper()
	self := cgroupDirs(t, "self")
	if d, ok := self["v2"]; ok {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.subtree_control"))
		if err != nil {
			return err.Error()
		}
		if !strings.Contains(string(b), "memory") || !strings.Contains(string(b), "cpu") {
			if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte("+memory +cpu"), 0o644); err != nil {
				return "cgroup v2 controllers not delegated: " + err.Error()
			}
		}
		return ""
	}
	for _, c := range []string{"memory", "cpu"} {
		d, ok := self[c]
		if !ok {
			return "no " + c + " hierarchy"
		}
		probe := filepath.Join(d, "nos-e2e-probe-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(probe, 0o755); err != nil {
			return err.Error()
		}
		os.Remove(probe)
	}
	return ""
}
