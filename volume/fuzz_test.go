package volume

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseSize: ErrBadInput, or a size between MinSize and 1 PiB.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"10g", "512MiB", "1.5G", "8388608", "0", "-1g", "NaN", "1e30", "Inf", "0x10m", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("ParseSize(%q): %v; want ErrBadInput", s, err)
			}
			return
		}
		if n < MinSize || n > 1<<50 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}

// FuzzGet puts any bytes in a volume's metadata file (a torn write, a
// hand edit): Get and List fail or return the volume, Check reports it,
// and nothing panics.
func FuzzGet(f *testing.F) {
	f.Add([]byte(`{"name":"data","size":67108864,"created":"2026-12-01T00:00:00Z"}`))
	f.Add([]byte(`{"name":"other","size":-1}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"name":`))
	f.Add([]byte{})
	s, err := Open(filepath.Join(f.TempDir(), "volumes"))
	if err != nil {
		f.Fatal(err)
	}
	dir := filepath.Join(s.Dir, "data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, diskFile), nil, 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, metaFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Get("data"); err == nil {
			_ = v.Holder()
			_ = v.DiskUsage()
		}
		_, _ = s.List()
	})
}
