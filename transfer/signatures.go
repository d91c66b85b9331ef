package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/nosproject/nos/signature"
)

// RemoteDigest is the manifest digest ref (HOST[:PORT]/NAME[:TAG]) points
// at in its registry.
func RemoteDigest(ctx context.Context, ref string, o Options) (string, error) {
	r, err := o.Registry.Parse(ref)
	if err != nil {
		return "", err
	}
	c := o.Registry.Client()
	d, err := remote.Head(r, c.Options(ctx)...)
	if err != nil {
		return "", c.Explain(r.Context().RegistryStr(), "pull "+ref, err)
	}
	return d.Digest.String(), nil
}

// PushSignatures puts sigs of the manifest dgst next to it in ref's
// repository, at cosign's tag sha256-<hex>.sig, as one signature image
// (cosign reads it; pushing again replaces it with the same content).
func PushSignatures(ctx context.Context, ref, dgst string, sigs []signature.Signature, o Options) error {
	if len(sigs) == 0 {
		return nil
	}
	r, err := o.Registry.Parse(ref)
	if err != nil {
		return err
	}
	img, err := signature.Image(sigs)
	if err != nil {
		return err
	}
	c := o.Registry.Client()
	tag := r.Context().Tag(signature.Tag(dgst))
	if err := remote.Write(tag, img, c.Options(ctx)...); err != nil {
		return c.Explain(r.Context().RegistryStr(), "push the signatures of "+ref, err)
	}
	return nil
}

// PullSignatures fetches the signatures of the manifest dgst from ref's
// repository; a repository without any gives none, not an error.
func PullSignatures(ctx context.Context, ref, dgst string, o Options) ([]signature.Signature, error) {
	r, err := o.Registry.Parse(ref)
	if err != nil {
		return nil, err
	}
	c := o.Registry.Client()
	tag := r.Context().Tag(signature.Tag(dgst))
	img, err := remote.Image(tag, c.Options(ctx)...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, c.Explain(r.Context().RegistryStr(), "pull the signatures of "+ref, err)
	}
	sigs, err := signature.FromImage(img)
	if err != nil {
		return nil, fmt.Errorf("the signatures of %s: %w", ref, err)
	}
	return sigs, nil
}
