package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test binary is nos-monitor when this variable is set.
const asMonitor = "NOS_MONITOR_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMonitor) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestVerbs: nos-monitor serves every verb the monitor starts a copy of
// its own program with; one it does not serve would fail only once a VM
// uses a private network or a read-only share.
func TestVerbs(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		// The resolver runs and finds no such network.
		{[]string{"--home", dir, "__dns", "nosuchnet"}, 1, "nos: "},
		// The share helper runs and wants its arguments.
		{[]string{"__virtiofs-ro"}, 1, "nos: virtiofs read-only share: usage: __virtiofs-ro"},
		{[]string{"--home", dir, "__monitor", "x"}, 2, "usage: nos-monitor"},
		{nil, 2, "usage: nos-monitor"},
	} {
		cmd := exec.Command(os.Args[0], c.args...)
		cmd.Env = append(os.Environ(), asMonitor+"=1")
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(string(out), c.want) || (c.code == 1 && strings.Contains(string(out), "usage: nos-monitor")) {
			t.Errorf("nos-monitor %q: exit %d, %q; want exit %d and %q", c.args, code, out, c.code, c.want)
		}
	}
}
