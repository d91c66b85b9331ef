package logfile

import (
	"context"
	"os"
	"time"
)

// pollInterval is how often Follow looks for new data when idle.
const pollInterval = 50 * time.Millisecond

// Follow calls emit for the last tail records stored in dir (all if
// tail < 0), oldest first, then for each record appended later, until it
// is stopped. It follows the log across rotations: when app.log has been
// replaced, it finishes reading the file it has open and continues with the
// file written after it, from its start, so no record is lost or repeated
// unless the reader falls so far behind that files are removed before it
// reads them. If no log file exists yet, every record written later is
// emitted, whatever tail is. Unterminated last lines are never emitted.
//
// Whenever it has read everything there is, Follow calls done (nil means
// never done); once done reports true, it reads what was appended in the
// meantime and returns nil. It returns ctx.Err() when ctx is cancelled, and
// an error returned by emit unchanged. It polls the files every 50 ms.
func Follow(ctx context.Context, dir string, tail int, done func() bool, emit func(Record) error) error {
	if done == nil {
		done = func() bool { return false }
	}
	final := false

	// Emit the tail and find the file to follow.
	var head *os.File
	var lr *lineReader
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := openHead(dir)
		if err != nil {
			return err
		}
		if h != nil {
			head, lr = h, newLineReader(h)
			recs, err := collectTail(dir, head, lr, tail)
			if err != nil {
				head.Close()
				return err
			}
			for _, r := range recs {
				if err := emit(r); err != nil {
					head.Close()
					return err
				}
			}
			break
		}
		if final {
			return nil
		}
		// Nothing was stored when Follow started, so all that comes is new.
		tail = -1
		if done() {
			final = true
			continue
		}
		if err := sleep(ctx); err != nil {
			return err
		}
	}
	defer func() { head.Close() }()

	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := lr.readAvailable(emit); err != nil {
			return err
		}
		rotated, err := isRotated(dir, head)
		if err != nil {
			return err
		}
		if rotated {
			// The writer closed head before replacing it, so this read
			// gets all the rest of it.
			if err := lr.readAvailable(emit); err != nil {
				return err
			}
			next, err := successor(dir, head)
			if err != nil {
				return err
			}
			if next != nil {
				head.Close()
				head, lr = next, newLineReader(next)
				continue
			}
			// The next file is not there yet (the writer is between
			// renaming and creating); wait for it.
		}
		if final {
			return nil
		}
		if done() {
			final = true
			continue
		}
		if err := sleep(ctx); err != nil {
			return err
		}
	}
}

// sleep waits for one poll interval or until ctx is cancelled.
func sleep(ctx context.Context) error {
	t := time.NewTimer(pollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
