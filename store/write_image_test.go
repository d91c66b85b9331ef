package store

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nosproject/nos/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestWriteImage(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel")
	initrd := filepath.Join(dir, "initramfs")
	os.WriteFile(kernel, []byte("a kernel"), 0o644)
	os.WriteFile(initrd, []byte("an initramfs, longer"), 0o644)
	cfg, _ := json.Marshal(image.Config{Entrypoint: []string{"/app/x"}})
	parts := ImageParts{
		Config: cfg,
		Layers: []LayerFile{{kernel, image.MediaTypeKernel}, {initrd, image.MediaTypeInitramfs}},
		Name:   "app", Tag: "v1", Created: testTime,
	}
	img, err := s.WriteImage(t.Context(), parts)
	if err != nil {
		t.Fatal(err)
	}
	if img.Manifest.ArtifactType != image.ArtifactType || img.Manifest.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest descriptor %+v", img.Manifest)
	}
	if want := img.Manifest.Size + int64(len(cfg)+len("a kernel")+len("an initramfs, longer")); img.Size != want {
		t.Errorf("Size = %d, want %d", img.Size, want)
	}
	got, err := s.Resolve(t.Context(), "app:v1")
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Name, Tag string
		Digest    string
		Size      int64
		Created   time.Time
	}
	sum := func(i Image) summary { return summary{i.Name, i.Tag, i.Manifest.Digest.String(), i.Size, i.Created} }
	if diff := cmp.Diff(sum(img), sum(got)); diff != "" {
		t.Errorf("Resolve after WriteImage (-written +resolved):\n%s", diff)
	}
	m, err := s.Manifest(img.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, l := range m.Layers {
		types = append(types, l.MediaType)
		if err := s.VerifyBlob(l.Digest, l.Size); err != nil {
			t.Error(err)
		}
	}
	if diff := cmp.Diff([]string{image.MediaTypeKernel, image.MediaTypeInitramfs}, types); diff != "" {
		t.Errorf("layers (-want +got):\n%s", diff)
	}
	if b, err := s.ReadBlob(m.Config.Digest); err != nil || string(b) != string(cfg) || m.Config.MediaType != image.MediaTypeConfig {
		t.Errorf("config blob %q (%s), %v", b, m.Config.MediaType, err)
	}

	// The same parts give the same manifest.
	again, err := s.WriteImage(t.Context(), ImageParts{Config: cfg, Layers: parts.Layers, Name: "app", Tag: "v2"})
	if err != nil || again.Manifest.Digest != img.Manifest.Digest {
		t.Errorf("second write: %v, %v; want digest %s", again.Manifest.Digest, err, img.Manifest.Digest)
	}
}

func TestWriteImageRefusals(t *testing.T) {
	s := newStore(t)
	if _, err := s.WriteImage(t.Context(), ImageParts{Config: []byte("{}"), Name: "Bad Name", Tag: "x"}); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("invalid name: %v, want ErrInvalidReference", err)
	}
	missing := ImageParts{Config: []byte("{}"), Layers: []LayerFile{{"/no/such/layer", image.MediaTypeKernel}}, Name: "app", Tag: "x"}
	if _, err := s.WriteImage(t.Context(), missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing layer file: %v, want os.ErrNotExist", err)
	}
	if _, err := s.Resolve(t.Context(), "app:x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an image was tagged after a failed write: %v", err)
	}
}

// TestWriteImageTakesLock: the write waits for the store's lock, so a
// garbage collection holding it cannot run in the middle of it.
func TestWriteImageTakesLock(t *testing.T) {
	s := newStore(t)
	release := holdLock(t, "lock", s.Root())
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := s.WriteImage(ctx, ImageParts{Config: []byte("{}"), Name: "app", Tag: "x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WriteImage with the lock held elsewhere = %v, want it to wait until the context ends", err)
	}
}
