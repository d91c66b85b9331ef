package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// lockPoll is how often a waiting Lock or RLock retries.
const lockPoll = 20 * time.Millisecond

// Lock takes the store's exclusive lock, waiting until no other process or
// goroutine holds it or ctx ends. The returned function releases the lock;
// calling it more than once is harmless.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) {
	return s.lock(ctx, unix.LOCK_EX)
}

// RLock takes the store's shared lock, which any number of readers may hold
// while nobody holds the exclusive lock. It waits like [Store.Lock].
func (s *Store) RLock(ctx context.Context) (unlock func(), err error) {
	return s.lock(ctx, unix.LOCK_SH)
}

// lock opens a fresh file description for every call: flock(2) locks belong
// to the open file description, so sharing one would let goroutines of the
// same process through together.
func (s *Store) lock(ctx context.Context, how int) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("locking store: %w", err)
	}
	f, err := os.OpenFile(s.path(lockFile), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking store: %w", err)
	}
	if err := waitFlock(ctx, f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking store: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

func waitFlock(ctx context.Context, f *os.File, how int) error {
	tick := time.NewTicker(lockPoll)
	defer tick.Stop()
	for {
		err := flock(f, how|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}
