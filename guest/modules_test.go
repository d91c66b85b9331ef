//go:build linux

package guest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestModuleName(t *testing.T) {
	cases := []struct{ rel, want string }{
		{"kernel/drivers/virtio/virtio_mmio.ko", "virtio_mmio"},
		{"kernel/drivers/virtio/virtio_mmio.ko.xz", "virtio_mmio"},
		{"kernel/drivers/char/virtio_console.ko.zst", "virtio_console"},
		{"kernel/drivers/net/virtio_net.ko.gz", "virtio_net"},
		{"kernel/net/core/failover.ko", "failover"},
		{"kernel/drivers/net/net_failover.ko", "net_failover"},
		{"kernel/drivers/char/hw_random/virtio-rng.ko", "virtio_rng"},
		{"kernel/fs/nls/nls-iso8859-1.ko.xz", "nls_iso8859_1"},
		{"virtio_mmio.ko", "virtio_mmio"},
		{"virtio_mmio", "virtio_mmio"},
	}
	for _, tc := range cases {
		if got := moduleName(tc.rel); got != tc.want {
			t.Errorf("moduleName(%q) = %q, want %q", tc.rel, got, tc.want)
		}
	}
}

func TestModuleParams(t *testing.T) {
	const cmdline = "console=ttyS0 virtio_mmio.device=4K@0xfeb00e00:12 virtio_mmio.device=4K@0xfeb00c00:11 foo.bar=1 virtio-mmio.x=y"
	cases := []struct {
		name, cmdline, module, want string
	}{
		{"virtio_mmio, in order, with - for _", cmdline, "virtio_mmio", "device=4K@0xfeb00e00:12 device=4K@0xfeb00c00:11 x=y"},
		{"other module", cmdline, "foo", "bar=1"},
		{"no parameters", cmdline, "virtio_net", ""},
		{"not a module parameter", cmdline, "console", ""},
		{"prefix of a module name", cmdline, "virtio", ""},
		{"empty cmdline", "", "virtio_mmio", ""},
		{"parameter without value", "virtio_net.napi_tx virtio_net.csum=0", "virtio_net", "napi_tx csum=0"},
		{"empty parameter skipped", "virtio_net. virtio_net.csum=0", "virtio_net", "csum=0"},
		{"only the first dot splits", "a.b.c=d.e", "a", "b.c=d.e"},
		{"extra whitespace", "  virtio_rng.x=1\t\nvirtio_rng.y=2\n", "virtio_rng", "x=1 y=2"},
		{"dashes in the parameter kept", "my-mod.some-param=a-b", "my_mod", "some-param=a-b"},
		{"dots in kernel options' values", "root=/dev/vda1.x ip=10.0.2.15::10.0.2.2 random.trust_cpu=on", "random", "trust_cpu=on"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := moduleParams(tc.cmdline, tc.module); got != tc.want {
				t.Errorf("moduleParams(%q, %q) = %q, want %q", tc.cmdline, tc.module, got, tc.want)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	write := func(path string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // regardless of umask
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "prog"), 0o755)
	write(filepath.Join(dir, "owneronly"), 0o100)
	write(filepath.Join(dir, "data"), 0o644)
	write(filepath.Join(dir, "both"), 0o644)   // not executable here ...
	write(filepath.Join(other, "both"), 0o755) // ... but here, later in PATH
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "prog"), filepath.Join(other, "link")); err != nil {
		t.Fatal(err)
	}
	pathEnv := []string{"HOME=/root", "PATH=" + dir + ":" + other}

	cases := []struct {
		name, cmd string
		env       []string
		want      string // "" means an error wrapping os.ErrNotExist
	}{
		{"executable", "prog", pathEnv, filepath.Join(dir, "prog")},
		{"owner-execute bit suffices", "owneronly", pathEnv, filepath.Join(dir, "owneronly")},
		{"not executable", "data", pathEnv, ""},
		{"directory", "subdir", pathEnv, ""},
		{"missing", "nosuch", pathEnv, ""},
		{"skips a non-executable to a later PATH entry", "both", pathEnv, filepath.Join(other, "both")},
		{"symlink to an executable", "link", pathEnv, filepath.Join(other, "link")},
		{"last PATH wins", "prog", []string{"PATH=/nonexistent", "PATH=" + dir}, filepath.Join(dir, "prog")},
		{"PATH without this directory", "prog", []string{"PATH=" + other}, ""},
		{"a name with a slash is not looked up", "./nosuch/prog", pathEnv, "./nosuch/prog"},
		{"absolute name returned as is", "/no/such/file", nil, "/no/such/file"},
		{"PATH_EXTRA is not PATH", "prog", []string{"PATH_EXTRA=" + dir, "XPATH=" + dir}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookPath(tc.cmd, tc.env)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("lookPath(%q, %q) = %q, want an error", tc.cmd, tc.env, got)
				}
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("lookPath(%q) error %q does not wrap os.ErrNotExist", tc.cmd, err)
				}
				if !strings.Contains(err.Error(), tc.cmd) {
					t.Errorf("lookPath(%q) error %q does not name the command", tc.cmd, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("lookPath(%q, %q): %v", tc.cmd, tc.env, err)
			}
			if got != tc.want {
				t.Errorf("lookPath(%q, %q) = %q, want %q", tc.cmd, tc.env, got, tc.want)
			}
		})
	}

	t.Run("default PATH without one in env", func(t *testing.T) {
		_, err := lookPath("nos-test-no-such-command", []string{"HOME=/root"})
		if err == nil || !strings.Contains(err.Error(), defaultPath) {
			t.Errorf("lookPath without PATH: %v, want an error naming the default PATH %s", err, defaultPath)
		}
	})
	t.Run("empty PATH entry is the current directory", func(t *testing.T) {
		t.Chdir(dir)
		got, err := lookPath("prog", []string{"PATH=/nonexistent:"})
		if err != nil || got != "./prog" {
			t.Errorf("lookPath(prog) with PATH=/nonexistent: in %s = %q, %v, want ./prog", dir, got, err)
		}
	})
}

func TestExitCode(t *testing.T) {
	// Linux wait status: exit code in bits 8-15; a terminating signal in
	// bits 0-6, with 0x80 when the process dumped core.
	cases := []struct {
		name string
		ws   unix.WaitStatus
		want int
	}{
		{"exit 0", unix.WaitStatus(0), 0},
		{"exit 1", unix.WaitStatus(1 << 8), 1},
		{"exit 3", unix.WaitStatus(3 << 8), 3},
		{"exit 255", unix.WaitStatus(255 << 8), 255},
		{"SIGKILL", unix.WaitStatus(unix.SIGKILL), 137},
		{"SIGTERM", unix.WaitStatus(unix.SIGTERM), 143},
		{"SIGINT", unix.WaitStatus(unix.SIGINT), 130},
		{"SIGSEGV with core dump", unix.WaitStatus(0x80 | unix.SIGSEGV), 139},
		{"SIGABRT with core dump", unix.WaitStatus(0x80 | unix.SIGABRT), 134},
	}
	for _, tc := range cases {
		if got := exitCode(tc.ws); got != tc.want {
			t.Errorf("%s: exitCode(%#x) = %d, want %d", tc.name, uint32(tc.ws), got, tc.want)
		}
	}
}

// TestExitCodeRealProcesses checks the constructed statuses above against
// ones the kernel really reports.
func TestExitCodeRealProcesses(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh:", err)
	}
	cases := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 42", 42},
		{"kill -TERM $$", 143},
		{"kill -KILL $$", 137},
	}
	for _, tc := range cases {
		cmd := exec.Command(sh, "-c", tc.script)
		_ = cmd.Run()
		if cmd.ProcessState == nil {
			t.Fatalf("sh -c %q did not run", tc.script)
		}
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if got := exitCode(unix.WaitStatus(ws)); got != tc.want {
			t.Errorf("sh -c %q: exitCode(%#x) = %d, want %d", tc.script, uint32(ws), got, tc.want)
		}
	}
}
