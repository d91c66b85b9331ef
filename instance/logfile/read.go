package logfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Record is one stored piece of application output.
type Record struct {
	// Time is when the record was written.
	Time time.Time
	// Stream is the name of the stream, "stdout" or "stderr".
	Stream string
	// Log is the text. It ends in a newline unless the line was cut
	// because it was too long or the stream was closed before it ended.
	Log string
}

// maxLine bounds the length of a line a reader buffers. Records written by
// a Writer are far shorter (16 KiB of text, escaped); longer lines can only
// be corruption and are skipped.
const maxLine = 1 << 20

// readChunk is how much a reader asks the file for at a time.
const readChunk = 64 << 10

// parseLine decodes one line (without its newline). It reports false for a
// line that is not a valid record.
func parseLine(line []byte) (Record, bool) {
	var jr jsonRecord
	if err := json.Unmarshal(line, &jr); err != nil || jr.Log == nil {
		return Record{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, jr.Time)
	if err != nil {
		return Record{}, false
	}
	return Record{Time: t, Stream: jr.Stream, Log: *jr.Log}, true
}

// lineReader reads the records of one file incrementally. Only lines ending
// in a newline count; an unterminated tail is kept until its newline
// arrives, so a record that is still being written is never returned.
type lineReader struct {
	f     *os.File
	buf   []byte // data read but not yet consumed: a partial line
	skip  bool   // discarding an over-long line up to its newline
	chunk []byte
}

func newLineReader(f *os.File) *lineReader {
	return &lineReader{f: f}
}

// readAvailable reads the file up to its current end and calls fn for each
// valid record in it. An error from fn is returned unchanged.
func (lr *lineReader) readAvailable(fn func(Record) error) error {
	if lr.chunk == nil {
		lr.chunk = make([]byte, readChunk)
	}
	for {
		n, err := lr.f.Read(lr.chunk)
		if n > 0 {
			lr.buf = append(lr.buf, lr.chunk[:n]...)
			if ferr := lr.consume(fn); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("logfile: read %s: %w", lr.f.Name(), err)
		}
	}
}

// consume hands the complete lines in lr.buf to fn and keeps the rest.
func (lr *lineReader) consume(fn func(Record) error) error {
	data := lr.buf
	defer func() {
		// Keep the unconsumed rest at the start of the buffer.
		lr.buf = lr.buf[:copy(lr.buf, data)]
	}()
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if lr.skip {
			if i < 0 {
				data = nil
				return nil
			}
			data = data[i+1:]
			lr.skip = false
			continue
		}
		if i < 0 {
			if len(data) > maxLine {
				data = nil
				lr.skip = true
			}
			return nil
		}
		line := data[:i]
		data = data[i+1:]
		if r, ok := parseLine(line); ok {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// collectTail returns the last tail records (all if tail < 0) of the log
// ending with head, oldest first. head is read through lr, which is left at
// the end of the data read; older files are found with predecessor and
// read only as far back as needed.
func collectTail(dir string, head *os.File, lr *lineReader, tail int) ([]Record, error) {
	var parts [][]Record // newest first
	count := 0
	add := func(r Record) error {
		parts[len(parts)-1] = append(parts[len(parts)-1], r)
		count++
		return nil
	}
	parts = append(parts, nil)
	if err := lr.readAvailable(add); err != nil {
		return nil, err
	}
	f, pos := head, 0
	defer func() {
		if f != head {
			f.Close()
		}
	}()
	for tail < 0 || count < tail {
		prev, prevPos, err := predecessor(dir, f, pos)
		if err != nil {
			return nil, err
		}
		if prev == nil {
			break
		}
		if f != head {
			f.Close()
		}
		f, pos = prev, prevPos
		parts = append(parts, nil)
		if err := newLineReader(f).readAvailable(add); err != nil {
			return nil, err
		}
	}
	if count == 0 {
		return nil, nil
	}
	all := make([]Record, 0, count)
	for i := len(parts) - 1; i >= 0; i-- {
		all = append(all, parts[i]...)
	}
	if tail >= 0 && len(all) > tail {
		all = all[len(all)-tail:]
	}
	return all, nil
}

// Read returns the records stored in dir, oldest first, across the rotated
// files (app.log.<N-1> ... app.log.1, app.log). With tail >= 0 only the
// last tail records are returned; tail < 0 returns all. Missing files or a
// missing directory yield no records. A torn last line and corrupt lines
// are skipped without error; they are not counted.
func Read(dir string, tail int) ([]Record, error) {
	head, err := openHead(dir)
	if err != nil || head == nil {
		return nil, err
	}
	defer head.Close()
	return collectTail(dir, head, newLineReader(head), tail)
}

// Format returns a record's text as `nos logs` prints it. With timestamps
// the text is prefixed by the record's time in RFC 3339 with nanoseconds
// (UTC) and a space, and a newline is added if the text lacks one, so that
// every record starts on its own line; without, the text is returned
// unchanged so that cut lines are put back together.
func Format(r Record, timestamps bool) string {
	if !timestamps {
		return r.Log
	}
	s := r.Time.UTC().Format(time.RFC3339Nano) + " " + r.Log
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}
