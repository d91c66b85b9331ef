package store

import (
	"bytes"
	"context"
	_ "crypto/sha256" // the digest package needs the hash linked in
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteBlob stores the content of r as a blob and returns its descriptor
// with the given media type. The content is hashed while it is copied to a
// temporary file, which is flushed and renamed into blobs/, so a blob
// under blobs/ is always complete. An intact existing copy of the blob is
// kept; a corrupt one is replaced.
//
// WriteBlob needs no lock, but a caller that goes on to tag the blob
// should hold [Store.Lock] throughout so that [Store.GC] cannot remove
// the blob in between.
func (s *Store) WriteBlob(ctx context.Context, r io.Reader, mediaType string) (ocispec.Descriptor, error) {
	tmp, d, size, err := s.ingest(ctx, r)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing blob: %w", err)
	}
	if err := s.commit(tmp, d, size); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("writing blob %s: %w", d, err)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: size}, nil
}

// WriteBlobBytes stores b as a blob like [Store.WriteBlob].
func (s *Store) WriteBlobBytes(ctx context.Context, b []byte, mediaType string) (ocispec.Descriptor, error) {
	return s.WriteBlob(ctx, bytes.NewReader(b), mediaType)
}

// ingest copies r to a new file in tmp/ and returns the file's name, the
// digest of its content and its size. The file is removed on error.
func (s *Store) ingest(ctx context.Context, r io.Reader) (string, digest.Digest, int64, error) {
	needed := remaining(r)
	f, err := os.CreateTemp(s.path(tmpDir), "ingest-*")
	if err != nil {
		return "", "", 0, s.noSpace(err, needed)
	}
	digester := digest.Canonical.Digester()
	size, err := io.Copy(io.MultiWriter(f, digester.Hash()), ctxReader{ctx, r})
	if err == nil {
		err = writeAndSync(f, nil)
	} else {
		f.Close()
	}
	if err != nil {
		os.Remove(f.Name())
		return "", "", 0, s.noSpace(err, needed)
	}
	return f.Name(), digester.Digest(), size, nil
}

// commit moves the ingested file tmp into place as blob d unless an intact
// copy is there already.
func (s *Store) commit(tmp string, d digest.Digest, size int64) error {
	if s.VerifyBlob(d, size) == nil {
		return os.Remove(tmp)
	}
	dst := s.BlobPath(d)
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// ctxReader stops reading once its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// BlobPath returns the path of the file that holds blob d, or "" if d is
// not a valid sha256 digest.
func (s *Store) BlobPath(d digest.Digest) string {
	if checkDigest(d) != nil {
		return ""
	}
	return s.path(blobsDir, d.Algorithm().String(), d.Encoded())
}

// ReadBlob returns the content of blob d after checking it against d. It
// fails with ErrNotFound if the blob is missing and with ErrDigestMismatch
// if it is corrupt.
func (s *Store) ReadBlob(d digest.Digest) ([]byte, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading blob: %w", err)
	}
	if got := digest.Canonical.FromBytes(b); got != d {
		return nil, fmt.Errorf("blob %s: %w: content hashes to %s", d, ErrDigestMismatch, got)
	}
	return b, nil
}

// VerifyBlob re-hashes the file of blob d and checks that it has the given
// size (unless size is negative) and digest. It fails with ErrNotFound if
// the blob is missing and with ErrDigestMismatch if it is corrupt.
func (s *Store) VerifyBlob(d digest.Digest, size int64) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	f, err := os.Open(s.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("verifying blob: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verifying blob: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("blob %s: not a regular file", d)
	}
	if size >= 0 && info.Size() != size {
		return fmt.Errorf("blob %s: %w: size %d, want %d", d, ErrDigestMismatch, info.Size(), size)
	}
	v := d.Verifier()
	if _, err := io.Copy(v, f); err != nil {
		return fmt.Errorf("verifying blob %s: %w", d, err)
	}
	if !v.Verified() {
		return fmt.Errorf("blob %s: %w", d, ErrDigestMismatch)
	}
	return nil
}

// Manifest reads, verifies and decodes the image manifest in blob d.
func (s *Store) Manifest(d digest.Digest) (ocispec.Manifest, error) {
	b, err := s.ReadBlob(d)
	if err != nil {
		return ocispec.Manifest{}, fmt.Errorf("reading manifest: %w", err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("parsing manifest %s: %w", d, err)
	}
	if m.SchemaVersion != 2 {
		return ocispec.Manifest{}, fmt.Errorf("manifest %s: schemaVersion %d, want 2", d, m.SchemaVersion)
	}
	if m.MediaType != "" && m.MediaType != ocispec.MediaTypeImageManifest {
		return ocispec.Manifest{}, fmt.Errorf("manifest %s: media type %q is not an image manifest", d, m.MediaType)
	}
	return m, nil
}

// checkDigest accepts only valid sha256 digests, the only kind the store
// holds; anything else could name a path outside blobs/sha256.
func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q: unsupported algorithm", d)
	}
	return nil
}

// NoSpaceError is a write the store's file system had no room for.
type NoSpaceError struct {
	Dir    string // the store
	Free   int64  // bytes free for the caller, -1 if unknown
	Needed int64  // bytes the content needs, -1 if unknown
	Err    error
}

func (e *NoSpaceError) Error() string {
	s := "no space left on the file system of the store " + e.Dir
	if e.Free >= 0 {
		s += fmt.Sprintf(": %.1f MiB free", float64(e.Free)/(1<<20))
	}
	if e.Needed >= 0 {
		s += fmt.Sprintf(", this needs %.1f MiB", float64(e.Needed)/(1<<20))
	}
	return s + " (free some: nos system prune, nos rmi; or set NOS_HOME to a larger file system)"
}

func (e *NoSpaceError) Unwrap() error { return e.Err }

// noSpace turns a write that found its file system full into a
// NoSpaceError; other errors pass.
func (s *Store) noSpace(err error, needed int64) error {
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
		return err
	}
	e := &NoSpaceError{Dir: s.root, Free: -1, Needed: needed, Err: err}
	var st syscall.Statfs_t
	if syscall.Statfs(s.root, &st) == nil {
		e.Free = int64(st.Bavail) * int64(st.Bsize)
	}
	return e
}

// remaining is how many bytes r has left, when it can tell (a file, a
// bytes or strings reader); -1 otherwise.
func remaining(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return fi.Size() - off
	}
	return -1
}
