package logfile

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// How the readers find their way through the rotated files while a writer
// may be rotating them. A rotation shifts the files one by one, oldest
// first (app.log.<k> to app.log.<k+1>, app.log to app.log.1), so a file
// only ever moves to a higher number, and a file that stays at app.log.<k>
// from one moment to a later one proves that no rotation moved it between.
// Around such a file F at app.log.<k>:
//
//   - the path app.log.<k+1> holds F's predecessor or nothing (the
//     predecessor was already shifted further by a rotation in progress);
//   - the path app.log.<k-1> (app.log for k = 1) holds F's successor or
//     nothing (a rotation in progress has not shifted it yet).
//
// So a neighbour opened while F stays put is the right one, and a missing
// one means "look again". Readers hold their files open, so a file keeps
// its identity even after it is removed, and its link count then tells
// that it was removed.

// retryAttempts bounds how often predecessor and successor look again
// when a rotation gets in their way; retryDelay is the pause between.
const (
	retryAttempts = 50
	retryDelay    = time.Millisecond
)

// fileID returns the identity of the file at path, nil if it is missing.
func fileID(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logfile: stat %s: %w", path, err)
	}
	return fi, nil
}

// openIfExists opens path for reading; it returns nil if it is missing.
func openIfExists(path string) (*os.File, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("logfile: %w", err)
	}
	return f, nil
}

// openHead opens the newest log file of dir: app.log or, while the writer
// is between renaming it and creating the next one, the newest rotated
// file. It returns nil if there is none.
func openHead(dir string) (*os.File, error) {
	for range retryAttempts {
		f, err := openIfExists(rotatedPath(dir, 0))
		if f != nil || err != nil {
			return f, err
		}
		if f, _, err = openFirst(dir, 1); f != nil || err != nil {
			return f, err
		}
		nums, err := rotatedNumbers(dir)
		if err != nil {
			return nil, fmt.Errorf("logfile: %w", err)
		}
		if len(nums) == 0 {
			return nil, nil
		}
		if f, _, err = openFirst(dir, nums[0]); f != nil || err != nil {
			return f, err
		}
		time.Sleep(retryDelay)
	}
	return nil, nil
}

// removed reports whether the open file described by fi has been removed
// from its directory.
func removed(fi os.FileInfo) bool {
	n, err := linkCount(fi)
	return err == nil && n == 0
}

// errNoLinkCount is returned by linkCount where the platform has none.
var errNoLinkCount = errors.New("link count not available")

// position returns the number k such that fi is at app.log.<k> (0 for
// app.log), trying hint first, or -1 if it is not found.
func position(dir string, fi os.FileInfo, hint int) (int, error) {
	at := func(k int) (bool, error) {
		id, err := fileID(rotatedPath(dir, k))
		return id != nil && os.SameFile(fi, id), err
	}
	if ok, err := at(hint); ok || err != nil {
		return hint, err
	}
	if ok, err := at(0); ok || err != nil {
		return 0, err
	}
	nums, err := rotatedNumbers(dir)
	if err != nil {
		return -1, fmt.Errorf("logfile: %w", err)
	}
	for _, k := range nums {
		if ok, err := at(k); ok || err != nil {
			return k, err
		}
	}
	return -1, nil
}

// stillAt reports whether the file fi is still at app.log.<k>.
func stillAt(dir string, fi os.FileInfo, k int) (bool, error) {
	id, err := fileID(rotatedPath(dir, k))
	return id != nil && os.SameFile(fi, id), err
}

// predecessor opens the log file written before f, which was last seen at
// app.log.<hint>, and returns it with its number. It returns nil if f is
// the oldest file, or f or its predecessor has been removed.
func predecessor(dir string, f *os.File, hint int) (*os.File, int, error) {
	for range retryAttempts {
		fi, err := f.Stat()
		if err != nil {
			return nil, 0, fmt.Errorf("logfile: stat %s: %w", f.Name(), err)
		}
		if removed(fi) {
			// Older files are removed before newer ones.
			return nil, 0, nil
		}
		k, err := position(dir, fi, hint)
		if err != nil {
			return nil, 0, err
		}
		if k < 0 {
			time.Sleep(retryDelay)
			continue
		}
		hint = k
		// The predecessor is at k+1, or at k+2 if a rotation in progress
		// has shifted it but not yet f. If neither exists, f is the oldest,
		// unless a failed rotation left a gap: take the next file up then.
		prev, m, err := openFirst(dir, k+1, k+2)
		if err != nil {
			return nil, 0, err
		}
		if prev == nil {
			nums, err := rotatedNumbers(dir)
			if err != nil {
				return nil, 0, fmt.Errorf("logfile: %w", err)
			}
			i, _ := slices.BinarySearch(nums, k+3)
			if i < len(nums) {
				if prev, m, err = openFirst(dir, nums[i]); err != nil {
					return nil, 0, err
				}
				if prev == nil {
					continue // it moved away; look again
				}
			}
		}
		if ok, err := stillAt(dir, fi, k); !ok || err != nil {
			if prev != nil {
				prev.Close()
			}
			if err != nil {
				return nil, 0, err
			}
			continue
		}
		return prev, m, nil
	}
	// Rotations kept getting in the way: do without the older files.
	return nil, 0, nil
}

// openFirst opens the first of the files app.log.<k> for ks that exists
// and returns it with its k; nil if none does.
func openFirst(dir string, ks ...int) (*os.File, int, error) {
	for _, k := range ks {
		f, err := openIfExists(rotatedPath(dir, k))
		if f != nil || err != nil {
			return f, k, err
		}
	}
	return nil, 0, nil
}

// successor opens the log file written after the rotated file f. It
// returns nil if that file does not exist yet or could not be pinned down;
// the caller tries again later. If f has been removed, all files left are
// newer and the oldest of them is the successor; the files in between are
// lost.
func successor(dir string, f *os.File) (*os.File, error) {
	hint := 1
	for range retryAttempts {
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("logfile: stat %s: %w", f.Name(), err)
		}
		if removed(fi) {
			nums, err := rotatedNumbers(dir)
			if err != nil {
				return nil, fmt.Errorf("logfile: %w", err)
			}
			for i := len(nums) - 1; i >= -1; i-- {
				k := 0
				if i >= 0 {
					k = nums[i]
				}
				next, err := openIfExists(rotatedPath(dir, k))
				if next != nil || err != nil {
					return next, err
				}
			}
			return nil, nil
		}
		k, err := position(dir, fi, hint)
		if err != nil {
			return nil, err
		}
		if k == 0 {
			return nil, nil // not rotated after all
		}
		if k < 0 {
			time.Sleep(retryDelay)
			continue
		}
		hint = k
		next, err := openIfExists(rotatedPath(dir, k-1))
		if err != nil || next == nil {
			return nil, err
		}
		ok, err := stillAt(dir, fi, k)
		if ok && err == nil {
			return next, nil
		}
		next.Close()
		if err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// isRotated reports whether f is no longer the current log file of dir.
func isRotated(dir string, f *os.File) (bool, error) {
	cur, err := fileID(rotatedPath(dir, 0))
	if err != nil || cur == nil {
		return cur == nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("logfile: stat %s: %w", f.Name(), err)
	}
	return !os.SameFile(fi, cur), nil
}
