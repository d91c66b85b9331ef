package logfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// line returns the encoded record for log text s written at second sec.
func line(sec int, stream, s string) string {
	return fmt.Sprintf(`{"time":"2024-05-01T12:00:%02dZ","stream":%q,"log":%q}`+"\n", sec, stream, s)
}

func rec(sec int, stream, s string) Record {
	return Record{Time: time.Date(2024, 5, 1, 12, 0, sec, 0, time.UTC), Stream: stream, Log: s}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestReadMissing(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		got, err := Read(dir, -1)
		if err != nil || len(got) != 0 {
			t.Errorf("Read(%s) = %v, %v; want no records, no error", dir, got, err)
		}
	}
}

func TestReadAcrossFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"app.log.10": line(0, "stdout", "ten\n"), // numeric, not lexical, order
		"app.log.2":  line(1, "stdout", "two\n"),
		"app.log.1":  line(2, "stderr", "one-a\n") + line(3, "stdout", "one-b\n"),
		"app.log":    line(4, "stdout", "cur-a\n") + line(5, "stdout", "cur-b\n"),
		"app.log.01": line(9, "stdout", "not a rotated file\n"),
		"other.log":  line(9, "stdout", "not a log file\n"),
	})
	all := []Record{
		rec(0, "stdout", "ten\n"),
		rec(1, "stdout", "two\n"),
		rec(2, "stderr", "one-a\n"),
		rec(3, "stdout", "one-b\n"),
		rec(4, "stdout", "cur-a\n"),
		rec(5, "stdout", "cur-b\n"),
	}
	for _, tail := range []int{-1, -5, 0, 1, 2, 3, 4, 6, 7, 100} {
		want := all
		if tail >= 0 && tail < len(all) {
			want = all[len(all)-tail:]
		}
		if diff := cmp.Diff(want, mustRead(t, dir, tail), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("tail %d (-want +got):\n%s", tail, diff)
		}
	}
}

func TestReadOnlyRotated(t *testing.T) {
	// The writer is between renaming app.log and creating the new one.
	dir := writeFiles(t, map[string]string{
		"app.log.2": line(0, "stdout", "old\n"),
		"app.log.1": line(1, "stdout", "new\n"),
	})
	want := []Record{rec(0, "stdout", "old\n"), rec(1, "stdout", "new\n")}
	if diff := cmp.Diff(want, mustRead(t, dir, -1)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReadSkipsDamage(t *testing.T) {
	good := line(1, "stdout", "a\n") + line(2, "stderr", "b\n")
	tests := []struct {
		name    string
		content string
		want    []Record
	}{
		{"torn last line", good + `{"time":"2024-05-01T12:00:03Z","stream":"stdout","log":"c`,
			[]Record{rec(1, "stdout", "a\n"), rec(2, "stderr", "b\n")}},
		{"complete but unterminated last line", good + strings.TrimSuffix(line(3, "stdout", "c\n"), "\n"),
			[]Record{rec(1, "stdout", "a\n"), rec(2, "stderr", "b\n")}},
		{"corrupt middle lines", line(1, "stdout", "a\n") +
			"garbage\n" +
			"\n" +
			`{"time":"yesterday","stream":"stdout","log":"x"}` + "\n" +
			`{"time":"2024-05-01T12:00:03Z","stream":"stdout"}` + "\n" +
			`{"time":"2024-05-01T12:00:03Z","stream":"stdout","log":5}` + "\n" +
			`null` + "\n" +
			strings.Repeat("z", 3*maxLine) + "\n" +
			line(2, "stderr", "b\n"),
			[]Record{rec(1, "stdout", "a\n"), rec(2, "stderr", "b\n")}},
		{"torn line then restart", line(1, "stdout", "a\n") + `{"time":"20` + "\n" + line(2, "stderr", "b\n"),
			[]Record{rec(1, "stdout", "a\n"), rec(2, "stderr", "b\n")}},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"app.log": tc.content})
			if diff := cmp.Diff(tc.want, mustRead(t, dir, -1)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// The tail counts valid records only.
			if diff := cmp.Diff(tc.want[min(1, len(tc.want)):], mustRead(t, dir, 1)); diff != "" {
				t.Errorf("tail 1 (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadWhileRotating reads while a writer rotates as fast as it can:
// every Read must return a gapless run of records without duplicates,
// from the very first one when no file is removed.
func TestReadWhileRotating(t *testing.T) {
	for _, maxFiles := range []int{100000, 4} {
		dir := t.TempDir()
		w := mustCreate(t, dir, Options{MaxSize: 4096, MaxFiles: maxFiles})
		s := w.Stream("stdout")
		stop := make(chan struct{})
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				io.WriteString(s, seqLine(i))
			}
		}()
		reads := 0
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); reads++ {
			got := mustRead(t, dir, -1)
			for i := 1; i < len(got); i++ {
				if a, b := seqOf(t, got[i-1].Log), seqOf(t, got[i].Log); b != a+1 {
					t.Fatalf("MaxFiles %d, read %d: record %d after %d", maxFiles, reads, b, a)
				}
			}
			if maxFiles > 4 && len(got) > 0 && seqOf(t, got[0].Log) != 0 {
				t.Fatalf("MaxFiles %d, read %d: first record is %q", maxFiles, reads, got[0].Log)
			}
			if maxFiles > 4 && reads > 20 {
				break // reading all files gets slow as they pile up
			}
		}
		close(stop)
		<-wrote
		w.Close()
	}
}
