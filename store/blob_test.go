package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestWriteReadBlob(t *testing.T) {
	s := newStore(t)
	data := []byte("hello, blob")
	d, err := s.WriteBlobBytes(t.Context(), data, "application/x-test")
	if err != nil {
		t.Fatal(err)
	}
	want := digest.FromBytes(data)
	if d.Digest != want || d.Size != int64(len(data)) || d.MediaType != "application/x-test" {
		t.Errorf("descriptor = %+v, want digest %s, size %d", d, want, len(data))
	}
	if got, want := s.BlobPath(d.Digest), filepath.Join(s.Root(), "blobs", "sha256", want.Encoded()); got != want {
		t.Errorf("BlobPath = %s, want %s", got, want)
	}
	got, err := s.ReadBlob(d.Digest)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadBlob = %q, %v; want %q", got, err, data)
	}
	if err := s.VerifyBlob(d.Digest, d.Size); err != nil {
		t.Errorf("VerifyBlob: %v", err)
	}
	if err := s.VerifyBlob(d.Digest, -1); err != nil {
		t.Errorf("VerifyBlob with unknown size: %v", err)
	}
	if err := s.VerifyBlob(d.Digest, d.Size+1); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("VerifyBlob with wrong size = %v, want ErrDigestMismatch", err)
	}
	if names := dirNames(t, s.path(tmpDir)); len(names) != 0 {
		t.Errorf("tmp/ holds %v after a write", names)
	}
}

func TestWriteBlobStreams(t *testing.T) {
	s := newStore(t)
	data := bytes.Repeat([]byte("0123456789"), 100_000)
	d, err := s.WriteBlob(t.Context(), io.MultiReader(bytes.NewReader(data[:7]), bytes.NewReader(data[7:])), "x")
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != digest.FromBytes(data) || d.Size != int64(len(data)) {
		t.Errorf("descriptor = %+v", d)
	}
}

func TestMissingBlob(t *testing.T) {
	s := newStore(t)
	d := digest.FromString("absent")
	if _, err := s.ReadBlob(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadBlob = %v, want ErrNotFound", err)
	}
	if err := s.VerifyBlob(d, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("VerifyBlob = %v, want ErrNotFound", err)
	}
	if _, err := s.Manifest(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Manifest = %v, want ErrNotFound", err)
	}
}

func TestInvalidDigest(t *testing.T) {
	s := newStore(t)
	for _, d := range []digest.Digest{"", "abc", "sha256:../../index.json", "sha256:ABCD", "sha512:" + digest.Digest(bytes.Repeat([]byte("a"), 128))} {
		if p := s.BlobPath(d); p != "" {
			t.Errorf("BlobPath(%q) = %q, want empty", d, p)
		}
		if _, err := s.ReadBlob(d); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("ReadBlob(%q) = %v, want an invalid digest error", d, err)
		}
		if err := s.VerifyBlob(d, 0); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("VerifyBlob(%q) = %v, want an invalid digest error", d, err)
		}
	}
}

// corrupt overwrites a blob with other content of the same length.
func corrupt(t *testing.T, s *Store, d digest.Digest) {
	t.Helper()
	p := s.BlobPath(d)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptBlob(t *testing.T) {
	s := newStore(t)
	img := mustImage(t, s, "", "x")
	d := img.manifest.Digest
	corrupt(t, s, d)
	if _, err := s.ReadBlob(d); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("ReadBlob = %v, want ErrDigestMismatch", err)
	}
	if err := s.VerifyBlob(d, img.manifest.Size); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("VerifyBlob = %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Manifest(d); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("Manifest = %v, want ErrDigestMismatch", err)
	}
	if err := s.Tag(t.Context(), "x", "latest", img.manifest, testTime); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("Tag of a corrupt manifest = %v, want ErrDigestMismatch", err)
	}

	// Storing the blob again repairs it.
	again := mustImage(t, s, "", "x")
	if again.manifest.Digest != d {
		t.Fatalf("rewritten manifest has digest %s, want %s", again.manifest.Digest, d)
	}
	if _, err := s.Manifest(d); err != nil {
		t.Errorf("Manifest after rewrite: %v", err)
	}
}

func TestWriteBlobKeepsIntactBlob(t *testing.T) {
	s := newStore(t)
	d, err := s.WriteBlobBytes(t.Context(), []byte("same"), "x")
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(s.BlobPath(d.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteBlobBytes(t.Context(), []byte("same"), "x"); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(s.BlobPath(d.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("rewriting an intact blob replaced its file")
	}
	if names := dirNames(t, s.path(tmpDir)); len(names) != 0 {
		t.Errorf("tmp/ holds %v", names)
	}
}

// failingReader yields some data, then an error, like a killed download.
type failingReader struct{ n int }

var errBroken = errors.New("broken pipe")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errBroken
	}
	n := min(r.n, len(p))
	r.n -= n
	return n, nil
}

func TestWriteBlobFailureLeavesNothing(t *testing.T) {
	s := newStore(t)
	if _, err := s.WriteBlob(t.Context(), &failingReader{n: 100_000}, "x"); !errors.Is(err, errBroken) {
		t.Errorf("WriteBlob = %v, want %v", err, errBroken)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.WriteBlobBytes(ctx, []byte("data"), "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteBlob with cancelled context = %v, want context.Canceled", err)
	}
	if names := dirNames(t, s.path(tmpDir)); len(names) != 0 {
		t.Errorf("tmp/ holds %v", names)
	}
	if names := dirNames(t, s.path(blobsDir, "sha256")); len(names) != 0 {
		t.Errorf("blobs/sha256 holds %v", names)
	}
}
