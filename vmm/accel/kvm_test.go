package accel

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestProbe runs the real probe. Either outcome is legitimate on an
// arbitrary machine; it must only come back in time.
func TestProbe(t *testing.T) {
	start := time.Now()
	err := ProbeKVM(context.Background(), 3*time.Second)
	elapsed := time.Since(start)
	if elapsed > 5*time.Second {
		t.Errorf("Probe took %v, want at most 5s", elapsed)
	}
	if err != nil {
		t.Logf("KVM does not work here (after %v): %v", elapsed.Round(time.Millisecond), err)
	} else {
		t.Logf("KVM works here (probe took %v)", elapsed.Round(time.Millisecond))
	}
}

func TestProbeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ProbeKVM(ctx, time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Probe with a canceled context: %v, want context.Canceled", err)
	}
}
