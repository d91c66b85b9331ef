package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHostileGuest: an application run as root (without capabilities)
// floods its stdout, then finds the host's virtio serial port in sysfs
// but can neither open its node, which nos-init removed, nor make a new
// one. The monitor keeps running with bounded memory, the instance's
// state is true (its own exit code, not a forged one) and the output is
// in the log.
func TestHostileGuest(t *testing.T) {
	t.Parallel()
	e := sharedEnv(t)
	id := e.runDetached("probe", "attack-host", "64")
	in := e.inspect(id)
	mon := in.State.MonitorPID
	var peakKB int
	waitFor(t, "the attacker to finish", 5*time.Minute, func() bool {
		if kb := rssKB(mon); kb > peakKB {
			peakKB = kb
		}
		return e.inspect(id).State.Status == "exited"
	})
	st := e.inspect(id).State
	logs := e.logs(id)
	attack := regexp.MustCompile(`attack: [^\n]*`).FindAllString(logs, -1)
	t.Logf("%s; the monitor's peak RSS while the guest flooded 64 MiB: %d kB", strings.Join(attack, "; "), peakKB)
	if st.ExitCode != 0 || !strings.Contains(logs, "flooded") {
		t.Errorf("exit %d; want 0 after \"flooded\":\n%s", st.ExitCode, tail(logs, 2000))
	}
	if !regexp.MustCompile(`attack: ports: [1-9]`).MatchString(logs) || !strings.Contains(logs, "attack: uid 0") {
		t.Errorf("the attacker found no port, or did not run as root:\n%s", strings.Join(attack, "\n"))
	}
	if strings.Contains(logs, "OPENED") || strings.Contains(logs, "MADE") {
		t.Errorf("the application reached the host's channel:\n%s", strings.Join(attack, "\n"))
	}
	if !strings.Contains(logs, "no such file or directory") || !strings.Contains(logs, "attack: mknod: operation not permitted") {
		t.Errorf("want each try refused (no node, mknod not permitted):\n%s", strings.Join(attack, "\n"))
	}
	// The log rotates (instance/logfile): it keeps the newest part.
	if n := strings.Count(logs, strings.Repeat("y", 1023)); n < 16*1024 {
		t.Errorf("the log holds %d of the %d lines the guest wrote; want at least the last 16 MiB", n, 64*1024)
	}
	if peakKB == 0 || peakKB > 128<<10 {
		t.Errorf("the monitor's peak RSS while the guest flooded its stdout: %d kB; want it measured and under 128 MiB", peakKB)
	}
}

// rssKB is a process's resident memory (VmRSS), 0 when it is gone.
func rssKB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}
