package logfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func FuzzRead(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte(line(1, "stdout", "a\n") + line(2, "stderr", "b")))
	f.Add([]byte(line(1, "stdout", "a\n") + `{"time":"2024-05-01T12:00:0`))
	f.Add([]byte("garbage\n\n\n{}\nnull\n[1,2]\n\"s\"\n"))
	f.Add([]byte(`{"time":"2024-05-01T12:00:00+25:00","stream":1,"log":"\ud800"}` + "\n"))
	f.Add([]byte("{\"time\":\"2024-05-01T12:00:00Z\",\"log\":\"\xff\xfe\"}\n"))
	// Inputs run one after the other within a fuzzing process, so they can
	// share a directory; a fresh one each time would dominate the cost.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		all, err := Read(dir, -1)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for _, tail := range []int{0, 1, 3} {
			got, err := Read(dir, tail)
			if err != nil {
				t.Fatalf("Read(%d): %v", tail, err)
			}
			want := all[max(0, len(all)-tail):]
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("Read(%d) is not the tail of Read(-1) (-want +got):\n%s", tail, diff)
			}
		}
		for _, r := range all {
			Format(r, true)
		}
	})
}
