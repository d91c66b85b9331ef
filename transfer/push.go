package transfer

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	gname "github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/internal/registry"
	"github.com/nosproject/nos/store"
)

// Options configure a transfer with a registry.
type Options struct {
	Registry registry.Config
	// Progress, when set, is called with the bytes moved so far and the
	// bytes to move in all, from one goroutine at a time.
	Progress func(done, total int64)
}

// Pushed is the outcome of a push.
type Pushed struct {
	// Ref is the reference pushed to, as the registry knows it.
	Ref string
	// Digest and Size are the pushed manifest's.
	Digest digest.Digest
	Size   int64
}

// local is an image read from the store.
type local struct {
	img       store.Image
	man       ocispec.Manifest
	rawConfig []byte
	config    image.Config
}

func readLocal(ctx context.Context, st *store.Store, ref string) (local, error) {
	img, err := st.Resolve(ctx, ref)
	if err != nil {
		return local{}, err
	}
	man, err := st.Manifest(img.Manifest.Digest)
	if err != nil {
		return local{}, err
	}
	if man.Config.MediaType != image.MediaTypeConfig {
		return local{}, fmt.Errorf("image %s: %w (config media type %q)", ref, ErrNotNosImage, man.Config.MediaType)
	}
	raw, err := st.ReadBlob(man.Config.Digest)
	if err != nil {
		return local{}, fmt.Errorf("image %s: reading the config: %w", ref, err)
	}
	cfg, err := parseConfig("image "+ref, raw)
	if err != nil {
		return local{}, err
	}
	return local{img: img, man: man, rawConfig: raw, config: cfg}, nil
}

// Push sends the stored image src to the registry reference dst. It also
// tags dst in the store, pointing at the manifest as pushed (the store's
// manifest with its annotations), so the local dst and the one any store
// pulls have the same digest. Blobs the registry has are not sent again.
func Push(ctx context.Context, st *store.Store, src, dst string, o Options) (Pushed, error) {
	name, tag, err := store.ParseReference(dst)
	if err != nil {
		return Pushed{}, err
	}
	ref, err := o.Registry.Parse(dst)
	if err != nil {
		return Pushed{}, err
	}
	if _, ok := ref.(interface{ DigestStr() string }); ok {
		return Pushed{}, fmt.Errorf("push %s: push to a tag, not a digest", dst)
	}
	l, err := readLocal(ctx, st, src)
	if err != nil {
		return Pushed{}, err
	}
	raw, err := distributionManifest(l.man, l.config, l.img.Created)
	if err != nil {
		return Pushed{}, err
	}
	img, err := partial.CompressedToImage(&storeImage{st: st, raw: raw, config: l.rawConfig, man: l.man})
	if err != nil {
		return Pushed{}, err
	}
	c := o.Registry.Client()
	reg := ref.Context().RegistryStr()
	what := "push " + dst
	err = writeImage(ctx, c, ref, img, o.Progress)
	if err != nil {
		return Pushed{}, c.Explain(reg, what, err)
	}

	unlock, err := st.Lock(ctx)
	if err != nil {
		return Pushed{}, err
	}
	defer unlock()
	desc, err := st.WriteBlobBytes(ctx, raw, ocispec.MediaTypeImageManifest)
	if err != nil {
		return Pushed{}, fmt.Errorf("%s: storing the pushed manifest: %w", what, err)
	}
	desc.ArtifactType = image.ArtifactType
	if err := st.TagLocked(name, tag, desc, l.img.Created); err != nil {
		return Pushed{}, fmt.Errorf("%s: tagging: %w", what, err)
	}
	return Pushed{Ref: ref.Name(), Digest: desc.Digest, Size: desc.Size}, nil
}

// storeImage is a stored nos image as go-containerregistry's
// partial.CompressedImageCore, with the manifest as it travels.
type storeImage struct {
	st     *store.Store
	raw    []byte
	config []byte
	man    ocispec.Manifest
}

var _ partial.CompressedImageCore = (*storeImage)(nil)

func (i *storeImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i *storeImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *storeImage) RawManifest() ([]byte, error)        { return i.raw, nil }
func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range append([]ocispec.Descriptor{i.man.Config}, i.man.Layers...) {
		if l.Digest.String() == h.String() {
			return &storeLayer{st: i.st, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("blob %s is not part of the image", h)
}

// storeLayer is a blob of the store as a partial.CompressedLayer; its
// reader checks the blob against its digest as it goes, so a blob
// corrupted in the store is never sent as if it were good.
type storeLayer struct {
	st   *store.Store
	desc ocispec.Descriptor
}

var _ partial.CompressedLayer = (*storeLayer)(nil)

func (l *storeLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }
func (l *storeLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	if l.desc.MediaType == image.MediaTypeConfig {
		b, err := l.st.ReadBlob(l.desc.Digest)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	f, err := os.Open(l.st.BlobPath(l.desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", l.desc.Digest, err)
	}
	return &verifyingReader{f: f, h: digest.SHA256.Hash(), want: l.desc.Digest, size: l.desc.Size}, nil
}

// verifyingReader fails at the end of a file whose content does not match
// its digest and size.
type verifyingReader struct {
	f    *os.File
	h    hash.Hash
	n    int64
	want digest.Digest
	size int64
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if err == io.EOF {
		if got := digest.NewDigest(digest.SHA256, r.h); got != r.want || r.n != r.size {
			return n, fmt.Errorf("blob %s in the store: %w (%d bytes hashing to %s): remove the image and build or pull it again", r.want, store.ErrDigestMismatch, r.n, got)
		}
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.f.Close() }

// IsRemote reports whether ref names a registry, as docker tells: its
// first path component has a "." or a ":", or is "localhost". `nos run`
// pulls only such references, never a bare name from a default registry.
func IsRemote(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	return ok && (strings.ContainsAny(first, ".:[") || first == "localhost")
}

// writeImage writes img to ref through c, telling progress (when not nil)
// how much is done, and returns once the progress reports have ended.
func writeImage(ctx context.Context, c *registry.Client, ref gname.Reference, img v1.Image, progress func(done, total int64)) error {
	var ropts []remote.Option
	var progressDone chan struct{}
	if progress != nil {
		updates := make(chan v1.Update, 64)
		progressDone = make(chan struct{})
		go func() {
			defer close(progressDone)
			for u := range updates {
				if u.Error == nil {
					progress(u.Complete, u.Total)
				}
			}
		}()
		ropts = append(ropts, remote.WithProgress(updates))
	}
	err := remote.Write(ref, img, c.Options(ctx, ropts...)...)
	if progressDone != nil {
		<-progressDone // go-containerregistry closes the channel when done
	}
	return err
}
