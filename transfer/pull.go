package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/store"
)

// Pulled is the outcome of a pull.
type Pulled struct {
	// Name and Tag are the image's reference in the store.
	Name, Tag string
	// Digest is the manifest's.
	Digest digest.Digest
	// UpToDate is set when the store had the image under that tag
	// already: nothing was transferred or changed.
	UpToDate bool
	// Blobs and Bytes count what was transferred.
	Blobs int
	Bytes int64
}

// Pull fetches the nos image ref names from its registry into the store
// and tags it ref. It refuses anything but a nos image before fetching
// any blob, checks the manifest's digest and every blob's, and commits
// nothing until all of them are good.
func Pull(ctx context.Context, st *store.Store, ref string, o Options) (Pulled, error) {
	lname, ltag, err := store.ParseReference(ref)
	if err != nil {
		if _, derr := name.NewDigest(ref); derr == nil {
			return Pulled{}, fmt.Errorf("pull %s: pulling by digest is not supported yet: pull a tag", ref)
		}
		return Pulled{}, err
	}
	r, err := o.Registry.Parse(ref)
	if err != nil {
		return Pulled{}, err
	}
	out := Pulled{Name: lname, Tag: ltag}
	c := o.Registry.Client()
	reg := r.Context().RegistryStr()
	what := "pull " + ref
	ropts := c.Options(ctx)

	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return out, c.Explain(reg, what, err)
	}
	raw := desc.Manifest
	if len(raw) > maxManifestSize {
		return out, fmt.Errorf("%s: the manifest is larger than %d bytes", what, maxManifestSize)
	}
	out.Digest = digest.FromBytes(raw)
	if desc.Digest.String() != out.Digest.String() {
		return out, fmt.Errorf("%s: %w: the manifest hashes to %s, the registry says %s", what, store.ErrDigestMismatch, out.Digest, desc.Digest)
	}
	man, err := parseManifest(ref, ref, raw)
	if err != nil {
		return out, err
	}
	if cur, err := st.Resolve(ctx, lname+":"+ltag); err == nil && cur.Manifest.Digest == out.Digest && haveAll(st, man) {
		out.UpToDate = true
		return out, nil
	}

	var need []ocispec.Descriptor
	var total int64
	for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
		if st.VerifyBlob(d.Digest, d.Size) != nil && !containsDigest(need, d.Digest) {
			need = append(need, d)
			total += d.Size
		}
	}
	var pending []*store.Pending
	defer func() {
		for _, p := range pending {
			p.Discard()
		}
	}()
	progress := &counter{fn: o.Progress, total: total}
	progress.report()
	// The blobs come in parallel (a few at a time), each into a pending
	// file checked against its digest; the first failure cancels the rest.
	fetched := make([]*store.Pending, len(need))
	g, gctx := errgroup.WithContext(ctx) // the first error (kept) cancels the others
	g.SetLimit(parallelBlobs)
	for i, d := range need {
		g.Go(func() error {
			p, err := fetchBlob(gctx, st, r.Context(), d, progress, c.Options(gctx))
			if err != nil {
				return err
			}
			fetched[i] = p
			return nil
		})
	}
	err = g.Wait()
	for _, p := range fetched {
		if p != nil {
			pending = append(pending, p)
		}
	}
	if err != nil {
		if errors.Is(err, store.ErrDigestMismatch) {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		return out, c.Explain(reg, what, err)
	}
	for i, d := range need {
		p := fetched[i]
		out.Blobs++
		out.Bytes += p.Size
		if d.Digest == man.Config.Digest {
			b, err := p.ReadAll(maxConfigSize)
			if err != nil {
				return out, err
			}
			if _, err := parseConfig(ref, b); err != nil {
				return out, err
			}
		}
	}
	mp, err := st.Ingest(ctx, bytes.NewReader(raw))
	if err != nil {
		return out, err
	}
	pending = append(pending, mp)
	if err := commitAndTag(ctx, st, pending, lname, ltag, ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, ArtifactType: image.ArtifactType, Digest: out.Digest, Size: int64(len(raw)),
	}, createdOf(man)); err != nil {
		return out, fmt.Errorf("%s: %w", what, err)
	}
	pending = nil
	return out, nil
}

// fetchBlob copies blob d of repo into a pending file and checks it.
func fetchBlob(ctx context.Context, st *store.Store, repo name.Repository, d ocispec.Descriptor, progress *counter, ropts []remote.Option) (*store.Pending, error) {
	l, err := remote.Layer(repo.Digest(d.Digest.String()), ropts...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Exactly the announced size is read and hashed here, so a bad blob
	// is reported as the store's digest mismatch rather than by
	// go-containerregistry's own check at the end of the stream.
	p, err := st.Ingest(ctx, io.TeeReader(&exactReader{r: rc, left: d.Size}, progress))
	if err != nil {
		return nil, err
	}
	if err := p.Check(d.Digest, d.Size); err != nil {
		p.Discard()
		return nil, err
	}
	return p, nil
}

// exactReader reads n bytes and then ends, whatever error the
// underlying reader gives with its last bytes (go-containerregistry's
// digest check, which the caller repeats itself).
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if e.left == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// commitAndTag commits the pending blobs and tags the manifest under the
// store's lock, so no garbage collection comes in between.
func commitAndTag(ctx context.Context, st *store.Store, pending []*store.Pending, name, tag string, manifest ocispec.Descriptor, created time.Time) error {
	unlock, err := st.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	for _, p := range pending {
		if err := p.Commit(); err != nil {
			return err
		}
	}
	return st.TagLocked(name, tag, manifest, created)
}

// haveAll reports whether the store holds every blob of man intact.
func haveAll(st *store.Store, man ocispec.Manifest) bool {
	for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
		if st.VerifyBlob(d.Digest, d.Size) != nil {
			return false
		}
	}
	return true
}

func containsDigest(ds []ocispec.Descriptor, d digest.Digest) bool {
	for _, x := range ds {
		if x.Digest == d {
			return true
		}
	}
	return false
}

// parallelBlobs is how many blobs a pull fetches at once.
const parallelBlobs = 4

// counter reports bytes as they are written to it, from any goroutine.
type counter struct {
	fn          func(done, total int64)
	mu          sync.Mutex
	done, total int64
}

func (c *counter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done += int64(len(p))
	c.reportLocked()
	return len(p), nil
}

func (c *counter) report() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reportLocked()
}

func (c *counter) reportLocked() {
	if c.fn != nil {
		c.fn(c.done, c.total)
	}
}
