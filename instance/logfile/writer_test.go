package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var ignoreTime = cmpopts.IgnoreFields(Record{}, "Time")

// fakeClock returns times one millisecond apart.
func fakeClock() func() time.Time {
	base := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	var n atomic.Int64
	return func() time.Time {
		return base.Add(time.Duration(n.Add(1)) * time.Millisecond)
	}
}

func mustCreate(t *testing.T, dir string, o Options) *Writer {
	t.Helper()
	if o.Now == nil {
		o.Now = fakeClock()
	}
	w, err := Create(dir, o)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return w
}

func mustRead(t *testing.T, dir string, tail int) []Record {
	t.Helper()
	recs, err := Read(dir, tail)
	if err != nil {
		t.Fatalf("Read(%d): %v", tail, err)
	}
	return recs
}

// writeChunks writes data to w in pieces whose sizes cycle through sizes.
func writeChunks(t *testing.T, w io.Writer, data []byte, sizes []int) {
	t.Helper()
	for i := 0; len(data) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(data))
		m, err := w.Write(data[:n])
		if err != nil || m != n {
			t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
		}
		data = data[n:]
	}
}

func recs(stream string, logs ...string) []Record {
	var out []Record
	for _, l := range logs {
		out = append(out, Record{Stream: stream, Log: l})
	}
	return out
}

func TestStreamSplitsLines(t *testing.T) {
	input := "hello\n\nworld\r\nünïcødé ✓ 日本語\n{\"json\":\"<&>\"}\n\ttabs and \x00 nul\nno newline at end"
	want := recs("stdout", "hello\n", "\n", "world\r\n", "ünïcødé ✓ 日本語\n",
		"{\"json\":\"<&>\"}\n", "\ttabs and \x00 nul\n", "no newline at end")
	rng := rand.New(rand.NewPCG(1, 2))
	randomSizes := make([]int, 50)
	for i := range randomSizes {
		randomSizes[i] = 1 + rng.IntN(10)
	}
	for name, sizes := range map[string][]int{
		"bytes":  {1},
		"pairs":  {2},
		"sevens": {7},
		"random": randomSizes,
		"whole":  {len(input)},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			w := mustCreate(t, dir, Options{})
			s := w.Stream("stdout")
			writeChunks(t, s, []byte(input), sizes)
			// Before Close the partial last line is held back.
			if diff := cmp.Diff(want[:len(want)-1], mustRead(t, dir, -1), ignoreTime); diff != "" {
				t.Errorf("records before Close (-want +got):\n%s", diff)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("stream Close: %v", err)
			}
			if diff := cmp.Diff(want, mustRead(t, dir, -1), ignoreTime); diff != "" {
				t.Errorf("records after Close (-want +got):\n%s", diff)
			}
			// The Writer is still usable after a stream is closed.
			if _, err := w.Stream("stderr").Write([]byte("more\n")); err != nil {
				t.Fatalf("write after stream Close: %v", err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := mustRead(t, dir, -1); len(got) != len(want)+1 {
				t.Errorf("got %d records, want %d", len(got), len(want)+1)
			}
		})
	}
}

func TestStreamLongLines(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	// A 3-byte rune straddling the 16 KiB boundary is kept whole.
	straddle := a(maxPending-1) + "€" + "tail\n"
	tests := []struct {
		name  string
		input string
		want  []Record
	}{
		{"40000", a(40000) + "\n", recs("stdout", a(maxPending), a(maxPending), a(40000-2*maxPending)+"\n")},
		{"just below", a(maxPending-1) + "\n", recs("stdout", a(maxPending-1)+"\n")},
		{"exactly 16 KiB", a(maxPending) + "\n", recs("stdout", a(maxPending), "\n")},
		{"utf8 boundary", straddle, recs("stdout", a(maxPending-1), "€tail\n")},
		{"then short", a(maxPending+5) + "\nshort\n", recs("stdout", a(maxPending), a(5)+"\n", "short\n")},
	}
	for _, tc := range tests {
		for _, size := range []int{1, 1000, len(tc.input)} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, size), func(t *testing.T) {
				dir := t.TempDir()
				w := mustCreate(t, dir, Options{})
				writeChunks(t, w.Stream("stdout"), []byte(tc.input), []int{size})
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				got := mustRead(t, dir, -1)
				if diff := cmp.Diff(tc.want, got, ignoreTime); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				for _, r := range got {
					if !utf8.ValidString(r.Log) {
						t.Errorf("record is not valid UTF-8: %q", r.Log)
					}
				}
			})
		}
	}
}

func TestPartialFlushedAt16KiB(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{})
	defer w.Close()
	s := w.Stream("stderr")
	writeChunks(t, s, bytes.Repeat([]byte("x"), maxPending-1), []int{1})
	if got := mustRead(t, dir, -1); len(got) != 0 {
		t.Fatalf("%d records with less than 16 KiB pending, want 0", len(got))
	}
	writeChunks(t, s, []byte("x"), []int{1})
	want := recs("stderr", strings.Repeat("x", maxPending))
	if diff := cmp.Diff(want, mustRead(t, dir, -1), ignoreTime); diff != "" {
		t.Errorf("with 16 KiB pending (-want +got):\n%s", diff)
	}
}

func TestWriterCloseFlushesStreams(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{})
	out, errs := w.Stream("stdout"), w.Stream("stderr")
	io.WriteString(out, "partial out")
	io.WriteString(errs, "line\npartial err")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Stream: "stderr", Log: "line\n"},
		{Stream: "stdout", Log: "partial out"},
		{Stream: "stderr", Log: "partial err"},
	}
	got := mustRead(t, dir, -1)
	byStream := cmpopts.SortSlices(func(a, b Record) bool { return a.Stream < b.Stream })
	if diff := cmp.Diff(want, got, ignoreTime, byStream); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := out.Write([]byte("x\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: err = %v, want os.ErrClosed", err)
	}
	if _, err := w.Stream("stdout").Write([]byte("x\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write to new stream after Close: err = %v, want os.ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestConcurrentStreams(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{MaxSize: 32 << 10, MaxFiles: 1000})
	const lines = 2000
	line := func(stream string, i int) string {
		return fmt.Sprintf("%s %05d %s\n", stream, i, strings.Repeat(stream[3:4], i%97))
	}
	var wg sync.WaitGroup
	for seed, name := range []string{"stdout", "stderr"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := w.Stream(name)
			defer s.Close()
			var all []byte
			for i := range lines {
				all = append(all, line(name, i)...)
			}
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			for len(all) > 0 {
				n := min(1+rng.IntN(300), len(all))
				if _, err := s.Write(all[:n]); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				all = all[n:]
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, dir, -1)
	per := map[string][]string{}
	for _, r := range got {
		per[r.Stream] = append(per[r.Stream], r.Log)
	}
	for _, name := range []string{"stdout", "stderr"} {
		var want []string
		for i := range lines {
			want = append(want, line(name, i))
		}
		if diff := cmp.Diff(want, per[name]); diff != "" {
			t.Errorf("%s records (-want +got):\n%s", name, diff)
		}
	}
	if len(got) != 2*lines {
		t.Errorf("got %d records, want %d", len(got), 2*lines)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.Before(got[i-1].Time) {
			t.Fatalf("record %d is older than record %d", i, i-1)
		}
	}
}

func TestRecordTime(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("X", 3600))
	w := mustCreate(t, dir, Options{Now: func() time.Time { return at }})
	io.WriteString(w.Stream("stdout"), "hi\n")
	w.Close()
	raw, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := `{"time":"2024-02-29T22:59:59.123456789Z","stream":"stdout","log":"hi\n"}` + "\n"
	if string(raw) != wantRaw {
		t.Errorf("file = %q, want %q", raw, wantRaw)
	}
	got := mustRead(t, dir, -1)
	want := []Record{{Time: at, Stream: "stdout", Log: "hi\n"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCreateKeepsExistingContent(t *testing.T) {
	dir := t.TempDir()
	for i := range 3 {
		w := mustCreate(t, dir, Options{})
		fmt.Fprintf(w.Stream("stdout"), "run %d\n", i)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	want := recs("stdout", "run 0\n", "run 1\n", "run 2\n")
	if diff := cmp.Diff(want, mustRead(t, dir, -1), ignoreTime); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestCreateAfterTornRecord(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{})
	io.WriteString(w.Stream("stdout"), "before\n")
	w.Close()
	// The writer was killed in the middle of a record.
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"time":"2024-05-01T12:00:00Z","stream":"stdout","log":"tor`)
	f.Close()
	if diff := cmp.Diff(recs("stdout", "before\n"), mustRead(t, dir, -1), ignoreTime); diff != "" {
		t.Errorf("with torn last line (-want +got):\n%s", diff)
	}
	w = mustCreate(t, dir, Options{})
	io.WriteString(w.Stream("stdout"), "after\n")
	w.Close()
	if diff := cmp.Diff(recs("stdout", "before\n", "after\n"), mustRead(t, dir, -1), ignoreTime); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
}

func TestCreateMissingDir(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "nope"), Options{}); err == nil {
		t.Error("Create in a missing directory succeeded")
	}
}

// seqLine is a numbered line padded to about 100 bytes.
func seqLine(i int) string {
	return fmt.Sprintf("seq %08d %s\n", i, strings.Repeat("p", 80))
}

// seqOf parses the number of a seqLine.
func seqOf(t *testing.T, log string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(log, "seq %d ", &n); err != nil {
		t.Fatalf("bad record %q: %v", log, err)
	}
	return n
}

// logFiles returns the names and sizes of the log files in dir.
func logFiles(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = fi.Size()
	}
	return files
}

func TestRotationBoundsDisk(t *testing.T) {
	const maxSize, maxFiles = 64 << 10, 3
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{MaxSize: maxSize, MaxFiles: maxFiles})
	s := w.Stream("stdout")
	rng := rand.New(rand.NewPCG(3, 4))
	var pending []byte
	written, n := 0, 0
	for written < 10<<20 {
		for len(pending) < 64<<10 {
			pending = append(pending, seqLine(n)...)
			n++
		}
		k := 1 + rng.IntN(len(pending))
		if _, err := s.Write(pending[:k]); err != nil {
			t.Fatal(err)
		}
		written += k
		pending = pending[k:]
		if written%(1<<20) < k {
			if files := logFiles(t, dir); len(files) > maxFiles {
				t.Fatalf("%d files while writing: %v", len(files), files)
			}
		}
	}
	if _, err := s.Write(pending); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	files := logFiles(t, dir)
	wantNames := []string{"app.log", "app.log.1", "app.log.2"}
	if diff := cmp.Diff(wantNames, keys(files), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	var total int64
	for name, size := range files {
		total += size
		if size > maxSize {
			t.Errorf("%s is %d bytes, more than MaxSize %d", name, size, maxSize)
		}
	}
	if total > maxFiles*maxSize {
		t.Errorf("total size %d > %d", total, maxFiles*maxSize)
	}

	got := mustRead(t, dir, -1)
	if len(got) == 0 {
		t.Fatal("no records")
	}
	first := seqOf(t, got[0].Log)
	if first == 0 {
		t.Error("oldest records were not dropped")
	}
	for i, r := range got {
		if want := seqLine(first + i); r.Log != want {
			t.Fatalf("record %d = %q, want %q", i, r.Log, want)
		}
	}
	if last := seqOf(t, got[len(got)-1].Log); last != n-1 {
		t.Errorf("newest record is %d, want %d", last, n-1)
	}

	tail := mustRead(t, dir, 5)
	if diff := cmp.Diff(got[len(got)-5:], tail); diff != "" {
		t.Errorf("tail 5 (-want +got):\n%s", diff)
	}
}

func keys(m map[string]int64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRotationMaxFilesOne(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{MaxSize: 1000, MaxFiles: 1})
	s := w.Stream("stdout")
	for i := range 100 {
		io.WriteString(s, seqLine(i))
	}
	w.Close()
	files := logFiles(t, dir)
	if len(files) != 1 || files[FileName] == 0 || files[FileName] > 1000 {
		t.Errorf("files = %v, want only a non-empty %s of at most 1000 bytes", files, FileName)
	}
	got := mustRead(t, dir, -1)
	if len(got) == 0 || got[len(got)-1].Log != seqLine(99) {
		t.Errorf("records = %v, want the newest last", got)
	}
}

func TestRotationRemovesStaleFiles(t *testing.T) {
	dir := t.TempDir()
	// Left over from a run with a larger MaxFiles.
	for _, name := range []string{"app.log.5", "app.log.9", "app.log.x"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	w := mustCreate(t, dir, Options{MaxSize: 1000, MaxFiles: 3})
	s := w.Stream("stdout")
	for i := range 30 {
		io.WriteString(s, seqLine(i))
	}
	w.Close()
	want := []string{"app.log", "app.log.1", "app.log.2", "app.log.x"}
	if diff := cmp.Diff(want, keys(logFiles(t, dir)), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestRecordLargerThanMaxSize(t *testing.T) {
	dir := t.TempDir()
	w := mustCreate(t, dir, Options{MaxSize: 100, MaxFiles: 3})
	s := w.Stream("stdout")
	big := strings.Repeat("b", 500) + "\n"
	io.WriteString(s, "small\n")
	io.WriteString(s, big)
	io.WriteString(s, "after\n")
	w.Close()
	want := recs("stdout", "small\n", big, "after\n")
	if diff := cmp.Diff(want, mustRead(t, dir, -1), ignoreTime); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if files := logFiles(t, dir); len(files) != 3 {
		t.Errorf("files = %v, want one per record", files)
	}
}

func TestFormat(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 500, time.FixedZone("X", -7200))
	tests := []struct {
		r          Record
		timestamps bool
		want       string
	}{
		{Record{Time: at, Stream: "stdout", Log: "hello\n"}, false, "hello\n"},
		{Record{Time: at, Stream: "stdout", Log: "hello\n"}, true, "2024-05-01T14:00:00.0000005Z hello\n"},
		{Record{Time: at, Stream: "stderr", Log: "cut"}, false, "cut"},
		{Record{Time: at, Stream: "stderr", Log: "cut"}, true, "2024-05-01T14:00:00.0000005Z cut\n"},
	}
	for _, tc := range tests {
		if got := Format(tc.r, tc.timestamps); got != tc.want {
			t.Errorf("Format(%+v, %v) = %q, want %q", tc.r, tc.timestamps, got, tc.want)
		}
	}
}
