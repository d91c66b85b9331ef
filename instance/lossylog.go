package instance

import (
	"io"
	"log/slog"
	"sync"
	"time"
)

// lossyLog writes the app's output to its log and never fails: a log that
// cannot be written (a full disk, an I/O error) must not stop the copy of
// the guest's output, or the guest's writes would block once the virtio
// port's buffer fills and the app would hang. What could not be written
// is counted and reported in monitor.log, at most every warnEvery.
type lossyLog struct {
	w         io.Writer
	log       *slog.Logger
	stream    string
	warnEvery time.Duration

	mu       sync.Mutex
	dropped  int64 // bytes of output in writes that failed
	failing  bool  // the last write failed
	failures int64
	lastWarn time.Time
	now      func() time.Time
}

func newLossyLog(w io.Writer, log *slog.Logger, stream string) *lossyLog {
	return &lossyLog{w: w, log: log, stream: stream, warnEvery: 10 * time.Second, now: time.Now}
}

func (l *lossyLog) Write(p []byte) (int, error) {
	if _, err := l.w.Write(p); err != nil {
		l.mu.Lock()
		l.failing = true
		l.dropped += int64(len(p))
		l.failures++
		if t := l.now(); l.failures == 1 || t.Sub(l.lastWarn) >= l.warnEvery {
			l.lastWarn = t
			l.log.Warn("the app's log cannot be written: its output is dropped from the log (it still reaches attached clients)",
				"stream", l.stream, "droppedBytes", l.dropped, "failedWrites", l.failures, "err", err)
		}
		l.mu.Unlock()
	} else {
		l.mu.Lock()
		if l.failing {
			// Said once the log has room again: the warnings above may
			// have been lost with it (monitor.log lives on the same disk).
			l.failing = false
			l.log.Warn("the app's log is written again: output was dropped from it meanwhile",
				"stream", l.stream, "droppedBytes", l.dropped, "failedWrites", l.failures)
		}
		l.mu.Unlock()
	}
	return len(p), nil
}

// report logs the totals once the VM ended, when anything was dropped.
func (l *lossyLog) report() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures > 0 {
		l.log.Warn("app output dropped from the log", "stream", l.stream, "droppedBytes", l.dropped, "failedWrites", l.failures)
	}
}
