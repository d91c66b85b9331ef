package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nosproject/nos/image"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrNotNosImage reports an artefact that is not a nos image, such as a
// plain container image.
var ErrNotNosImage = errors.New("not a nos image")

// Limits on what is read whole into memory.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 4 << 20
	maxIndexSize    = 4 << 20
)

// distributionManifest returns the manifest of an image as it travels:
// the store's manifest with its artifactType and annotations describing
// it (kept from man where image.Annotations has nothing to say), as JSON.
// It depends only on the manifest, the config and the creation time, so
// pushing an image again, or pushing what was pulled, gives the same
// digest.
func distributionManifest(man ocispec.Manifest, cfg image.Config, created time.Time) ([]byte, error) {
	man.MediaType = ocispec.MediaTypeImageManifest
	man.ArtifactType = image.ArtifactType
	a := maps.Clone(man.Annotations)
	if a == nil {
		a = map[string]string{}
	}
	maps.Copy(a, image.Annotations(cfg, created))
	man.Annotations = a
	b, err := json.Marshal(man)
	if err != nil {
		return nil, fmt.Errorf("encoding the manifest: %w", err)
	}
	return b, nil
}

// knownLayers are the layer media types of nos images.
var knownLayers = map[string]bool{
	image.MediaTypeKernel:        true,
	image.MediaTypeKernelGzip:    true,
	image.MediaTypeInitramfs:     true,
	image.MediaTypeInitramfsGzip: true,
	image.MediaTypeRootErofs:     true,
	image.MediaTypeKernelEFI:     true,
}

// hint is what to do with a container image instead.
func hint(what string) string {
	return fmt.Sprintf("build a nos image from it with `nos build --from-oci %s`", what)
}

// parseManifest checks that raw is the manifest of a nos image, naming it
// what in errors (and fromOCI in the hint for a container image): an OCI image manifest with nos's config, a kernel and an
// initramfs, and nothing but nos's layers, all named by sha256 digests.
func parseManifest(what, fromOCI string, raw []byte) (ocispec.Manifest, error) {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        *struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("%s: parsing the manifest: %w", what, err)
	}
	switch {
	case probe.MediaType == ocispec.MediaTypeImageIndex || probe.Manifests != nil ||
		probe.MediaType == "application/vnd.docker.distribution.manifest.list.v2+json":
		return ocispec.Manifest{}, fmt.Errorf("%s: %w but an image index (of a container image, most likely): %s", what, ErrNotNosImage, hint(fromOCI))
	case probe.Config == nil || probe.Config.MediaType != image.MediaTypeConfig:
		return ocispec.Manifest{}, fmt.Errorf("%s: %w but a container image: %s", what, ErrNotNosImage, hint(fromOCI))
	case probe.SchemaVersion != 2:
		return ocispec.Manifest{}, fmt.Errorf("%s: manifest schemaVersion %d, want 2", what, probe.SchemaVersion)
	case probe.MediaType != "" && probe.MediaType != ocispec.MediaTypeImageManifest:
		return ocispec.Manifest{}, fmt.Errorf("%s: manifest media type %q is not an OCI image manifest", what, probe.MediaType)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("%s: parsing the manifest: %w", what, err)
	}
	if err := checkDescriptor(m.Config, maxConfigSize); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("%s: config: %w", what, err)
	}
	var kernel, initrd bool
	for i, l := range m.Layers {
		if err := checkDescriptor(l, -1); err != nil {
			return ocispec.Manifest{}, fmt.Errorf("%s: layer %d: %w", what, i, err)
		}
		if !knownLayers[l.MediaType] {
			return ocispec.Manifest{}, fmt.Errorf("%s: layer %d has media type %q, which nos images do not have", what, i, l.MediaType)
		}
		kernel = kernel || l.MediaType == image.MediaTypeKernel || l.MediaType == image.MediaTypeKernelGzip
		initrd = initrd || image.IsInitramfs(l.MediaType)
	}
	if !kernel || !initrd {
		return ocispec.Manifest{}, fmt.Errorf("%s: the manifest has no kernel or no initramfs layer", what)
	}
	return m, nil
}

// checkDescriptor accepts sha256 digests and sizes from 0 to max (any if
// max is negative).
func checkDescriptor(d ocispec.Descriptor, max int64) error {
	if err := d.Digest.Validate(); err != nil || d.Digest.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q is not a sha256 digest", d.Digest)
	}
	if d.Size < 0 || max >= 0 && d.Size > max {
		return fmt.Errorf("blob %s: size %d out of range", d.Digest, d.Size)
	}
	return nil
}

// parseConfig checks that b is a nos image config.
func parseConfig(what string, b []byte) (image.Config, error) {
	var c image.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: parsing the image config: %w", what, err)
	}
	if len(c.Entrypoint) == 0 {
		return c, fmt.Errorf("%s: the image config has no entrypoint", what)
	}
	return c, nil
}

// createdOf is the creation time an image's manifest annotation records;
// zero if none or unreadable.
func createdOf(m ocispec.Manifest) time.Time {
	t, err := time.Parse(time.RFC3339, m.Annotations[image.AnnotationCreated])
	if err != nil {
		return time.Time{}
	}
	return t
}
