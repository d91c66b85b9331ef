package signature

import (
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Limits on signature images read from outside: a payload is a few
// hundred bytes; these bound what a hostile registry can make nos read.
const (
	MaxPayloadBytes = 64 << 10
	MaxSignatures   = 64
)

// Image is the OCI image that carries sigs, laid out as cosign lays out
// its signature images: one layer per payload, its signature in the
// layer's annotation.
func Image(sigs []Signature) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, s := range sigs {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:       static.NewLayer(s.Payload, PayloadMediaType),
			Annotations: map[string]string{SignatureAnnotation: s.Base64},
		})
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// FromImage reads the signatures a signature image carries (cosign's or
// nos's); layers of other media types are skipped.
func FromImage(img v1.Image) ([]Signature, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("signature image: %w", err)
	}
	if len(m.Layers) > MaxSignatures {
		return nil, fmt.Errorf("signature image has %d layers, more than %d: %w", len(m.Layers), MaxSignatures, ErrInvalid)
	}
	var out []Signature
	for _, d := range m.Layers {
		if string(d.MediaType) != PayloadMediaType {
			continue
		}
		if d.Size > MaxPayloadBytes {
			return nil, fmt.Errorf("signed payload of %d bytes: %w", d.Size, ErrInvalid)
		}
		l, err := img.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("signature layer %s: %w", d.Digest, err)
		}
		rc, err := l.Compressed() // the payload as stored: verified against its digest as it is read
		if err != nil {
			return nil, fmt.Errorf("signature layer %s: %w", d.Digest, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, MaxPayloadBytes+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("signature layer %s: %w", d.Digest, err)
		}
		if len(b) > MaxPayloadBytes {
			return nil, fmt.Errorf("signed payload over %d bytes: %w", MaxPayloadBytes, ErrInvalid)
		}
		out = append(out, Signature{Payload: b, Base64: d.Annotations[SignatureAnnotation]})
	}
	return out, nil
}
