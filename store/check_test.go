package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func kinds(ps []Problem) map[string]int {
	m := map[string]int{}
	for _, p := range ps {
		m[p.Kind]++
	}
	return m
}

// TestCheck: a sound store has no problems; corruption, a missing layer,
// strays, leftovers and orphans are each found, --repair fixes them all
// (untagging the image that lost a blob, keeping the sound one), and a
// second check finds nothing.
func TestCheck(t *testing.T) {
	s := newStore(t)
	a := mustImage(t, s, "app:v1", "a")
	b := mustImage(t, s, "other:v1", "b")
	c := mustImage(t, s, "third:v1", "c")
	if ps, err := s.Check(t.Context(), false); err != nil || len(ps) != 0 {
		t.Fatalf("a sound store: %v, %v", ps, err)
	}
	// a's initramfs torn, c's initramfs gone, an orphan, a stray name,
	// a writer's leftover, a half-written index.
	if err := os.WriteFile(s.BlobPath(a.blobs[2].Digest), []byte("torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.BlobPath(c.blobs[2].Digest)); err != nil {
		t.Fatal(err)
	}
	orphan := writeBytes(t, s, []byte("orphan"))
	for _, p := range []string{s.path(blobsDir, "sha256", "not-a-digest"), s.path(tmpDir, "new-123"), s.path(indexTemp)} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := s.Check(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(ps)
	want := map[string]int{ProblemCorrupt: 1, ProblemMissing: 1, ProblemStray: 1, ProblemTemp: 2, ProblemUnreferenced: 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d %s problems, want %d: %+v", got[k], k, n, ps)
		}
	}
	for _, p := range ps {
		if p.Repaired != "" {
			t.Errorf("check without repair repaired %+v", p)
		}
		if p.Kind == ProblemUnreferenced && !strings.Contains(p.Path, orphan.Digest.Encoded()) {
			t.Errorf("orphan reported as %+v", p)
		}
		if p.Kind == ProblemMissing && !strings.Contains(p.Detail, "third:v1") {
			t.Errorf("missing blob reported as %+v", p)
		}
	}
	// Check changed nothing.
	if _, err := os.Stat(s.path(tmpDir, "new-123")); err != nil {
		t.Errorf("check without repair removed a leftover: %v", err)
	}

	ps, err = s.Check(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Repaired == "" || strings.Contains(p.Repaired, "failed") {
			t.Errorf("not repaired: %+v", p)
		}
	}
	if ps, err := s.Check(t.Context(), false); err != nil || len(ps) != 0 {
		t.Errorf("after repair: %+v, %v", ps, err)
	}
	// The sound image is intact; the torn and incomplete ones are gone.
	if _, err := s.Resolve(t.Context(), "other:v1"); err != nil {
		t.Errorf("other:v1 after repair: %v", err)
	}
	for _, d := range append(b.blobs, b.manifest) {
		if err := s.VerifyBlob(d.Digest, d.Size); err != nil {
			t.Errorf("other:v1's blob: %v", err)
		}
	}
	for _, ref := range []string{"app:v1", "third:v1"} {
		if _, err := s.Resolve(t.Context(), ref); err == nil {
			t.Errorf("%s survived the repair", ref)
		}
	}
	if names := dirNames(t, filepath.Join(s.root, tmpDir)); len(names) != 0 {
		t.Errorf("tmp/ after repair: %q", names)
	}
}

// A broken index.json is reported, not repaired.
func TestCheckBadIndex(t *testing.T) {
	s := newStore(t)
	mustImage(t, s, "app:v1", "a")
	if err := os.WriteFile(s.path(indexFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Check(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	if kinds(ps)[ProblemIndex] != 1 {
		t.Errorf("problems %+v, want a bad index", ps)
	}
}
