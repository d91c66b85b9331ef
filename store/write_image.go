package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/nosproject/nos/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageParts are the pieces of an image to store: its config, the files
// of its layers in order, and the reference to tag it with.
type ImageParts struct {
	// Config is the image config, as JSON (an image.Config).
	Config []byte
	// Layers are the files of the image's layers, in order.
	Layers []LayerFile
	// Name and Tag are the reference the image is tagged with.
	Name, Tag string
	// Created is recorded in the index, not in the image, so that it does
	// not change the digest; zero means now.
	Created time.Time
}

// LayerFile is a layer stored from a file.
type LayerFile struct {
	Path      string
	MediaType string
}

// WriteImage stores the layers, the config and a manifest naming them as
// blobs, and tags the manifest name:tag. All of it happens under the
// store's lock, so that a concurrent garbage collection cannot remove the
// blobs before they are tagged. It returns the tagged image.
func (s *Store) WriteImage(ctx context.Context, p ImageParts) (Image, error) {
	if _, _, err := ParseReference(p.Name + ":" + p.Tag); err != nil {
		return Image{}, err
	}
	unlock, err := s.Lock(ctx)
	if err != nil {
		return Image{}, err
	}
	defer unlock()

	var layers []ocispec.Descriptor
	for _, l := range p.Layers {
		d, err := s.writeFileBlob(ctx, l.Path, l.MediaType)
		if err != nil {
			return Image{}, fmt.Errorf("storing layer %s: %w", l.MediaType, err)
		}
		layers = append(layers, d)
	}
	cdesc, err := s.WriteBlobBytes(ctx, p.Config, image.MediaTypeConfig)
	if err != nil {
		return Image{}, fmt.Errorf("storing config: %w", err)
	}
	man := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: image.ArtifactType,
		Config:       cdesc,
		Layers:       layers,
	}
	man.SchemaVersion = 2
	mb, err := json.Marshal(man)
	if err != nil {
		return Image{}, err
	}
	mdesc, err := s.WriteBlobBytes(ctx, mb, ocispec.MediaTypeImageManifest)
	if err != nil {
		return Image{}, fmt.Errorf("storing manifest: %w", err)
	}
	mdesc.ArtifactType = image.ArtifactType
	created := p.Created
	if created.IsZero() {
		created = time.Now()
	}
	if err := s.TagLocked(p.Name, p.Tag, mdesc, created); err != nil {
		return Image{}, err
	}
	img := Image{Name: p.Name, Tag: p.Tag, Manifest: mdesc, Created: created, Size: mdesc.Size + cdesc.Size}
	for _, l := range layers {
		img.Size += l.Size
	}
	return img, nil
}

func (s *Store) writeFileBlob(ctx context.Context, path, mediaType string) (ocispec.Descriptor, error) {
	f, err := os.Open(path)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer f.Close()
	return s.WriteBlob(ctx, f, mediaType)
}
