package e2e

import (
	"strings"
	"testing"
)

// TestGoAppOnRootDisk: nos build --root-disk puts a Go program on a
// read-only erofs root disk instead of the initramfs; the image boots on
// a kernel with block devices, runs the program with its arguments and
// exit code, and Go's time zones come from the tree's zoneinfo.
func TestGoAppOnRootDisk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.build("hello-disk", "./examples/hello", "--root-disk")
	r := e.nos("inspect", "-f", "{{.Config.RootFS}} {{index .Config.Entrypoint 0}}", "hello-disk")
	if got := strings.TrimSpace(r.stdout); got != "erofs /app/hello" {
		t.Fatalf("want the program on an erofs root disk, got %v", r)
	}
	if r := e.nos("inspect", "-f", "{{range .Config.Env}}{{.}} {{end}}", "hello-disk"); strings.Contains(r.stdout, "ZONEINFO=") {
		t.Errorf("a root-disk image reads /usr/share/zoneinfo, want no ZONEINFO: %v", r)
	}
	r = e.run("--rm", "-e", "EXIT_CODE=3", "hello-disk", "a", "b")
	if r.code != 3 || !strings.Contains(r.stdout, "Hello, world!") || !strings.Contains(r.stdout, "args: [a b]") {
		t.Errorf("run: want the greeting, the arguments and exit 3, got %v", r)
	}
}
