package instance

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/vmm"
)

// TestSnapshotKey: the key changes with the kernel's or initramfs's
// bytes, the machine's shape and the hypervisor's build, and not with
// what the guest takes again or the host's side of the network.
func TestSnapshotKey(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "kernel"), filepath.Join(dir, "initrd")
	os.WriteFile(kernel, []byte("kernel 1"), 0o600)
	os.WriteFile(initrd, []byte("initrd 1"), 0o600)
	base := vmm.Machine{Accel: vmm.AccelTCG, MemoryMiB: 64, CPUs: 1, Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0",
		Channels: vmm.MuxedChannels(), NICs: []vmm.NIC{{User: &vmm.UserNet{Forwards: []vmm.Forward{{Proto: "tcp", HostPort: 8080, GuestPort: 80}}}}}}
	key := func(m vmm.Machine, hv string) string {
		t.Helper()
		k, err := snapshotKey(m, hv, "")
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k0 := key(base, "QEMU 7.2")
	same := base
	same.NICs = []vmm.NIC{{User: &vmm.UserNet{Forwards: []vmm.Forward{{Proto: "tcp", HostPort: 9999, GuestPort: 80}}}}}
	same.ConsoleLog = "/elsewhere"
	if key(same, "QEMU 7.2") != k0 {
		t.Error("the key changed with the published ports or the console log")
	}
	changed := map[string]vmm.Machine{}
	m := base
	m.MemoryMiB = 128
	changed["memory"] = m
	m = base
	m.Cmdline += " quiet"
	changed["command line"] = m
	m = base
	m.NICs = nil
	changed["NICs"] = m
	m = base
	m.CPUs = 2
	changed["CPUs"] = m
	for what, m := range changed {
		if key(m, "QEMU 7.2") == k0 {
			t.Errorf("the key did not change with the %s", what)
		}
	}
	if key(base, "QEMU 8.0") == k0 {
		t.Error("the key did not change with the hypervisor")
	}
	os.WriteFile(kernel, []byte("kernel 2"), 0o600)
	if key(base, "QEMU 7.2") == k0 {
		t.Error("the key did not change with the kernel's bytes")
	}
	os.WriteFile(kernel, []byte("kernel 1"), 0o600)
	os.WriteFile(initrd, []byte("initrd 2"), 0o600)
	if key(base, "QEMU 7.2") == k0 {
		t.Error("the key did not change with the initramfs's bytes")
	}
}

// TestSnapshotKeyByImage: with the image's digest the files are not read
// (a start from a snapshot hashes nothing); the digest stands for them.
func TestSnapshotKeyByImage(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel")
	os.WriteFile(kernel, []byte("kernel 1"), 0o600)
	m := vmm.Machine{Accel: vmm.AccelTCG, MemoryMiB: 64, Kernel: kernel, Initrd: filepath.Join(dir, "absent"),
		Disks: []vmm.Disk{{Path: filepath.Join(dir, "absent-too"), Serial: "nos-root", ReadOnly: true}}}
	k1, err := snapshotKey(m, "QEMU 7.2", "sha256:aaaa")
	if err != nil {
		t.Fatalf("the key read the files: %v", err)
	}
	if k2, _ := snapshotKey(m, "QEMU 7.2", "sha256:bbbb"); k2 == k1 {
		t.Error("the key did not change with the image")
	}
	if byFiles, err := snapshotKey(m, "QEMU 7.2", ""); err == nil || byFiles == k1 {
		t.Errorf("without a digest the files must be hashed: %q, %v", byFiles, err)
	}
}

// TestHypervisorBuildCache: QEMU is asked its version once; the answer is
// kept under the binary's identity and read back.
func TestHypervisorBuildCache(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	script := "#!/bin/sh\necho x >>" + calls + "\necho 'QEMU emulator version 9.9.9'\n"
	if err := os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	cache := filepath.Join(t.TempDir(), hypervisorCache)
	first, err := hypervisorBuild(t.Context(), cache)
	if err != nil {
		t.Fatal(err)
	}
	second, err := hypervisorBuild(t.Context(), cache)
	if err != nil || second != first || !strings.HasPrefix(first, "QEMU emulator version 9.9.9 ") {
		t.Fatalf("builds %q, %q, %v", first, second, err)
	}
	if b, _ := os.ReadFile(calls); string(b) != "x\n" {
		t.Errorf("QEMU was asked %d times, want once", strings.Count(string(b), "x"))
	}
	// Another binary (here: rewritten, so its size changes) is asked again.
	os.WriteFile(filepath.Join(bin, "qemu-system-x86_64"), []byte(strings.ReplaceAll(script, "9.9.9", "10.0.0")), 0o755)
	if third, _ := hypervisorBuild(t.Context(), cache); !strings.HasPrefix(third, "QEMU emulator version 10.0.0 ") {
		t.Errorf("a changed QEMU kept the old version: %q", third)
	}
}

func TestCheckSnapshot(t *testing.T) {
	ok := Config{Image: "web:1", InitAPI: image.InitAPISnapshot}
	if err := checkSnapshot(&ok, 0); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]Config{
		"old init":    {InitAPI: image.InitAPIMux},
		"volume":      {InitAPI: image.InitAPISnapshot, Volumes: []VolumeMount{{Name: "v", Target: "/v"}}},
		"bind":        {InitAPI: image.InitAPISnapshot, Binds: []BindMount{{Source: "/s", Target: "/s"}}},
		"interactive": {InitAPI: image.InitAPISnapshot, Stdin: true},
		"writable":    {InitAPI: image.InitAPISnapshot, WritableRoot: true},
	} {
		if err := checkSnapshot(&c, 0); !errors.Is(err, ErrNoSnapshot) || !errors.Is(err, ErrBadFlag) {
			t.Errorf("%s: %v", what, err)
		}
	}
	if err := checkSnapshot(&ok, 1); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("private network: %v", err)
	}
}

func TestPruneSnapshots(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.state", "AAAA")
	write("a.json", `{"key":"a","imageDigest":"sha256:kept"}`)
	write("b.state", "BBBBBB")
	write("b.json", `{"key":"b","imageDigest":"sha256:gone"}`)
	write("c.state", "C") // no record
	write("d.json", `{}`) // no state
	write("e.state.tmp-1", "old")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, "e.state.tmp-1"), old, old)
	write("f.state.tmp-2", "being written")
	n, freed, err := PruneSnapshots(dir, func(d string) bool { return d == "sha256:kept" })
	if err != nil || n != 2 {
		t.Fatalf("PruneSnapshots: %d, %v; want 2 states removed", n, err)
	}
	var left []string
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		left = append(left, de.Name())
	}
	if want := []string{"a.json", "a.state", "f.state.tmp-2"}; !slices.Equal(left, want) || freed == 0 {
		t.Errorf("left %v (freed %d), want %v", left, freed, want)
	}
}
