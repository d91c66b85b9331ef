package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tryLock takes a lock with a short timeout.
func tryLock(t *testing.T, take func(context.Context) (func(), error)) (func(), error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	return take(ctx)
}

func TestLockExcludesOtherProcess(t *testing.T) {
	s := newStore(t)
	release := holdLock(t, "lock", s.Root())
	if _, err := tryLock(t, s.Lock); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock while another process holds Lock = %v, want DeadlineExceeded", err)
	}
	if _, err := tryLock(t, s.RLock); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RLock while another process holds Lock = %v, want DeadlineExceeded", err)
	}
	if err := s.Tag(deadline(t), "app", "latest", mustImage(t, s, "", "x").manifest, testTime); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Tag while another process holds Lock = %v, want DeadlineExceeded", err)
	}
	release()
	unlock, err := tryLock(t, s.Lock)
	if err != nil {
		t.Fatalf("Lock after the other process let go: %v", err)
	}
	unlock()
}

func TestRLockSharedWithOtherProcess(t *testing.T) {
	s := newStore(t)
	release := holdLock(t, "rlock", s.Root())
	unlock, err := tryLock(t, s.RLock)
	if err != nil {
		t.Errorf("RLock while another process holds RLock: %v", err)
	} else {
		unlock()
	}
	if _, err := s.Images(t.Context()); err != nil {
		t.Errorf("Images while another process holds RLock: %v", err)
	}
	if _, err := tryLock(t, s.Lock); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock while another process holds RLock = %v, want DeadlineExceeded", err)
	}
	release()
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func TestLockWithinProcess(t *testing.T) {
	s := newStore(t)
	unlock, err := s.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tryLock(t, s.Lock); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Lock = %v, want DeadlineExceeded", err)
	}
	if _, err := tryLock(t, s.RLock); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RLock under Lock = %v, want DeadlineExceeded", err)
	}
	unlock()
	unlock() // harmless

	r1, err := tryLock(t, s.RLock)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := tryLock(t, s.RLock)
	if err != nil {
		t.Fatalf("second RLock: %v", err)
	}
	if _, err := tryLock(t, s.Lock); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock under RLock = %v, want DeadlineExceeded", err)
	}
	r1()
	r2()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Lock(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a cancelled context = %v, want Canceled", err)
	}
}

// TestLockGoroutines checks that Lock excludes goroutines of one process
// from each other and that RLock holders exclude Lock holders.
func TestLockGoroutines(t *testing.T) {
	s := newStore(t)
	var writers, readers, bad atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			for range 5 {
				exclusive := i%2 == 0
				take := s.RLock
				if exclusive {
					take = s.Lock
				}
				unlock, err := take(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				if exclusive {
					if writers.Add(1) != 1 || readers.Load() != 0 {
						bad.Add(1)
					}
				} else if readers.Add(1); writers.Load() != 0 {
					bad.Add(1)
				}
				time.Sleep(time.Millisecond)
				if exclusive {
					writers.Add(-1)
				} else {
					readers.Add(-1)
				}
				unlock()
			}
		})
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("the lock let %d holders in together", n)
	}
}

func TestConcurrentTagProcesses(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	for i := range 10 {
		cmd := helper(t, "tag", s.Root(), fmt.Sprintf("app%d", i))
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("helper: %v: %s", err, out)
			}
		})
	}
	wg.Wait()
	checkTags(t, s, 10, 5)
}

func TestConcurrentTagGoroutines(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			// runHelper opens a Store of its own.
			if err := runHelper("tag", s.Root(), fmt.Sprintf("app%d", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	checkTags(t, s, 10, 5)
}

// checkTags checks that the store holds images app0..app<names-1>, each
// tagged t0..t<tags-1>.
func checkTags(t *testing.T, s *Store, names, tags int) {
	t.Helper()
	imgs, err := s.Images(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]bool)
	for _, img := range imgs {
		got[img.Name+":"+img.Tag] = true
	}
	var missing []string
	for i := range names {
		for j := range tags {
			if ref := fmt.Sprintf("app%d:t%d", i, j); !got[ref] {
				missing = append(missing, ref)
			}
		}
	}
	if len(missing) > 0 || len(imgs) != names*tags {
		t.Errorf("store holds %d images, missing %s", len(imgs), strings.Join(missing, " "))
	}
}
