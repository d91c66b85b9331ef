package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestGC(t *testing.T) {
	s := newStore(t)
	a := mustImage(t, s, "app:v1", "a")
	b := mustImage(t, s, "other", "b") // shares the kernel with a
	orphan := writeBytes(t, s, []byte("orphan"))
	if _, err := s.Untag(t.Context(), "app:v1"); err != nil {
		t.Fatal(err)
	}

	removed, freed, err := s.GC(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	gone := []ocispec.Descriptor{a.manifest, a.blobs[0], a.blobs[2], orphan}
	var want []digest.Digest
	var wantFreed int64
	for _, d := range gone {
		want = append(want, d.Digest)
		wantFreed += d.Size
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, removed); diff != "" {
		t.Errorf("GC removed (-want +got):\n%s", diff)
	}
	if freed != wantFreed {
		t.Errorf("GC freed %d bytes, want %d", freed, wantFreed)
	}
	for _, d := range gone {
		if _, err := os.Stat(s.BlobPath(d.Digest)); !os.IsNotExist(err) {
			t.Errorf("blob %s still there: %v", d.Digest, err)
		}
	}
	for _, d := range append(b.blobs, b.manifest) {
		if err := s.VerifyBlob(d.Digest, d.Size); err != nil {
			t.Errorf("blob of other:latest: %v", err)
		}
	}

	removed, freed, err = s.GC(t.Context())
	if err != nil || len(removed) != 0 || freed != 0 {
		t.Errorf("second GC = %v, %d, %v; want nothing", removed, freed, err)
	}
}

func TestGCRemovesJunk(t *testing.T) {
	s := newStore(t)
	junk := filepath.Join(s.Root(), "blobs", "sha256", "not-a-digest")
	if err := os.WriteFile(junk, []byte("xyz"), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, freed, err := s.GC(t.Context())
	if err != nil || len(removed) != 0 || freed != 3 {
		t.Errorf("GC = %v, %d, %v; want 3 bytes freed", removed, freed, err)
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Errorf("junk still there: %v", err)
	}
}

// TestGCFollowsReferences checks that GC keeps what untagged index
// entries, nested indexes and subjects reach.
func TestGCFollowsReferences(t *testing.T) {
	s := newStore(t)
	base := mustImage(t, s, "", "base")    // reached through a nested index
	subject := mustImage(t, s, "", "subj") // the subject of a referrer
	sig, err := s.WriteBlobBytes(t.Context(), []byte("signature"), "application/x-signature")
	if err != nil {
		t.Fatal(err)
	}
	referrer := mustManifest(t, s, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.DescriptorEmptyJSON,
		Layers:    []ocispec.Descriptor{sig},
		Subject:   &subject.manifest,
	})
	if _, err := s.WriteBlobBytes(t.Context(), ocispec.DescriptorEmptyJSON.Data, ocispec.MediaTypeEmptyJSON); err != nil {
		t.Fatal(err)
	}
	nested, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{
			base.manifest,
			{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("elsewhere"), Size: 9},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	nestedDesc := writeBytes(t, s, nested)
	nestedDesc.MediaType = ocispec.MediaTypeImageIndex
	orphan := writeBytes(t, s, []byte("orphan"))

	unlock, err := s.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	idx, _, err := s.readIndex()
	if err != nil {
		t.Fatal(err)
	}
	idx.Manifests = append(idx.Manifests, nestedDesc, referrer)
	if err := s.writeIndexLocked(idx); err != nil {
		t.Fatal(err)
	}
	unlock()

	removed, _, err := s.GC(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]digest.Digest{orphan.Digest}, removed); diff != "" {
		t.Errorf("GC removed (-want +got):\n%s", diff)
	}
}

func mustManifest(t *testing.T, s *Store, m ocispec.Manifest) ocispec.Descriptor {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return writeBytes(t, s, b)
}

func TestGCKeepsEverythingIfManifestMissing(t *testing.T) {
	s := newStore(t)
	a := mustImage(t, s, "app", "a")
	orphan := writeBytes(t, s, []byte("orphan"))
	if err := os.Remove(s.BlobPath(a.manifest.Digest)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GC(t.Context()); !errors.Is(err, ErrNotFound) {
		t.Errorf("GC = %v, want ErrNotFound", err)
	}
	for _, d := range append(a.blobs, orphan) {
		if err := s.VerifyBlob(d.Digest, d.Size); err != nil {
			t.Errorf("after failed GC: %v", err)
		}
	}
}
