// Package lockfile takes flock(2) locks on files, waiting with a context.
// A lock belongs to the open file description, so it is released when the
// holder closes it or dies, even by SIGKILL or a host reboot: a held lock is
// proof of a live holder, which PID files cannot give.
package lockfile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned by TryLock when another holder has the lock.
var ErrLocked = errors.New("locked by another process")

const poll = 20 * time.Millisecond

// Lock takes an exclusive (or, with shared, a shared) lock on path,
// creating the file, and waits until it is free or ctx ends.
func Lock(ctx context.Context, path string, shared bool) (unlock func(), err error) {
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return release(f), nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}

// TryLock takes an exclusive lock without waiting; ErrLocked means another
// process holds it.
func TryLock(path string) (unlock func(), err error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return release(f), nil
}

// Held reports whether some process holds an exclusive lock on path. It
// probes with a shared lock, so concurrent checkers do not fool each other.
func Held(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false // no lock file: nobody ever locked it
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	return errors.Is(err, unix.EWOULDBLOCK)
}

func open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	return f, nil
}

func release(f *os.File) func() {
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }
}
