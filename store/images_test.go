package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nosproject/nos/image"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestTagAndImages(t *testing.T) {
	s := newStore(t)
	a := mustImage(t, s, "b/app:v2", "a")
	b := mustImage(t, s, "app", "b")
	mustImage(t, s, "b/app:v1", "a") // same manifest as b/app:v2

	imgs, err := s.Images(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name, Tag string
		Digest    digest.Digest
		Size      int64
		Created   time.Time
	}
	var got []row
	for _, img := range imgs {
		got = append(got, row{img.Name, img.Tag, img.Manifest.Digest, img.Size, img.Created})
	}
	want := []row{
		{"app", "latest", b.manifest.Digest, b.size, testTime},
		{"b/app", "v1", a.manifest.Digest, a.size, testTime},
		{"b/app", "v2", a.manifest.Digest, a.size, testTime},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Images (-want +got):\n%s", diff)
	}
	if imgs[0].Manifest.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest media type = %q", imgs[0].Manifest.MediaType)
	}

	// index.json is sorted by reference and carries the annotations.
	idx := readIndexFile(t, s)
	var refs []string
	for _, m := range idx.Manifests {
		refs = append(refs, m.Annotations[image.AnnotationRefName])
		if c := m.Annotations[image.AnnotationCreated]; c != "2024-05-06T07:08:09Z" {
			t.Errorf("created annotation = %q", c)
		}
	}
	if diff := cmp.Diff([]string{"app:latest", "b/app:v1", "b/app:v2"}, refs); diff != "" {
		t.Errorf("index.json order (-want +got):\n%s", diff)
	}
}

func TestTagReplaces(t *testing.T) {
	s := newStore(t)
	mustImage(t, s, "app", "old")
	latest := mustImage(t, s, "app", "new")
	if n := len(readIndexFile(t, s).Manifests); n != 1 {
		t.Errorf("index.json has %d entries, want 1", n)
	}
	img, err := s.Resolve(t.Context(), "app")
	if err != nil || img.Manifest.Digest != latest.manifest.Digest {
		t.Errorf("Resolve = %v, %v; want %s", img.Manifest.Digest, err, latest.manifest.Digest)
	}
}

func TestTagDefaultsCreated(t *testing.T) {
	s := newStore(t)
	img := mustImage(t, s, "", "x")
	before := time.Now().Add(-time.Second)
	if err := s.Tag(t.Context(), "app", "latest", img.manifest, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Resolve(t.Context(), "app")
	if err != nil || got.Created.Before(before) || got.Created.After(time.Now()) {
		t.Errorf("Created = %v, %v; want about now", got.Created, err)
	}
}

func TestTagRejects(t *testing.T) {
	s := newStore(t)
	img := mustImage(t, s, "", "x")
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 6}
	wrongSize := img.manifest
	wrongSize.Size++
	tests := []struct {
		name, tag string
		manifest  ocispec.Descriptor
		want      error
	}{
		{"App", "latest", img.manifest, ErrInvalidReference},
		{"app", "", img.manifest, ErrInvalidReference},
		{"app:x", "y", img.manifest, ErrInvalidReference},
		{"app", "x:y", img.manifest, ErrInvalidReference},
		{"app", "latest", absent, ErrNotFound},
		{"app", "latest", wrongSize, ErrDigestMismatch},
		{"app", "latest", img.blobs[1], nil}, // a kernel is no manifest
	}
	for _, tt := range tests {
		err := s.Tag(t.Context(), tt.name, tt.tag, tt.manifest, testTime)
		if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("Tag(%q, %q, %s) = %v, want %v", tt.name, tt.tag, tt.manifest.Digest, err, tt.want)
		}
	}
	// A config blob has the right media type only by mistake of the caller.
	cfg := img.blobs[0]
	cfg.MediaType = ""
	if err := s.Tag(t.Context(), "app", "latest", cfg, testTime); err == nil {
		t.Error("Tag of a config blob succeeded")
	}
	if n := len(readIndexFile(t, s).Manifests); n != 0 {
		t.Errorf("index.json has %d entries after failed tags", n)
	}
}

func TestResolve(t *testing.T) {
	s := newStore(t)
	a := mustImage(t, s, "app:v1", "a")
	mustImage(t, s, "app:v2", "a")
	b := mustImage(t, s, "other", "b")
	ah := a.manifest.Digest.Encoded()
	// An image named like a digest prefix of another.
	mustImage(t, s, b.manifest.Digest.Encoded()[:6], "c")

	tests := []struct {
		ref     string
		want    string // name:tag
		wantErr error
	}{
		{"app:v1", "app:v1", nil},
		{"app:v2", "app:v2", nil},
		{"other", "other:latest", nil},
		{"other:latest", "other:latest", nil},
		{string(a.manifest.Digest), "app:v1", nil},
		{ah[:12], "app:v1", nil},
		{ah[:4], "app:v1", nil},
		{"sha256:" + ah[:4], "app:v1", nil},
		{b.manifest.Digest.Encoded()[:6], b.manifest.Digest.Encoded()[:6] + ":latest", nil},
		{"sha256:" + b.manifest.Digest.Encoded()[:6], "other:latest", nil},
		{b.manifest.Digest.Encoded()[:7], "other:latest", nil},
		{"app", "", ErrNotFound},
		{"app:v3", "", ErrNotFound},
		{ah[:3], "", ErrNotFound},
		{"sha256:" + ah[:3], "", ErrNotFound},
		{digest.FromString("x").Encoded()[:10], "", ErrNotFound},
		{"App", "", ErrInvalidReference},
		{"sha256:" + strings.ToUpper(ah), "", ErrNotFound},
		{ah + "0", "", ErrNotFound},
		{"sha256:" + ah + "0", "", ErrNotFound},
		{"sha256:", "", ErrInvalidReference},
	}
	for _, tt := range tests {
		img, err := s.Resolve(t.Context(), tt.ref)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Resolve(%q) = %v, want %v", tt.ref, err, tt.wantErr)
			} else if !strings.Contains(err.Error(), tt.ref) {
				t.Errorf("Resolve(%q) error %q does not name the reference", tt.ref, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tt.ref, err)
			continue
		}
		if got := img.Name + ":" + img.Tag; got != tt.want {
			t.Errorf("Resolve(%q) = %s, want %s", tt.ref, got, tt.want)
		}
		if img.Size == 0 {
			t.Errorf("Resolve(%q) has no size", tt.ref)
		}
	}
}

// collidingManifests stores two manifests whose digests share their first
// four hex digits.
func collidingManifests(t *testing.T, s *Store) (x, y ocispec.Descriptor) {
	t.Helper()
	img := mustImage(t, s, "", "base")
	seen := make(map[string][]byte)
	for i := 0; ; i++ {
		m := ocispec.Manifest{
			Versioned:   specs.Versioned{SchemaVersion: 2},
			MediaType:   ocispec.MediaTypeImageManifest,
			Config:      img.blobs[0],
			Layers:      img.blobs[1:],
			Annotations: map[string]string{"n": fmt.Sprint(i)},
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		prefix := digest.FromBytes(b).Encoded()[:4]
		if other, ok := seen[prefix]; ok {
			return writeBytes(t, s, other), writeBytes(t, s, b)
		}
		seen[prefix] = b
	}
}

func writeBytes(t *testing.T, s *Store, b []byte) ocispec.Descriptor {
	t.Helper()
	d, err := s.WriteBlobBytes(t.Context(), b, ocispec.MediaTypeImageManifest)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestResolveAmbiguous(t *testing.T) {
	s := newStore(t)
	x, y := collidingManifests(t, s)
	for _, tag := range []string{"x1", "x2"} {
		if err := s.Tag(t.Context(), "app", tag, x, testTime); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Tag(t.Context(), "app", "y", y, testTime); err != nil {
		t.Fatal(err)
	}
	prefix := x.Digest.Encoded()[:4]
	for _, ref := range []string{prefix, "sha256:" + prefix} {
		_, err := s.Resolve(t.Context(), ref)
		if !errors.Is(err, ErrAmbiguous) {
			t.Fatalf("Resolve(%q) = %v, want ErrAmbiguous", ref, err)
		}
		for _, d := range []digest.Digest{x.Digest, y.Digest} {
			if !strings.Contains(err.Error(), d.Encoded()[:12]) || strings.Contains(err.Error(), d.Encoded()[:13]) {
				t.Errorf("error %q does not list %s in short", err, d.Encoded()[:12])
			}
		}
		if _, err := s.Untag(t.Context(), ref); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("Untag(%q) = %v, want ErrAmbiguous", ref, err)
		}
	}
	// Two tags of one manifest are not ambiguous.
	img, err := s.Resolve(t.Context(), x.Digest.Encoded()[:12])
	if err != nil || img.Tag != "x1" {
		t.Errorf("Resolve(%s) = %v, %v; want app:x1", x.Digest.Encoded()[:12], img, err)
	}
	if n := len(readIndexFile(t, s).Manifests); n != 3 {
		t.Errorf("index.json has %d entries, want 3", n)
	}
}

func TestUntag(t *testing.T) {
	s := newStore(t)
	a := mustImage(t, s, "app:v1", "a")
	mustImage(t, s, "app:v2", "a")
	mustImage(t, s, "lib:v2", "a")
	b := mustImage(t, s, "other", "b")

	removed, err := s.Untag(t.Context(), "app:v1")
	if err != nil || len(removed) != 1 || removed[0].Name != "app" || removed[0].Tag != "v1" {
		t.Errorf("Untag(app:v1) = %v, %v", removed, err)
	}
	if _, err := s.Untag(t.Context(), "app:v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Untag(app:v1) = %v, want ErrNotFound", err)
	}
	removed, err = s.Untag(t.Context(), a.manifest.Digest.Encoded()[:8])
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, img := range removed {
		refs = append(refs, img.Name+":"+img.Tag)
	}
	if diff := cmp.Diff([]string{"app:v2", "lib:v2"}, refs); diff != "" {
		t.Errorf("Untag by digest removed (-want +got):\n%s", diff)
	}
	imgs, err := s.Images(t.Context())
	if err != nil || len(imgs) != 1 || imgs[0].Manifest.Digest != b.manifest.Digest {
		t.Errorf("Images = %v, %v; want only other:latest", imgs, err)
	}
	if _, err := s.Untag(t.Context(), "Bad"); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("Untag(Bad) = %v, want ErrInvalidReference", err)
	}
	// The blobs stay until GC.
	if _, err := s.Manifest(a.manifest.Digest); err != nil {
		t.Errorf("manifest of untagged image: %v", err)
	}
}

func TestImagesReportsCorruptManifest(t *testing.T) {
	s := newStore(t)
	a := mustImage(t, s, "app", "a")
	mustImage(t, s, "other", "b")
	corrupt(t, s, a.manifest.Digest)
	if _, err := s.Images(t.Context()); !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "app:latest") {
		t.Errorf("Images = %v, want ErrDigestMismatch naming app:latest", err)
	}
	if _, err := s.Resolve(t.Context(), "other"); err != nil {
		t.Errorf("Resolve(other) with another image corrupt: %v", err)
	}
	if _, err := s.Untag(t.Context(), "app"); err != nil {
		t.Errorf("Untag of a corrupt image: %v", err)
	}
}

func FuzzResolve(f *testing.F) {
	s := newStore(f)
	a := mustImage(f, s, "app:v1", "a")
	mustImage(f, s, "org/app", "b")
	mustImage(f, s, a.manifest.Digest.Encoded()[:5], "c")
	for _, seed := range []string{
		"app:v1", "org/app", "app", string(a.manifest.Digest), a.manifest.Digest.Encoded()[:5],
		a.manifest.Digest.Encoded()[:6], "sha256:" + a.manifest.Digest.Encoded()[:4], "sha256:", "abc", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		img, err := s.Resolve(t.Context(), ref)
		if err != nil {
			if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidReference) && !errors.Is(err, ErrAmbiguous) {
				t.Fatalf("Resolve(%q): unexpected error %v", ref, err)
			}
			return
		}
		name, tag, perr := ParseReference(ref)
		byName := perr == nil && name == img.Name && tag == img.Tag
		hex := strings.TrimPrefix(ref, "sha256:")
		byDigest := len(hex) >= 4 && strings.HasPrefix(img.Manifest.Digest.Encoded(), hex)
		if !byName && !byDigest {
			t.Fatalf("Resolve(%q) = %s:%s (%s), which it does not name", ref, img.Name, img.Tag, img.Manifest.Digest)
		}
	})
}
