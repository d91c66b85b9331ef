// Package netnstest runs test code inside a network namespace of its own,
// so tests of bridges, taps and nftables tables never touch the host's.
package netnstest

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// Run runs f on a locked thread inside a new network namespace; the
// thread goes back to its namespace afterwards. Programs f starts from
// that thread (os/exec) run in the namespace too. It needs root.
func Run(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it makes a network namespace (CI runs as root)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer netns.Set(orig)
	f()
}
