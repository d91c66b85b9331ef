package bootable

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// gzBlob writes data gzip-compressed as a blob named by its digest.
func gzBlob(t *testing.T, dir string, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	sum := sha256.Sum256(b.Bytes())
	p := filepath.Join(dir, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnpackedKernel(t *testing.T) {
	home := t.TempDir()
	blobs, cache := t.TempDir(), filepath.Join(home, "cache", "kernels-unpacked")
	want := bytes.Repeat([]byte("\x7fELF vmlinux "), 1000)
	blob := gzBlob(t, blobs, want)
	got, err := Unpack(context.Background(), cache, blob)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, want) || filepath.Dir(got) != cache || filepath.Base(got) != filepath.Base(blob) {
		t.Fatalf("unpacked to %s with %d bytes", got, len(b))
	}
	// A second call reuses it.
	fi1, _ := os.Stat(got)
	again, err := Unpack(context.Background(), cache, blob)
	fi2, _ := os.Stat(again)
	if err != nil || again != got || !os.SameFile(fi1, fi2) {
		t.Errorf("second unpack = %s, %v; want the same file", again, err)
	}

	// A blob that does not match its name is refused, and nothing is left.
	bad := filepath.Join(blobs, strings.Repeat("ab", 32))
	b, _ := os.ReadFile(blob)
	os.WriteFile(bad, b, 0o644)
	if _, err := Unpack(context.Background(), cache, bad); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("mismatched blob: err = %v", err)
	}
	// Not gzip at all.
	junk := filepath.Join(blobs, strings.Repeat("cd", 32))
	os.WriteFile(junk, []byte("not gzip"), 0o644)
	if _, err := Unpack(context.Background(), cache, junk); err == nil {
		t.Error("junk blob: no error")
	}
	des, _ := os.ReadDir(cache)
	if len(des) != 1 {
		t.Errorf("cache holds %d files after failures, want 1", len(des))
	}

	// Pruning keeps what the store has and what was used recently.
	if n, err := PruneUnpacked(cache, func(string) bool { return false }); n != 0 || err != nil {
		t.Errorf("prune of a fresh file = %d, %v; want 0", n, err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(got, old, old)
	if n, _ := PruneUnpacked(cache, func(string) bool { return true }); n != 0 {
		t.Errorf("pruned a kernel the store still has")
	}
	if n, _ := PruneUnpacked(cache, func(string) bool { return false }); n != 1 {
		t.Errorf("did not prune an old kernel the store lost")
	}
}
