package transfer

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// emptyConfig is OCI's empty descriptor content, the config of artefacts
// that have none.
var emptyConfig = []byte("{}")

// ReferrerManifest is the manifest of an artefact of artifactType whose
// one layer is data, referring to subject (OCI 1.1's referrers): e.g. an
// image's bill of materials. It is a pure function.
func ReferrerManifest(artifactType string, data []byte, subject ocispec.Descriptor) ([]byte, error) {
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(emptyConfig), Size: int64(len(emptyConfig))},
		Layers:       []ocispec.Descriptor{{MediaType: artifactType, Digest: digest.FromBytes(data), Size: int64(len(data))}},
		Subject:      &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	}
	m.SchemaVersion = 2
	return json.Marshal(m)
}

type rawManifest struct{ raw []byte }

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// PushReferrer pushes an artefact referring to subject into ref's
// repository. Registries without the referrers API get the fallback tag
// (sha256-<hex> index) go-containerregistry maintains; either way
// `remote.Referrers` (and oras, cosign tree) find it.
func PushReferrer(ctx context.Context, ref, artifactType string, data []byte, subject ocispec.Descriptor, o Options) (digest.Digest, error) {
	r, err := o.Registry.Parse(ref)
	if err != nil {
		return "", err
	}
	raw, err := ReferrerManifest(artifactType, data, subject)
	if err != nil {
		return "", err
	}
	c := o.Registry.Client()
	what := "push the bill of materials of " + ref
	repo := r.Context()
	for _, b := range []struct {
		data []byte
		mt   string
	}{{emptyConfig, ocispec.MediaTypeEmptyJSON}, {data, artifactType}} {
		if err := remote.WriteLayer(repo, static.NewLayer(b.data, types.MediaType(b.mt)), c.Options(ctx)...); err != nil {
			return "", c.Explain(repo.RegistryStr(), what, err)
		}
	}
	d := digest.FromBytes(raw)
	if err := remote.Put(repo.Digest(d.String()), rawManifest{raw}, c.Options(ctx)...); err != nil {
		return "", c.Explain(repo.RegistryStr(), what, err)
	}
	return d, nil
}

// Referrers lists the artefacts referring to the manifest dgst in ref's
// repository, by artifact type.
func Referrers(ctx context.Context, ref, dgst string, o Options) ([]ocispec.Descriptor, error) {
	r, err := o.Registry.Parse(ref)
	if err != nil {
		return nil, err
	}
	c := o.Registry.Client()
	idx, err := remote.Referrers(r.Context().Digest(dgst), c.Options(ctx)...)
	if err != nil {
		return nil, c.Explain(r.Context().RegistryStr(), "list the referrers of "+ref, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", ref, err)
	}
	var out []ocispec.Descriptor
	for _, d := range m.Manifests {
		out = append(out, ocispec.Descriptor{MediaType: string(d.MediaType), ArtifactType: d.ArtifactType, Digest: digest.Digest(d.Digest.String()), Size: d.Size})
	}
	return out, nil
}
