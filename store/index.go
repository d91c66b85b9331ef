package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/nosproject/nos/image"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readIndex reads and validates index.json and returns it together with
// the images it tags, sorted by name and tag, with Size left zero.
func (s *Store) readIndex() (ocispec.Index, []Image, error) {
	b, err := os.ReadFile(s.path(indexFile))
	if err != nil {
		return ocispec.Index{}, nil, fmt.Errorf("reading index: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Index{}, nil, fmt.Errorf("parsing index: %w", err)
	}
	imgs, err := validateIndex(idx)
	if err != nil {
		return ocispec.Index{}, nil, fmt.Errorf("invalid index: %w", err)
	}
	return idx, imgs, nil
}

// validateIndex checks idx and returns the images it tags.
func validateIndex(idx ocispec.Index) ([]Image, error) {
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex {
		return nil, fmt.Errorf("media type %q is not an image index", idx.MediaType)
	}
	var imgs []Image
	seen := make(map[string]bool)
	for i, m := range idx.Manifests {
		img, tagged, err := entryImage(m)
		if err != nil {
			return nil, fmt.Errorf("manifests[%d]: %w", i, err)
		}
		if !tagged {
			continue
		}
		ref := img.Name + ":" + img.Tag
		if seen[ref] {
			return nil, fmt.Errorf("manifests[%d]: duplicate reference %q", i, ref)
		}
		seen[ref] = true
		imgs = append(imgs, img)
	}
	sortImages(imgs)
	return imgs, nil
}

// entryImage checks an entry of index.json and, if it carries a reference,
// returns it as an Image.
func entryImage(m ocispec.Descriptor) (img Image, tagged bool, err error) {
	if err := checkDigest(m.Digest); err != nil {
		return Image{}, false, err
	}
	if m.Size < 0 {
		return Image{}, false, fmt.Errorf("negative size %d", m.Size)
	}
	if v, ok := m.Annotations[image.AnnotationCreated]; ok {
		if img.Created, err = time.Parse(time.RFC3339, v); err != nil {
			return Image{}, false, fmt.Errorf("annotation %s: %w", image.AnnotationCreated, err)
		}
	}
	ref, ok := m.Annotations[image.AnnotationRefName]
	if !ok {
		return Image{}, false, nil
	}
	if img.Name, img.Tag, err = ParseReference(ref); err != nil {
		return Image{}, false, err
	}
	if img.Name+":"+img.Tag != ref {
		return Image{}, false, fmt.Errorf("reference %q is not of the form name:tag", ref)
	}
	img.Manifest = m
	return img, true, nil
}

func sortImages(imgs []Image) {
	slices.SortFunc(imgs, func(a, b Image) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Tag, b.Tag))
	})
}

// encodeIndex returns idx as JSON with its entries sorted by reference and
// then digest, so that equal contents give equal files.
func encodeIndex(idx ocispec.Index) ([]byte, error) {
	idx.Versioned = specs.Versioned{SchemaVersion: 2}
	idx.MediaType = ocispec.MediaTypeImageIndex
	idx.Manifests = slices.Clone(idx.Manifests)
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	slices.SortStableFunc(idx.Manifests, func(a, b ocispec.Descriptor) int {
		return cmp.Or(
			cmp.Compare(a.Annotations[image.AnnotationRefName], b.Annotations[image.AnnotationRefName]),
			cmp.Compare(a.Digest, b.Digest))
	})
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding index: %w", err)
	}
	return append(b, '\n'), nil
}

// writeIndexLocked atomically replaces index.json with idx.
func (s *Store) writeIndexLocked(idx ocispec.Index) error {
	b, err := encodeIndex(idx)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path(indexFile), s.path(indexTemp), b); err != nil {
		return fmt.Errorf("writing index: %w", err)
	}
	return nil
}

// TagLocked names the image manifest described by manifest "name:tag",
// recording created (the current time if zero) as the time the image was
// stored. An existing image of that name and tag is replaced; its blobs
// stay until [Store.GC]. The manifest blob must be in the store. The
// caller must hold [Store.Lock].
func (s *Store) TagLocked(name, tag string, manifest ocispec.Descriptor, created time.Time) error {
	ref := name + ":" + tag
	if n, t, err := ParseReference(ref); err != nil {
		return err
	} else if n != name || t != tag {
		return fmt.Errorf("%w: name %q, tag %q", ErrInvalidReference, name, tag)
	}
	entry, err := s.indexEntry(ref, manifest, created)
	if err != nil {
		return fmt.Errorf("tagging %s: %w", ref, err)
	}
	idx, _, err := s.readIndex()
	if err != nil {
		return err
	}
	idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m ocispec.Descriptor) bool {
		return m.Annotations[image.AnnotationRefName] == ref
	})
	idx.Manifests = append(idx.Manifests, entry)
	return s.writeIndexLocked(idx)
}

// indexEntry checks that the manifest is stored intact and returns its
// index.json entry for ref.
func (s *Store) indexEntry(ref string, manifest ocispec.Descriptor, created time.Time) (ocispec.Descriptor, error) {
	if manifest.MediaType == "" {
		manifest.MediaType = ocispec.MediaTypeImageManifest
	}
	if manifest.MediaType != ocispec.MediaTypeImageManifest {
		return ocispec.Descriptor{}, fmt.Errorf("media type %q is not an image manifest", manifest.MediaType)
	}
	if err := s.VerifyBlob(manifest.Digest, manifest.Size); err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := s.Manifest(manifest.Digest); err != nil {
		return ocispec.Descriptor{}, err
	}
	if created.IsZero() {
		created = time.Now()
	}
	manifest.Annotations = maps.Clone(manifest.Annotations)
	if manifest.Annotations == nil {
		manifest.Annotations = make(map[string]string)
	}
	manifest.Annotations[image.AnnotationRefName] = ref
	manifest.Annotations[image.AnnotationCreated] = created.UTC().Format(time.RFC3339)
	return manifest, nil
}

// Tag is [Store.TagLocked] under the store's exclusive lock.
func (s *Store) Tag(ctx context.Context, name, tag string, manifest ocispec.Descriptor, created time.Time) error {
	unlock, err := s.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.TagLocked(name, tag, manifest, created)
}
