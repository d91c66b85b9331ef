package logfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// FileName is the name of the current log file in the instance directory.
// Rotated files are named FileName.1 (the newest) to FileName.<MaxFiles-1>
// (the oldest).
const FileName = "app.log"

// Defaults used for zero fields of [Options].
const (
	DefaultMaxSize  int64 = 10 << 20
	DefaultMaxFiles       = 3
)

// maxPending is how many bytes of an unterminated line a stream holds
// before it writes them as a record of their own.
const maxPending = 16 << 10

// Options configures a [Writer].
type Options struct {
	// MaxSize is the size in bytes a log file may reach before it is
	// rotated. Zero or negative means DefaultMaxSize. A single record larger
	// than MaxSize is still written, into a file of its own.
	MaxSize int64
	// MaxFiles is the number of files kept, including the current one.
	// Zero or negative means DefaultMaxFiles; 1 means the current file is
	// discarded when it is full.
	MaxFiles int
	// Now returns the time stamped on records; nil means time.Now. It is
	// meant for tests.
	Now func() time.Time
}

// Writer appends records to the log files of one instance directory and
// rotates them. It is safe for concurrent use; records written concurrently
// through different streams are never interleaved within a line.
type Writer struct {
	dir      string
	maxSize  int64
	maxFiles int
	now      func() time.Time

	mu      sync.Mutex
	f       *os.File // nil after Close or a failed reopen
	size    int64
	needNL  bool // the file does not end in a newline (torn record)
	closed  bool
	streams map[*stream]struct{}
	buf     bytes.Buffer
}

// Create opens dir/app.log for appending, creating it (mode 0600) if
// needed. Existing records are kept, so the logs survive restarts of the
// instance. The directory must exist.
func Create(dir string, o Options) (*Writer, error) {
	w := &Writer{
		dir:      dir,
		maxSize:  o.MaxSize,
		maxFiles: o.MaxFiles,
		now:      o.Now,
		streams:  make(map[*stream]struct{}),
	}
	if w.maxSize <= 0 {
		w.maxSize = DefaultMaxSize
	}
	if w.maxFiles <= 0 {
		w.maxFiles = DefaultMaxFiles
	}
	if w.now == nil {
		w.now = time.Now
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

// open opens the current file and finds out its size and whether its last
// record is torn, in which case the next record starts on a new line.
func (w *Writer) open() error {
	path := filepath.Join(w.dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("logfile: open log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("logfile: stat %s: %w", path, err)
	}
	w.f, w.size, w.needNL = f, fi.Size(), false
	if w.size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], w.size-1); err != nil {
			f.Close()
			w.f = nil
			return fmt.Errorf("logfile: read end of %s: %w", path, err)
		}
		w.needNL = last[0] != '\n'
	}
	return nil
}

// Stream returns a writer for the stream called name (normally "stdout" or
// "stderr"). It splits what is written to it into lines and writes each
// complete line as a record. An unterminated line is held until its newline
// arrives, until 16 KiB of it are pending (they are then written as a
// record without a trailing newline, cut before an incomplete UTF-8
// sequence), or until the stream is closed. Closing the stream flushes it
// but leaves the Writer open.
//
// A stream must not be written from several goroutines at once if the
// order of its lines matters; it is nevertheless safe to do so.
func (w *Writer) Stream(name string) io.WriteCloser {
	s := &stream{w: w, name: name}
	w.mu.Lock()
	if !w.closed {
		w.streams[s] = struct{}{}
	}
	w.mu.Unlock()
	return s
}

// Close flushes the pending partial lines of all streams that are still
// open, closes them and closes the log file. Later writes fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	streams := make([]*stream, 0, len(w.streams))
	for s := range w.streams {
		streams = append(streams, s)
	}
	w.mu.Unlock()

	var errs []error
	for _, s := range streams {
		errs = append(errs, s.Close())
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("logfile: close %s: %w", w.f.Name(), err))
		}
		w.f = nil
	}
	return errors.Join(errs...)
}

// jsonRecord is the on-disk form of a record.
type jsonRecord struct {
	Time   string  `json:"time"`
	Stream string  `json:"stream"`
	Log    *string `json:"log"`
}

// writeRecord appends one record, rotating first if it would not fit.
func (w *Writer) writeRecord(stream string, text []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("logfile: write %s record: %w", stream, os.ErrClosed)
	}
	log := string(text)
	w.buf.Reset()
	enc := json.NewEncoder(&w.buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonRecord{
		Time:   w.now().UTC().Format(time.RFC3339Nano),
		Stream: stream,
		Log:    &log,
	}); err != nil {
		return fmt.Errorf("logfile: encode %s record: %w", stream, err)
	}

	var rotErr error
	if w.f != nil && w.size > 0 && w.size+int64(w.buf.Len()) > w.maxSize {
		rotErr = w.rotate()
	}
	if w.f == nil {
		// A previous rotation could not reopen the file; try again.
		if err := w.open(); err != nil {
			return errors.Join(rotErr, err)
		}
	}
	rec := w.buf.Bytes()
	if w.needNL {
		rec = append([]byte{'\n'}, rec...)
	}
	n, err := w.f.Write(rec)
	w.size += int64(n)
	if err != nil {
		// A torn record may be on disk; start the next one on a new line.
		w.needNL = n > 0 && rec[n-1] != '\n'
		return errors.Join(rotErr, fmt.Errorf("logfile: write %s record to %s: %w", stream, w.f.Name(), err))
	}
	w.needNL = false
	return rotErr
}

// rotatedPath returns the path of rotated file k, or of the current file for 0.
func rotatedPath(dir string, k int) string {
	if k == 0 {
		return filepath.Join(dir, FileName)
	}
	return filepath.Join(dir, FileName+"."+strconv.Itoa(k))
}

// rotate closes the current file, shifts the rotated files, drops those
// beyond maxFiles and opens a new current file. If a rename fails the
// writer keeps appending to whatever app.log then is, and the error is
// returned.
func (w *Writer) rotate() error {
	var errs []error
	if err := w.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("logfile: close %s for rotation: %w", w.f.Name(), err))
	}
	w.f = nil
	// Remove the oldest file (app.log itself if MaxFiles is 1), and stale
	// ones left by a larger MaxFiles; shift the others, oldest first so
	// that none is overwritten.
	nums, err := rotatedNumbers(w.dir)
	if err != nil {
		errs = append(errs, fmt.Errorf("logfile: rotate: %w", err))
	}
	for i := len(nums) - 1; i >= -1; i-- {
		k := 0
		if i >= 0 {
			k = nums[i]
		}
		var err error
		if k >= w.maxFiles-1 {
			err = os.Remove(rotatedPath(w.dir, k))
		} else {
			err = os.Rename(rotatedPath(w.dir, k), rotatedPath(w.dir, k+1))
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("logfile: rotate: %w", err))
		}
	}
	if err := w.open(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// rotatedNumbers returns the numbers k of the files app.log.<k> in dir, in
// ascending order (newest first). A missing directory has none.
func rotatedNumbers(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var nums []int
	for _, e := range ents {
		suffix, ok := strings.CutPrefix(e.Name(), FileName+".")
		if !ok {
			continue
		}
		k, err := strconv.Atoi(suffix)
		if err != nil || k <= 0 || strconv.Itoa(k) != suffix {
			continue
		}
		nums = append(nums, k)
	}
	// ReadDir sorts by name, which is not numeric order ("10" < "2").
	slices.Sort(nums)
	return nums, nil
}

// stream is the io.WriteCloser returned by Writer.Stream.
type stream struct {
	w    *Writer
	name string

	mu     sync.Mutex
	buf    []byte // pending unterminated line, shorter than maxPending
	closed bool
}

// Write splits p into lines and writes the complete ones as records. It
// always consumes all of p; if records could not be written it returns the
// first error, and those records are lost.
func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("logfile: write to %s stream: %w", s.name, os.ErrClosed)
	}
	total := len(p)
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for len(p) > 0 {
		n := min(len(p), maxPending-len(s.buf))
		if i := bytes.IndexByte(p[:n], '\n'); i >= 0 {
			n = i + 1
			if len(s.buf) == 0 {
				keep(s.w.writeRecord(s.name, p[:n]))
			} else {
				s.buf = append(s.buf, p[:n]...)
				keep(s.w.writeRecord(s.name, s.buf))
				s.buf = s.buf[:0]
			}
		} else {
			s.buf = append(s.buf, p[:n]...)
			if len(s.buf) >= maxPending {
				keep(s.flushPartial())
			}
		}
		p = p[n:]
	}
	return total, firstErr
}

// flushPartial writes the full pending buffer as a record, keeping back an
// incomplete UTF-8 sequence at its end so that it is not mangled.
func (s *stream) flushPartial() error {
	cut := len(s.buf)
	for k := 1; k < utf8.UTFMax && k < len(s.buf); k++ {
		if utf8.RuneStart(s.buf[len(s.buf)-k]) {
			if !utf8.FullRune(s.buf[len(s.buf)-k:]) {
				cut = len(s.buf) - k
			}
			break
		}
	}
	err := s.w.writeRecord(s.name, s.buf[:cut])
	s.buf = s.buf[:copy(s.buf, s.buf[cut:])]
	return err
}

// Close writes the pending partial line, if any, as a record. It does not
// close the Writer.
func (s *stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if len(s.buf) > 0 {
		err = s.w.writeRecord(s.name, s.buf)
		s.buf = nil
	}
	s.w.mu.Lock()
	delete(s.w.streams, s)
	s.w.mu.Unlock()
	return err
}
