package transfer

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/store"
)

// ErrBadArchive reports an archive that is not an OCI image layout
// tarball nos can load, or one that was tampered with.
var ErrBadArchive = errors.New("bad archive")

// archiveTime is every entry's modification time, so that saving the
// same images twice gives the same bytes.
var archiveTime = time.Unix(0, 0).UTC()

// Save writes the stored images refs name to w as an OCI image-layout
// tarball: oci-layout, index.json naming each image by its
// org.opencontainers.image.ref.name annotation, and blobs/sha256/. Every
// ref is resolved before anything is written, and every blob is checked
// against its digest as it is copied. The same images give the same bytes.
func Save(ctx context.Context, st *store.Store, w io.Writer, refs []string) error {
	if len(refs) == 0 {
		return errors.New("save: name at least one image")
	}
	var entries []ocispec.Descriptor
	blobs := map[digest.Digest]int64{}
	for _, ref := range refs {
		img, err := st.Resolve(ctx, ref)
		if err != nil {
			return err
		}
		man, err := st.Manifest(img.Manifest.Digest)
		if err != nil {
			return err
		}
		e := img.Manifest
		e.Annotations = map[string]string{image.AnnotationRefName: img.Name + ":" + img.Tag}
		if !img.Created.IsZero() {
			e.Annotations[image.AnnotationCreated] = img.Created.UTC().Format(time.RFC3339)
		}
		if !slices.ContainsFunc(entries, func(x ocispec.Descriptor) bool {
			return x.Annotations[image.AnnotationRefName] == e.Annotations[image.AnnotationRefName]
		}) {
			entries = append(entries, e)
		}
		blobs[img.Manifest.Digest] = img.Manifest.Size
		for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
			blobs[d.Digest] = d.Size
		}
	}
	slices.SortFunc(entries, func(a, b ocispec.Descriptor) int {
		return cmp.Compare(a.Annotations[image.AnnotationRefName], b.Annotations[image.AnnotationRefName])
	})
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries}
	ib, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	lb, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		data []byte
	}{{ocispec.ImageLayoutFile, lb}, {ocispec.ImageIndexFile, append(ib, '\n')}} {
		if err := writeEntry(tw, f.name, int64(len(f.data)), bytes.NewReader(f.data)); err != nil {
			return err
		}
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: archiveTime, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	digests := slices.Sorted(func(yield func(digest.Digest) bool) {
		for d := range blobs {
			if !yield(d) {
				return
			}
		}
	})
	for _, d := range digests {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := saveBlob(st, tw, d, blobs[d]); err != nil {
			return err
		}
	}
	return tw.Close()
}

func saveBlob(st *store.Store, tw *tar.Writer, d digest.Digest, size int64) error {
	f, err := os.Open(st.BlobPath(d))
	if err != nil {
		return fmt.Errorf("save: blob %s: %w", d, err)
	}
	defer f.Close()
	v := d.Verifier()
	if err := writeEntry(tw, "blobs/sha256/"+d.Encoded(), size, io.TeeReader(f, v)); err != nil {
		return fmt.Errorf("save: blob %s: %w", d, err)
	}
	if !v.Verified() {
		return fmt.Errorf("save: blob %s in the store: %w: remove the image and build or pull it again", d, store.ErrDigestMismatch)
	}
	return nil
}

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: archiveTime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.CopyN(tw, r, size)
	if err != nil {
		return fmt.Errorf("%s: %d of %d bytes: %w", name, n, size, err)
	}
	return nil
}

// Load reads an OCI image-layout tarball from r (as Save writes it, or any
// OCI layout of nos images) and tags its images in the store by their
// org.opencontainers.image.ref.name annotations. Every blob is checked
// against the digest it is named by, and every image must be a complete
// nos image; anything wrong refuses the whole archive with an error
// wrapping ErrBadArchive (or store.ErrDigestMismatch), before the store is
// changed. It returns the images it tagged.
func Load(ctx context.Context, st *store.Store, r io.Reader) ([]store.Image, error) {
	a, err := readArchive(ctx, st, r)
	defer a.discard()
	if err != nil {
		return nil, err
	}
	return a.load(ctx)
}

// archive is a tarball read into pending blobs.
type archive struct {
	st      *store.Store
	layout  []byte
	index   []byte
	pending map[digest.Digest]*store.Pending
}

func (a *archive) discard() {
	for _, p := range a.pending {
		p.Discard()
	}
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadArchive, fmt.Sprintf(format, args...))
}

func readArchive(ctx context.Context, st *store.Store, r io.Reader) (*archive, error) {
	a := &archive{st: st, pending: map[digest.Digest]*store.Pending{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a, bad("not a tar archive, or a damaged one: %v", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		switch {
		case hdr.Typeflag == tar.TypeDir:
			continue
		case name == ocispec.ImageLayoutFile || name == ocispec.ImageIndexFile || strings.HasPrefix(name, "blobs/"):
			if hdr.Typeflag != tar.TypeReg {
				return a, bad("%s is not a regular file", name)
			}
		default:
			continue // docker's manifest.json and the like
		}
		switch {
		case name == ocispec.ImageLayoutFile:
			if a.layout, err = readSmall(tr, name, 4096); err != nil {
				return a, err
			}
		case name == ocispec.ImageIndexFile:
			if a.index, err = readSmall(tr, name, maxIndexSize); err != nil {
				return a, err
			}
		default:
			hex, ok := strings.CutPrefix(name, "blobs/sha256/")
			d := digest.NewDigestFromEncoded(digest.SHA256, hex)
			if !ok || d.Validate() != nil {
				return a, bad("%s is not a blob named by a sha256 digest", name)
			}
			if a.pending[d] != nil {
				return a, bad("blob %s appears twice", d)
			}
			p, err := st.Ingest(ctx, tr)
			if err != nil {
				return a, bad("reading %s: %v", name, err)
			}
			a.pending[d] = p
			if err := p.Check(d, hdr.Size); err != nil {
				return a, fmt.Errorf("%w: the archive was modified or damaged: %w", ErrBadArchive, err)
			}
		}
	}
	if a.layout == nil {
		return a, bad("no oci-layout file: not an OCI image layout")
	}
	var l ocispec.ImageLayout
	if err := json.Unmarshal(a.layout, &l); err != nil || l.Version != ocispec.ImageLayoutVersion {
		return a, bad("oci-layout: want imageLayoutVersion %q", ocispec.ImageLayoutVersion)
	}
	if a.index == nil {
		return a, bad("no index.json")
	}
	return a, nil
}

func readSmall(r io.Reader, name string, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, bad("reading %s: %v", name, err)
	}
	if int64(len(b)) > max {
		return nil, bad("%s is larger than %d bytes", name, max)
	}
	return b, nil
}

// toTag is an image of the archive to tag.
type toTag struct {
	name, tag string
	manifest  ocispec.Descriptor
	created   time.Time
}

// load checks every named image of the archive and then commits and tags
// them all.
func (a *archive) load(ctx context.Context) ([]store.Image, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(a.index, &idx); err != nil {
		return nil, bad("parsing index.json: %v", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, bad("index.json: schemaVersion %d, want 2", idx.SchemaVersion)
	}
	var tags []toTag
	need := map[digest.Digest]bool{}
	seen := map[string]bool{}
	for i, e := range idx.Manifests {
		ref, ok := e.Annotations[image.AnnotationRefName]
		if !ok {
			continue // an untagged manifest: nothing to call it
		}
		name, tag, err := store.ParseReference(ref)
		if err != nil {
			return nil, bad("index.json: manifests[%d]: %v", i, err)
		}
		if seen[name+":"+tag] {
			return nil, bad("index.json: %s:%s appears twice", name, tag)
		}
		seen[name+":"+tag] = true
		if e.MediaType != ocispec.MediaTypeImageManifest {
			return nil, fmt.Errorf("%s in the archive: %w (media type %q): %s", ref, ErrNotNosImage, e.MediaType, hint("FILE"))
		}
		if err := checkDescriptor(e, maxManifestSize); err != nil {
			return nil, bad("index.json: %s: %v", ref, err)
		}
		raw, err := a.blob(e.Digest, e.Size, maxManifestSize)
		if err != nil {
			return nil, err
		}
		man, err := parseManifest(ref+" in the archive", "FILE", raw)
		if err != nil {
			return nil, err
		}
		cb, err := a.blob(man.Config.Digest, man.Config.Size, maxConfigSize)
		if err != nil {
			return nil, err
		}
		if _, err := parseConfig(ref+" in the archive", cb); err != nil {
			return nil, err
		}
		for _, l := range man.Layers {
			if err := a.have(l.Digest, l.Size); err != nil {
				return nil, err
			}
			need[l.Digest] = true
		}
		need[e.Digest], need[man.Config.Digest] = true, true
		created := createdOf(man)
		if t, err := time.Parse(time.RFC3339, e.Annotations[image.AnnotationCreated]); err == nil {
			created = t
		}
		tags = append(tags, toTag{name: name, tag: tag, created: created, manifest: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest, ArtifactType: man.ArtifactType, Digest: e.Digest, Size: e.Size,
		}})
	}
	if len(tags) == 0 {
		return nil, bad("index.json names no image (no %s annotation)", image.AnnotationRefName)
	}
	unlock, err := a.st.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	for d := range need {
		if p := a.pending[d]; p != nil {
			if err := p.Commit(); err != nil {
				return nil, err
			}
		}
	}
	var out []store.Image
	for _, t := range tags {
		if err := a.st.TagLocked(t.name, t.tag, t.manifest, t.created); err != nil {
			return nil, err
		}
		out = append(out, store.Image{Name: t.name, Tag: t.tag, Manifest: t.manifest, Created: t.created})
	}
	return out, nil
}

// have checks that blob d of the given size is in the archive or intact
// in the store.
func (a *archive) have(d digest.Digest, size int64) error {
	if p := a.pending[d]; p != nil {
		if p.Size != size {
			return bad("blob %s: %d bytes, the manifest says %d", d, p.Size, size)
		}
		return nil
	}
	if a.st.VerifyBlob(d, size) == nil {
		return nil
	}
	return bad("blob %s is missing", d)
}

// blob returns the content of blob d, from the archive or the store.
func (a *archive) blob(d digest.Digest, size, max int64) ([]byte, error) {
	if err := a.have(d, size); err != nil {
		return nil, err
	}
	if p := a.pending[d]; p != nil {
		return p.ReadAll(max)
	}
	if size > max {
		return nil, bad("blob %s: %d bytes, more than the %d allowed", d, size, max)
	}
	return a.st.ReadBlob(d)
}
