package instance

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"
)

type failingWriter struct{ fail bool }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.fail {
		return 0, syscall.ENOSPC
	}
	return len(p), nil
}

// A log that cannot be written costs the log its lines, not the copy: the
// writer behind it in the MultiWriter (the attached clients) still gets
// everything, the monitor's log says what was dropped, and warnings are
// rate-limited.
func TestLossyLog(t *testing.T) {
	var mlog bytes.Buffer
	fw := &failingWriter{}
	l := newLossyLog(fw, slog.New(slog.NewTextHandler(&mlog, nil)), "stdout")
	clock := time.Unix(1000, 0)
	l.now = func() time.Time { return clock }
	var live bytes.Buffer
	w := io.MultiWriter(l, &live)
	if _, err := w.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	fw.fail = true
	for i := 0; i < 5; i++ {
		if n, err := w.Write([]byte("lost\n")); err != nil || n != 5 {
			t.Fatalf("write while the log fails: %d, %v", n, err)
		}
	}
	clock = clock.Add(11 * time.Second)
	if _, err := w.Write([]byte("later\n")); err != nil {
		t.Fatal(err)
	}
	l.report()
	if live.String() != "one\n"+strings.Repeat("lost\n", 5)+"later\n" {
		t.Errorf("the live clients got %q", live.String())
	}
	out := mlog.String()
	if n := strings.Count(out, "cannot be written"); n != 2 {
		t.Errorf("%d warnings, want 2 (the first, then one after 10 s):\n%s", n, out)
	}
	if !strings.Contains(out, "droppedBytes=31 failedWrites=6") {
		t.Errorf("the totals are not in the monitor's log:\n%s", out)
	}
	// Room again: said once, with the totals so far.
	fw.fail = false
	w.Write([]byte("back\n"))
	w.Write([]byte("more\n"))
	if out := mlog.String(); strings.Count(out, "written again") != 1 || !strings.Contains(out, "written again: output was dropped from it meanwhile\" stream=stdout droppedBytes=31") {
		t.Errorf("want one notice that the log is written again, with the totals:\n%s", out)
	}
}
