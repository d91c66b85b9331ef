package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// GC removes, under the store's exclusive lock, every blob that no entry
// of index.json reaches through manifests, configs, layers, subjects and
// nested indexes, and everything in tmp/, which only writers killed
// before committing leave behind. It returns the digests of the removed
// blobs and the bytes freed, leftovers in tmp/ included. GC fails without
// removing anything if a manifest listed in index.json cannot be read.
func (s *Store) GC(ctx context.Context) (removed []digest.Digest, freed int64, err error) {
	unlock, err := s.Lock(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	idx, _, err := s.readIndex()
	if err != nil {
		return nil, 0, err
	}
	live := make(map[digest.Digest]bool)
	for _, m := range idx.Manifests {
		if err := s.mark(live, m, true); err != nil {
			return nil, 0, fmt.Errorf("gc: %w", err)
		}
	}
	removed, freed, err = s.sweepBlobs(live)
	if err != nil {
		return removed, freed, fmt.Errorf("gc: %w", err)
	}
	n, err := s.sweepTemp()
	freed += n
	if err != nil {
		return removed, freed, fmt.Errorf("gc: %w", err)
	}
	return removed, freed, nil
}

// references holds the descriptors a manifest or index can point to.
type references struct {
	Config    *ocispec.Descriptor  `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
	Blobs     []ocispec.Descriptor `json:"blobs"`
	Manifests []ocispec.Descriptor `json:"manifests"`
	Subject   *ocispec.Descriptor  `json:"subject"`
}

// manifestTypes are the media types of blobs that reference other blobs.
var manifestTypes = map[string]bool{
	ocispec.MediaTypeImageManifest:                              true,
	ocispec.MediaTypeImageIndex:                                 true,
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
}

// mark adds d and every blob it reaches to live. Entries of index.json
// (top) are always manifests and must be readable; blobs they point to
// may be absent, as a partially stored index or a remote subject are.
func (s *Store) mark(live map[digest.Digest]bool, d ocispec.Descriptor, top bool) error {
	if live[d.Digest] {
		return nil
	}
	live[d.Digest] = true
	if !top && !manifestTypes[d.MediaType] {
		return nil
	}
	b, err := s.ReadBlob(d.Digest)
	if errors.Is(err, ErrNotFound) && !top {
		return nil
	}
	if err != nil {
		return err
	}
	var refs references
	if err := json.Unmarshal(b, &refs); err != nil {
		return fmt.Errorf("parsing manifest %s: %w", d.Digest, err)
	}
	children := slices.Concat(refs.Layers, refs.Blobs, refs.Manifests)
	if refs.Config != nil {
		children = append(children, *refs.Config)
	}
	if refs.Subject != nil {
		children = append(children, *refs.Subject)
	}
	for _, c := range children {
		if err := s.mark(live, c, false); err != nil {
			return err
		}
	}
	return nil
}

// sweepBlobs removes every entry of blobs/sha256 not in live.
func (s *Store) sweepBlobs(live map[digest.Digest]bool) (removed []digest.Digest, freed int64, err error) {
	dir := s.path(blobsDir, "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if live[d] {
			continue
		}
		size := entrySize(e)
		if err := os.RemoveAll(s.path(blobsDir, "sha256", e.Name())); err != nil {
			return removed, freed, err
		}
		freed += size
		if d.Validate() == nil {
			removed = append(removed, d)
		}
	}
	if len(removed) > 0 {
		return removed, freed, syncDir(dir)
	}
	return removed, freed, nil
}

// sweepTemp removes everything in tmp/ and a leftover index.json.tmp.
func (s *Store) sweepTemp() (freed int64, err error) {
	entries, err := os.ReadDir(s.path(tmpDir))
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		size := entrySize(e)
		if err := os.RemoveAll(s.path(tmpDir, e.Name())); err != nil {
			return freed, err
		}
		freed += size
	}
	if info, err := os.Lstat(s.path(indexTemp)); err == nil {
		if err := os.Remove(s.path(indexTemp)); err != nil {
			return freed, err
		}
		freed += info.Size()
	}
	return freed, nil
}

// entrySize is the size of a regular file, and zero for anything else.
func entrySize(e os.DirEntry) int64 {
	info, err := e.Info()
	if err != nil || !info.Mode().IsRegular() {
		return 0
	}
	return info.Size()
}
