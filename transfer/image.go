package transfer

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// PushImage sends a container image (not a nos image: e.g. the
// containerDisk a KubeVirt export makes) to the registry reference dst,
// a tag, with the registry rules and credentials of nos push. The
// registry stores every blob before the manifest, which it checks
// against them, and the tag is the manifest's last step: a push that
// fails leaves the tag as it was. Pushed.Ref is the repository, as the
// registry knows it; a reference by digest is Pushed.Ref + "@" +
// Pushed.Digest.
func PushImage(ctx context.Context, img v1.Image, dst string, o Options) (Pushed, error) {
	ref, err := o.Registry.Parse(dst)
	if err != nil {
		return Pushed{}, err
	}
	if _, ok := ref.(interface{ DigestStr() string }); ok {
		return Pushed{}, fmt.Errorf("push %s: push to a tag, not a digest", dst)
	}
	d, err := img.Digest()
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", dst, err)
	}
	size, err := img.Size()
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", dst, err)
	}
	c := o.Registry.Client()
	err = writeImage(ctx, c, ref, img, o.Progress)
	if err != nil {
		return Pushed{}, c.Explain(ref.Context().RegistryStr(), "push "+dst, err)
	}
	return Pushed{Ref: ref.Context().Name(), Digest: digest.Digest(d.String()), Size: size}, nil
}
