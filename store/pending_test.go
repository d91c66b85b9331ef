package store

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPending(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := digest.FromString("hello")
	p, err := s.Ingest(ctx, strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(want, 5); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(want, 6); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("wrong size: %v", err)
	}
	if err := p.Check(digest.FromString("other"), 5); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("wrong digest: %v", err)
	}
	if b, err := p.ReadAll(5); err != nil || string(b) != "hello" {
		t.Errorf("ReadAll: %q, %v", b, err)
	}
	if _, err := p.ReadAll(4); err == nil {
		t.Error("ReadAll over its limit succeeded")
	}
	// Not a blob until committed.
	if err := s.VerifyBlob(want, 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a pending blob is visible: %v", err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyBlob(want, 5); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err == nil {
		t.Error("a second commit succeeded")
	}
	// Discarded: gone from tmp/.
	q, err := s.Ingest(ctx, strings.NewReader("bye"))
	if err != nil {
		t.Fatal(err)
	}
	q.Discard()
	if ents, _ := os.ReadDir(s.path(tmpDir)); len(ents) != 0 {
		t.Errorf("tmp/ holds %d files after discard", len(ents))
	}
}
