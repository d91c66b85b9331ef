package qemu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/vmm"
)

func TestCheck(t *testing.T) {
	if err := (Driver{}).Check(context.Background()); err != nil {
		t.Fatalf("QEMU must be installed for the tests (.ci/run installs it): %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if err := (Driver{}).Check(context.Background()); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("no QEMU on PATH: %v", err)
	}
}

// TestStartRealQEMUFails runs the real QEMU through the driver on a kernel
// it cannot load: the process starts with every file as a descriptor, then
// exits, and the guest session reports what QEMU said.
func TestStartRealQEMUFails(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"kernel", "initrd"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("not a kernel"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := vmm.Machine{
		Accel: vmm.AccelTCG, MemoryMiB: 64, CPUs: 1,
		Kernel: filepath.Join(dir, "kernel"), Initrd: filepath.Join(dir, "initrd"), Cmdline: "console=ttyS0",
		ConsoleLog: filepath.Join(dir, "console.log"),
		Channels:   vmm.GuestChannels(),
		Disks:      []vmm.Disk{{Path: filepath.Join(dir, "kernel"), ReadOnly: true}},
	}
	var out bytes.Buffer
	vm, err := vmm.Boot(context.Background(), Driver{}, m, vmm.Guest{Config: &guestapi.Config{}, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if vm.PID() <= 0 || !vm.Confined().Seccomp {
		t.Errorf("pid %d, confined %+v", vm.PID(), vm.Confined())
	}
	o := vm.Wait()
	if o.CrashKind != vmm.CrashHypervisorFailed || !strings.HasPrefix(o.Crash, "QEMU failed: ") || o.ExitCode != vmm.ExitGuestError {
		t.Errorf("outcome %+v, want QEMU failed", o)
	}
	if !strings.Contains(o.Crash, "kernel") {
		t.Errorf("the crash does not quote QEMU's complaint about the kernel: %q", o.Crash)
	}
	if _, err := os.Stat(m.ConsoleLog); err != nil {
		t.Errorf("the console log was not created: %v", err)
	}
}

func TestStartMissingFiles(t *testing.T) {
	m := vmm.Machine{Kernel: "/nonexistent/kernel", Channels: vmm.GuestChannels()}
	if _, err := (Driver{}).Start(context.Background(), m); err == nil || !strings.Contains(err.Error(), "the kernel") {
		t.Errorf("missing kernel: %v", err)
	}
	dir := t.TempDir()
	for _, f := range []string{"kernel", "initrd"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m.Kernel, m.Initrd, m.ConsoleLog = filepath.Join(dir, "kernel"), filepath.Join(dir, "initrd"), filepath.Join(dir, "console")
	m.Shares = []vmm.Share{{Tag: "data", Source: filepath.Join(dir, "missing")}}
	if _, err := (Driver{}).Start(context.Background(), m); err == nil || !strings.Contains(err.Error(), "sharing") {
		t.Errorf("a missing shared directory: %v", err)
	}
}
