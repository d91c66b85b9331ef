package lockfile

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLockHeldTryLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	if Held(p) {
		t.Fatal("Held before anyone locked")
	}
	unlock, err := Lock(context.Background(), p, false)
	if err != nil {
		t.Fatal(err)
	}
	if !Held(p) {
		t.Fatal("Held = false while an exclusive lock is held")
	}
	if _, err := TryLock(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock while held: want ErrLocked, got %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, p, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shared Lock while exclusively held: want a timeout, got %v", err)
	}
	unlock()
	unlock() // twice is harmless
	if Held(p) {
		t.Fatal("Held after unlock")
	}
	// Shared locks coexist, and Held's shared probe does not see them as held.
	u1, err := Lock(context.Background(), p, true)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := Lock(context.Background(), p, true)
	if err != nil {
		t.Fatal(err)
	}
	if Held(p) {
		t.Fatal("Held reports shared holders as an exclusive lock")
	}
	u1()
	u2()
	u3, err := TryLock(p)
	if err != nil {
		t.Fatalf("TryLock when free: %v", err)
	}
	u3()
}
