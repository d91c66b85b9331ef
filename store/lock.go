package store

import (
	"context"
	"fmt"

	"github.com/nosproject/nos/internal/lockfile"
)

// Lock takes the store's exclusive lock, waiting until no other process or
// goroutine holds it or ctx ends. The returned function releases the lock;
// calling it more than once is harmless.
func (s *Store) Lock(ctx context.Context) (unlock func(), err error) {
	return s.lock(ctx, false)
}

// RLock takes the store's shared lock, which any number of readers may hold
// while nobody holds the exclusive lock. It waits like [Store.Lock].
func (s *Store) RLock(ctx context.Context) (unlock func(), err error) {
	return s.lock(ctx, true)
}

// lock opens a fresh file description for every call (lockfile does):
// flock(2) locks belong to the open file description, so sharing one would
// let goroutines of the same process through together.
func (s *Store) lock(ctx context.Context, shared bool) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("locking store: %w", err)
	}
	unlock, err := lockfile.Lock(ctx, s.path(lockFile), shared)
	if err != nil {
		return nil, fmt.Errorf("locking store: %w", err)
	}
	return unlock, nil
}
