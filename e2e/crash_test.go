package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashSafety kills nos build, tag, rmi, volume create, system
// prune, pull (from Debian's docker-registry on loopback) and an
// instance's monitor with SIGKILL at random moments, round after round, in one nos
// home; after each kill `nos system check` must find no damage (only
// leftovers, which prune removes), the killed operation must have
// happened completely or not at all, and at the end check --repair, then
// check, must find nothing at all. The short form runs 12 rounds;
// NOS_STRESS_ROUNDS sets more (make stress). Only the monitor rounds
// boot a VM (examples/hello, which exits at once).
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	rounds := 12
	if n, err := strconv.Atoi(os.Getenv("NOS_STRESS_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	e := newEnv(t)
	env, nos := e.env, e.nos
	// killed runs nos with args and SIGKILLs it after d, unless it ended
	// first; it reports whether it was killed and how long it ran.
	killed := func(d time.Duration, args ...string) (bool, time.Duration) {
		began := time.Now()
		cmd := exec.Command(nosBin, args...)
		cmd.Dir, cmd.Env = repoRoot, env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
			return false, time.Since(began)
		case <-time.After(d):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			return true, time.Since(began)
		}
	}
	exists := func(ref string) bool {
		r := nos("images", "--format", "{{.Name}}:{{.Tag}}")
		return r.code == 0 && strings.Contains("\n"+r.stdout, "\n"+ref+"\n")
	}
	leftovers := 0
	check := func(when string) {
		t.Helper()
		r := nos("system", "check")
		if r.code != 0 {
			t.Fatalf("after %s: nos system check: %v", when, r)
		}
		if strings.TrimSpace(r.stdout) != "" {
			leftovers++ // rounds after which leftovers (prune's to remove) were there
		}
	}
	if r := nos("build", "--kernel", kernelPath, "-t", "base", "./examples/hello"); r.code != 0 {
		t.Fatalf("nos build: %v", r)
	}
	reg := startRegistry(t)
	remoteRef := reg + "/crash/base:latest"
	if r := nos("push", "base", remoteRef); r.code != 0 {
		t.Fatalf("nos push: %v", r)
	}
	if r := nos("rmi", remoteRef); r.code != 0 {
		t.Fatalf("nos rmi %s: %v", remoteRef, r)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 14))
	kills := 0
	// took is how long each operation ran when it was not killed: kills
	// land at a random moment within it (a first guess until measured).
	took := map[string]time.Duration{}
	guess := map[string]time.Duration{"build": 300 * time.Millisecond, "tag": 300 * time.Millisecond, "rmi": 300 * time.Millisecond,
		"volume create": 300 * time.Millisecond, "prune": 300 * time.Millisecond, "pull": 300 * time.Millisecond, "monitor": 2 * time.Second}
	for i := range rounds {
		var op, ref string
		var args []string
		switch rng.IntN(7) {
		case 0:
			op, ref = "build", fmt.Sprintf("b%d:latest", i)
			args = []string{"build", "--kernel", kernelPath, "-t", ref, "--env", fmt.Sprintf("ROUND=%d", i), "./examples/hello"}
		case 1:
			op, ref = "tag", fmt.Sprintf("t%d:latest", i)
			args = []string{"tag", "base", ref}
		case 2:
			op = "rmi"
			list := strings.Fields(nos("images", "--format", "{{.Name}}:{{.Tag}}").stdout)
			ref = list[rng.IntN(len(list))]
			if ref == "base:latest" {
				op, args = "prune", []string{"system", "prune"}
			} else {
				args = []string{"rmi", ref}
			}
		case 3:
			op, ref = "volume create", fmt.Sprintf("v%d", i)
			args = []string{"volume", "create", "--size", "64m", ref}
		case 4:
			op, ref = "pull", remoteRef
			if exists(ref) {
				if r := nos("rmi", ref); r.code != 0 {
					t.Fatalf("round %d: rmi %s: %v", i, ref, r)
				}
			}
			args = []string{"pull", ref}
		case 5:
			op = "monitor"
		default:
			op, args = "prune", []string{"system", "prune"}
		}
		full, measured := took[op]
		if !measured {
			full = guess[op]
		}
		d := time.Duration(rng.Int64N(2*int64(full) + 1)) // about half of them finish
		var wasKilled bool
		var ran time.Duration
		if op == "monitor" {
			ref, wasKilled, ran = killMonitor(t, e, d)
		} else {
			wasKilled, ran = killed(d, args...)
		}
		switch {
		case !wasKilled:
			took[op] = ran
		case !measured:
			guess[op] = min(2*full, 20*time.Second) // it needs longer than guessed
		}
		if wasKilled {
			kills++
		}
		t.Logf("round %d: %s %v after %v: killed %v", i, op, args, d, wasKilled)
		check(fmt.Sprintf("round %d (%s)", i, op))
		// All or nothing: a tag or build that exists is complete (check
		// verified its blobs); a volume that lists is whole.
		switch op {
		case "build", "tag":
			if !wasKilled && !exists(ref) {
				t.Errorf("round %d: %s finished but %s is not there", i, op, ref)
			}
		case "rmi":
			if !wasKilled && exists(ref) {
				t.Errorf("round %d: rmi finished but %s is still there", i, ref)
			}
		case "pull":
			if !wasKilled && !exists(ref) {
				t.Errorf("round %d: pull finished but %s is not there", i, ref)
			}
		case "monitor":
			// The instance's state says what happened (a killed monitor
			// is reported as such), and it can be removed.
			if r := nos("rm", "-f", ref); r.code != 0 {
				t.Errorf("round %d: rm -f after the monitor was killed: %v", i, r)
			}
			check(fmt.Sprintf("round %d (rm after %s)", i, op))
		case "volume create":
			ls := nos("volume", "ls")
			if !wasKilled && !strings.Contains(ls.stdout, ref) {
				t.Errorf("round %d: volume create finished but %s is not listed: %v", i, ref, ls)
			}
		}
		if !exists("base:latest") {
			t.Fatalf("round %d: base:latest is gone", i)
		}
	}
	repair := nos("system", "check", "--repair")
	if repair.code != 0 {
		t.Fatalf("nos system check --repair: %v", repair)
	}
	r := nos("system", "check")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Errorf("after repair: %v", r)
	}
	t.Logf("%d rounds, %d operations killed; no damage after any round, leftovers after %d of them; the last repair: %s",
		rounds, kills, leftovers, strings.TrimSpace(repair.stderr))
}

// killMonitor starts examples/hello (the image base) detached and
// SIGKILLs its monitor after d unless it ended first; it returns the
// instance's ID, whether the monitor was killed, and how long it ran.
func killMonitor(t *testing.T, e *nosEnv, d time.Duration) (string, bool, time.Duration) {
	t.Helper()
	began := time.Now()
	r := e.nos("run", "-d", "--accel", accel, "base")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || id == "" {
		t.Fatalf("run -d base: %v", r)
	}
	pid := e.inspect(id).State.MonitorPID
	deadline := began.Add(d)
	for time.Now().Before(deadline) {
		if pid == 0 || syscall.Kill(pid, 0) != nil {
			return id, false, time.Since(began) // it ended first
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid == 0 || syscall.Kill(pid, syscall.SIGKILL) != nil {
		return id, false, time.Since(began)
	}
	return id, true, time.Since(began)
}
