package accel

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"
)

// kvmUsable skips the test unless /dev/kvm can be opened and a VM created.
func kvmUsable(t *testing.T) {
	t.Helper()
	m := &machine{kvm: -1, vm: -1, vcpu: -1}
	defer m.release()
	if err := m.setup(testCode); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			t.Skipf("no usable /dev/kvm: %v", err)
		}
		t.Skipf("cannot set up a VM: %v", err)
	}
}

// TestProbeTimeoutPath runs a guest that spins forever (jmp $), so the vCPU
// must be interrupted whether or not KVM works here.
func TestProbeTimeoutPath(t *testing.T) {
	kvmUsable(t)
	spin := []byte{0xeb, 0xfe}
	start := time.Now()
	err := probe(context.Background(), 200*time.Millisecond, spin)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("spinning guest: %v, want ErrTimeout", err)
	}
	if elapsed > 200*time.Millisecond+kickGrace+2*time.Second {
		t.Errorf("took %v", elapsed)
	}
	t.Logf("after %v: %v", elapsed.Round(time.Millisecond), err)
}

// TestProbeContextPath stops a spinning guest through the context.
func TestProbeContextPath(t *testing.T) {
	kvmUsable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := probe(ctx, time.Minute, []byte{0xeb, 0xfe})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("spinning guest with a short context: %v, want context.DeadlineExceeded", err)
	}
}

// TestRepeatedProbes checks that probes do not leak file descriptors. A
// probe that gave up waiting for KVM_RUN to return releases its descriptors
// later, so allow some time for that.
func TestRepeatedProbes(t *testing.T) {
	kvmUsable(t)
	before := openFDs(t)
	for i := 0; i < 5; i++ {
		_ = probe(context.Background(), 100*time.Millisecond, testCode)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		after := openFDs(t)
		if after <= before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d open file descriptors before 5 probes, %d after", before, after)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShortGuest runs the test guest without its loop, which checks the
// whole exit path even where KVM emulates. A timeout is allowed: on some
// machines guests hang outright.
func TestShortGuest(t *testing.T) {
	kvmUsable(t)
	err := probe(context.Background(), 2*time.Second, shortCode)
	if errors.Is(err, ErrTimeout) {
		t.Skipf("even the short guest hangs here: %v", err)
	}
	if err != nil {
		t.Fatalf("short guest: %v", err)
	}
}

// TestWrongValue runs a guest that writes 0x41 and expects Probe to notice.
func TestWrongValue(t *testing.T) {
	kvmUsable(t)
	err := probe(context.Background(), 2*time.Second, []byte{0xb0, 0x41, 0xe6, 0xf4, 0xf4})
	if errors.Is(err, ErrTimeout) {
		t.Skipf("guests hang here: %v", err)
	}
	if err == nil {
		t.Fatal("no error for a guest writing 0x41")
	}
	t.Log(err)
}

// TestLoopGuest runs the test guest with its loop shortened to 1000
// iterations, which checks the loop's encoding even where KVM emulates.
func TestLoopGuest(t *testing.T) {
	kvmUsable(t)
	code := append([]byte(nil), testCode...)
	if code[0] != 0x66 || code[1] != 0xb9 {
		t.Fatalf("test guest does not start with mov ecx, imm32: % x", code[:2])
	}
	copy(code[2:6], []byte{0xe8, 0x03, 0, 0}) // 1000
	err := probe(context.Background(), 2*time.Second, code)
	if errors.Is(err, ErrTimeout) {
		t.Skipf("even a short loop hangs here: %v", err)
	}
	if err != nil {
		t.Fatalf("short loop guest: %v", err)
	}
}
