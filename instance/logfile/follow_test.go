package logfile

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const followTimeout = 20 * time.Second

type follower struct {
	recs chan Record
	err  chan error
}

// startFollow runs Follow in the background, collecting what it emits.
func startFollow(ctx context.Context, dir string, tail int, done func() bool) *follower {
	f := &follower{recs: make(chan Record, 1<<17), err: make(chan error, 1)}
	go func() {
		f.err <- Follow(ctx, dir, tail, done, func(r Record) error {
			f.recs <- r
			return nil
		})
	}()
	return f
}

// next returns the next n records emitted.
func (f *follower) next(t *testing.T, n int) []Record {
	t.Helper()
	var out []Record
	timeout := time.After(followTimeout)
	for len(out) < n {
		select {
		case r := <-f.recs:
			out = append(out, r)
		case err := <-f.err:
			t.Fatalf("Follow returned %v after %d of %d records", err, len(out), n)
		case <-timeout:
			t.Fatalf("timed out after %d of %d records", len(out), n)
		}
	}
	return out
}

// none checks that nothing is emitted for a few poll intervals.
func (f *follower) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-f.recs:
		t.Fatalf("unexpected record %+v", r)
	case <-time.After(4 * pollInterval):
	}
}

// wait returns Follow's result.
func (f *follower) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.err:
		return err
	case <-time.After(followTimeout):
		t.Fatal("Follow did not return")
		return nil
	}
}

// rest returns the records emitted and not yet received, after Follow
// has returned.
func (f *follower) rest() []Record {
	var out []Record
	for {
		select {
		case r := <-f.recs:
			out = append(out, r)
		default:
			return out
		}
	}
}

func logs(rs []Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Log)
	}
	return out
}

func seqLines(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, seqLine(i))
	}
	return out
}

// checkSeq checks that rs are exactly the seqLines from..to-1.
func checkSeq(t *testing.T, rs []Record, from, to int) {
	t.Helper()
	got := logs(rs)
	want := seqLines(from, to)
	if len(got) == len(want) {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("records (-want +got):\n%s", diff)
		}
		return
	}
	// Show where the sequence breaks rather than a huge diff.
	for i, l := range got {
		if i >= len(want) || l != want[i] {
			t.Fatalf("got %d records, want %d; record %d is %q", len(got), len(want), i, l)
		}
	}
	t.Fatalf("got %d records, want %d", len(got), len(want))
}

func TestFollowNewRecords(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{})
	defer w.Close()
	s := w.Stream("stdout")
	io.WriteString(s, "a\nb\nc\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := startFollow(ctx, dir, 2, nil)
	if diff := cmp.Diff([]string{"b\n", "c\n"}, logs(f.next(t, 2))); diff != "" {
		t.Errorf("tail (-want +got):\n%s", diff)
	}
	f.none(t)
	io.WriteString(s, "d\ne")
	if diff := cmp.Diff([]string{"d\n"}, logs(f.next(t, 1))); diff != "" {
		t.Errorf("new records (-want +got):\n%s", diff)
	}
	f.none(t) // "e" is pending in the stream
	io.WriteString(w.Stream("stderr"), "x\n")
	io.WriteString(s, "\n")
	got := f.next(t, 2)
	want := []Record{{Stream: "stderr", Log: "x\n"}, {Stream: "stdout", Log: "e\n"}}
	if diff := cmp.Diff(want, got, ignoreTime); diff != "" {
		t.Errorf("new records (-want +got):\n%s", diff)
	}
	f.none(t)
	cancel()
	if err := f.wait(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel = %v, want context.Canceled", err)
	}
}

func TestFollowTailZeroAndAll(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{MaxSize: 1000, MaxFiles: 100})
	s := w.Stream("stdout")
	for i := range 50 {
		io.WriteString(s, seqLine(i))
	}
	for _, tc := range []struct {
		tail, from int
	}{{0, 50}, {-1, 0}, {7, 43}, {1000, 0}} {
		ctx, cancel := context.WithCancel(context.Background())
		f := startFollow(ctx, dir, tc.tail, nil)
		got := f.next(t, 50-tc.from)
		checkSeq(t, got, tc.from, 50)
		f.none(t)
		cancel()
		if err := f.wait(t); !errors.Is(err, context.Canceled) {
			t.Errorf("tail %d: Follow = %v, want context.Canceled", tc.tail, err)
		}
	}
	w.Close()
}

// TestFollowFastRotation writes many records as fast as possible through
// small files while following: many rotations happen between two polls.
// No file is removed, so every record must arrive exactly once, in order.
func TestFollowFastRotation(t *testing.T) {
	for _, startAfter := range []int{0, 3000} {
		dir := t.TempDir()
		w := mustCreate(t, dir, Options{MaxSize: 16 << 10, MaxFiles: 100000})
		s := w.Stream("stdout")
		const n = 20000
		for i := range startAfter {
			io.WriteString(s, seqLine(i))
		}
		var finished atomic.Bool
		ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
		f := startFollow(ctx, dir, -1, finished.Load)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			for i := startAfter; i < n; i++ {
				if _, err := io.WriteString(s, seqLine(i)); err != nil {
					t.Errorf("write: %v", err)
				}
			}
			if err := w.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			finished.Store(true)
		}()
		err := f.wait(t)
		<-wrote
		if err != nil {
			t.Fatalf("Follow: %v", err)
		}
		cancel()
		checkSeq(t, f.rest(), 0, n)
		if files := logFiles(t, dir); len(files) < 50 {
			t.Errorf("only %d files: rotation was not exercised", len(files))
		}
	}
}

// TestFollowPacedRotation keeps the follower close behind the writer, so
// no file it has not read is removed, even with MaxFiles 1 or 2; every
// record must arrive exactly once, in order.
func TestFollowPacedRotation(t *testing.T) {
	for _, maxFiles := range []int{1, 2, 3} {
		dir := t.TempDir()
		// About 20 records per file, 10 per burst: at most one rotation
		// per burst.
		w := mustCreate(t, dir, Options{MaxSize: 20 * int64(len(line(0, "stdout", seqLine(0)))+20), MaxFiles: maxFiles})
		s := w.Stream("stdout")
		ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
		var finished atomic.Bool
		f := startFollow(ctx, dir, -1, finished.Load)
		const bursts, per = 30, 10
		var got []Record
		for b := range bursts {
			for i := b * per; i < (b+1)*per; i++ {
				io.WriteString(s, seqLine(i))
			}
			got = append(got, f.next(t, per)...)
		}
		w.Close()
		finished.Store(true)
		if err := f.wait(t); err != nil {
			t.Fatalf("MaxFiles %d: Follow: %v", maxFiles, err)
		}
		cancel()
		checkSeq(t, append(got, f.rest()...), 0, bursts*per)
		if files := logFiles(t, dir); len(files) != maxFiles {
			t.Errorf("MaxFiles %d: files %v", maxFiles, files)
		}
	}
}

func TestFollowDone(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{MaxSize: 4096, MaxFiles: 1000})
	s := w.Stream("stdout")
	for i := range 200 {
		io.WriteString(s, seqLine(i))
	}
	io.WriteString(s, "partial") // never terminated: not emitted
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2024-05-01T12:00:00Z","stream":"stdout","log":"torn`)
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
	defer cancel()
	fl := startFollow(ctx, dir, -1, func() bool { return true })
	if err := fl.wait(t); err != nil {
		t.Fatalf("Follow: %v", err)
	}
	checkSeq(t, fl.rest(), 0, 200)
	w.Close()
}

func TestFollowPartialLineCompletedLater(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	full := line(1, "stdout", "whole\n")
	if err := os.WriteFile(path, []byte(full[:20]), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := startFollow(ctx, dir, -1, nil)
	f.none(t)
	af, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	af.WriteString(full[20:])
	if diff := cmp.Diff([]Record{rec(1, "stdout", "whole\n")}, f.next(t, 1)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	f.none(t)
}

func TestFollowBeforeLogExists(t *testing.T) {
	dir := t.TempDir()
	var finished atomic.Bool
	ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
	defer cancel()
	// tail 0, but nothing exists yet: everything written later is new.
	f := startFollow(ctx, dir, 0, finished.Load)
	f.none(t)
	w := mustCreate(t, dir, Options{MaxSize: 1000, MaxFiles: 1000})
	s := w.Stream("stdout")
	for i := range 100 {
		io.WriteString(s, seqLine(i))
	}
	w.Close()
	finished.Store(true)
	if err := f.wait(t); err != nil {
		t.Fatalf("Follow: %v", err)
	}
	checkSeq(t, f.rest(), 0, 100)
}

func TestFollowNothingAndDone(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		err := Follow(context.Background(), dir, -1, func() bool { return true }, func(r Record) error {
			t.Errorf("unexpected record %+v", r)
			return nil
		})
		if err != nil {
			t.Errorf("Follow(%s) = %v, want nil", dir, err)
		}
	}
}

func TestFollowCancel(t *testing.T) {
	for _, exists := range []bool{false, true} {
		dir := t.TempDir()
		if exists {
			w := mustCreate(t, dir, Options{})
			io.WriteString(w.Stream("stdout"), "x\n")
			w.Close()
		}
		ctx, cancel := context.WithCancel(context.Background())
		f := startFollow(ctx, dir, 0, func() bool { return false })
		f.none(t)
		cancel()
		if err := f.wait(t); !errors.Is(err, context.Canceled) {
			t.Errorf("exists=%v: Follow = %v, want context.Canceled", exists, err)
		}
	}
}

func TestFollowEmitError(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{})
	s := w.Stream("stdout")
	io.WriteString(s, "a\nb\n")
	defer w.Close()
	errStop := errors.New("stop")
	var n int
	emit := func(Record) error {
		n++
		if n == 3 {
			return errStop
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() { errc <- Follow(context.Background(), dir, -1, nil, emit) }()
	time.Sleep(2 * pollInterval)
	io.WriteString(s, "c\nd\n")
	select {
	case err := <-errc:
		if !errors.Is(err, errStop) {
			t.Errorf("Follow = %v, want emit's error", err)
		}
	case <-time.After(followTimeout):
		t.Fatal("Follow did not return emit's error")
	}
	if n != 3 {
		t.Errorf("emit called %d times after failing on the 3rd, want 3", n)
	}
}

// TestFollowDrainsAfterDone writes records, including enough to rotate,
// from inside done: they come after Follow saw the end of the file, and
// must still be emitted before it returns.
func TestFollowDrainsAfterDone(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{MaxSize: 2048, MaxFiles: 100})
	s := w.Stream("stdout")
	for i := range 10 {
		io.WriteString(s, seqLine(i))
	}
	calls := 0
	done := func() bool {
		calls++
		if calls == 1 {
			return false
		}
		if calls == 2 {
			for i := 10; i < 100; i++ {
				io.WriteString(s, seqLine(i))
			}
			w.Close()
		}
		return true
	}
	var got []Record
	err := Follow(context.Background(), dir, -1, done, func(r Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Follow: %v", err)
	}
	checkSeq(t, got, 0, 100)
}
