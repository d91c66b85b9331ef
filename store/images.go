package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nosproject/nos/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a tagged image in the store.
type Image struct {
	// Name and Tag are the parts of the image's reference "name:tag".
	Name, Tag string
	// Manifest describes the image manifest blob.
	Manifest ocispec.Descriptor
	// Created is when the image was tagged; zero if unrecorded.
	Created time.Time
	// Size is the sum of the sizes of the manifest, config and layers.
	Size int64
}

// shortLen is how many hex digits of a digest identify an image in messages.
const shortLen = 12

// minPrefixLen is the shortest digest prefix Resolve accepts.
const minPrefixLen = 4

// Images lists the tagged images sorted by name and tag. It fails, naming
// the image, if the manifest of any image cannot be read.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	unlock, err := s.RLock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	_, imgs, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	for i := range imgs {
		if err := s.fillSize(&imgs[i]); err != nil {
			return nil, err
		}
	}
	return imgs, nil
}

// Resolve finds the image that ref names. A ref is either "name[:tag]" or
// a manifest digest, "sha256:" and its hex digits, of which a prefix of at
// least four digits will do, with or without "sha256:". A bare hex string
// is taken as a name first. If several tags point to the manifest a digest
// names, Resolve returns the first by name and tag. It fails with
// ErrNotFound if no image matches and with ErrAmbiguous if a prefix
// matches several manifests.
func (s *Store) Resolve(ctx context.Context, ref string) (Image, error) {
	unlock, err := s.RLock(ctx)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	_, imgs, err := s.readIndex()
	if err != nil {
		return Image{}, err
	}
	matches, err := match(imgs, ref)
	if err != nil {
		return Image{}, err
	}
	img := matches[0]
	if err := s.fillSize(&img); err != nil {
		return Image{}, err
	}
	return img, nil
}

// Untag removes the tag ref names, or, if ref is a digest or digest
// prefix as for [Store.Resolve], every tag of that manifest. It returns
// the removed images, with Size left zero. Their blobs stay until
// [Store.GC].
func (s *Store) Untag(ctx context.Context, ref string) (removed []Image, err error) {
	unlock, err := s.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	idx, imgs, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	matches, err := match(imgs, ref)
	if err != nil {
		return nil, err
	}
	gone := make(map[string]bool, len(matches))
	for _, img := range matches {
		gone[img.Name+":"+img.Tag] = true
	}
	idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m ocispec.Descriptor) bool {
		ref, ok := m.Annotations[image.AnnotationRefName]
		return ok && gone[ref]
	})
	if err := s.writeIndexLocked(idx); err != nil {
		return nil, err
	}
	return matches, nil
}

// fillSize sets img.Size from its manifest.
func (s *Store) fillSize(img *Image) error {
	m, err := s.Manifest(img.Manifest.Digest)
	if err != nil {
		return fmt.Errorf("image %s:%s: %w", img.Name, img.Tag, err)
	}
	img.Size = img.Manifest.Size + m.Config.Size
	for _, l := range m.Layers {
		img.Size += l.Size
	}
	return nil
}

// match returns the images ref names among imgs, sorted by name and tag:
// one for a name and tag, all tags of a manifest for a digest.
func match(imgs []Image, ref string) ([]Image, error) {
	if hex, ok := strings.CutPrefix(ref, "sha256:"); ok && isHexPrefix(hex) {
		return matchDigest(imgs, ref, hex)
	}
	name, tag, err := ParseReference(ref)
	if err == nil {
		for _, img := range imgs {
			if img.Name == name && img.Tag == tag {
				return []Image{img}, nil
			}
		}
	}
	if isHexPrefix(ref) {
		return matchDigest(imgs, ref, ref)
	}
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
}

// matchDigest returns the images whose manifest digest starts with hex.
func matchDigest(imgs []Image, ref, hex string) ([]Image, error) {
	var found []Image
	var digests []digest.Digest
	for _, img := range imgs {
		if strings.HasPrefix(img.Manifest.Digest.Encoded(), hex) {
			found = append(found, img)
			if !slices.Contains(digests, img.Manifest.Digest) {
				digests = append(digests, img.Manifest.Digest)
			}
		}
	}
	switch len(digests) {
	case 0:
		return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
	case 1:
		return found, nil
	}
	short := make([]string, len(digests))
	for i, d := range digests {
		short[i] = d.Encoded()[:shortLen]
	}
	slices.Sort(short)
	return nil, fmt.Errorf("%w: %q matches %s", ErrAmbiguous, ref, strings.Join(short, ", "))
}

func isHexPrefix(s string) bool {
	if len(s) < minPrefixLen || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}
