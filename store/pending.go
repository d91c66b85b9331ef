package store

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
)

// Pending is content copied into the store's tmp/ and hashed, but not yet
// a blob: nothing reads it until [Pending.Commit]. Transfers stage every
// blob of an image as Pending, check all of them, and commit only then,
// so a transfer that fails or is killed leaves the store as it was
// (leftovers in tmp/ are removed by [Store.GC]).
type Pending struct {
	s    *Store
	path string
	// Digest and Size are those of the content as it was copied.
	Digest digest.Digest
	Size   int64
}

// Ingest copies r into a new pending file, hashing it on the way.
func (s *Store) Ingest(ctx context.Context, r io.Reader) (*Pending, error) {
	tmp, d, size, err := s.ingest(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("ingesting: %w", err)
	}
	return &Pending{s: s, path: tmp, Digest: d, Size: size}, nil
}

// Check fails with ErrDigestMismatch unless the content has digest d and
// the given size.
func (p *Pending) Check(d digest.Digest, size int64) error {
	if p.Digest != d || p.Size != size {
		return fmt.Errorf("blob %s: %w: got %d bytes hashing to %s, want %d bytes", d, ErrDigestMismatch, p.Size, p.Digest, size)
	}
	return nil
}

// ReadAll returns the content if it is at most max bytes long.
func (p *Pending) ReadAll(max int64) ([]byte, error) {
	if p.Size > max {
		return nil, fmt.Errorf("blob %s: %d bytes, more than the %d allowed", p.Digest, p.Size, max)
	}
	b, err := os.ReadFile(p.path)
	if err != nil {
		return nil, fmt.Errorf("reading pending blob: %w", err)
	}
	if int64(len(b)) != p.Size {
		return nil, fmt.Errorf("blob %s: %w: pending file changed", p.Digest, ErrDigestMismatch)
	}
	return b, nil
}

// Commit makes the content the blob of its digest, keeping an intact
// existing copy. A caller that goes on to tag the blob should hold
// [Store.Lock] across the commit and the tag, as for [Store.WriteBlob].
// Commit after Commit or Discard fails.
func (p *Pending) Commit() error {
	if p.path == "" {
		return fmt.Errorf("blob %s: already committed or discarded", p.Digest)
	}
	tmp := p.path
	p.path = ""
	if err := p.s.commit(tmp, p.Digest, p.Size); err != nil {
		return fmt.Errorf("committing blob %s: %w", p.Digest, err)
	}
	return nil
}

// Discard removes the pending file; it is harmless after Commit.
func (p *Pending) Discard() {
	if p.path != "" {
		os.Remove(p.path)
		p.path = ""
	}
}
