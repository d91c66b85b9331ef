package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nosproject/nos/store"
)

func saved(t testing.TB, st *store.Store, refs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Save(context.Background(), st, &buf, refs); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	a := fakeImage(t, src, "web", "1", "a")
	b := fakeImage(t, src, "127.0.0.1:5000/other", "v2", "b")
	archive := saved(t, src, "web:1", "127.0.0.1:5000/other:v2")
	if again := saved(t, src, "127.0.0.1:5000/other:v2", "web:1"); !bytes.Equal(archive, again) {
		t.Error("saving the same images twice gave different archives")
	}

	dst := newStore(t)
	got, err := Load(ctx, dst, bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("loaded %d images, want 2", len(got))
	}
	for _, want := range []store.Image{a, b} {
		im, err := dst.Resolve(ctx, want.Name+":"+want.Tag)
		if err != nil {
			t.Fatal(err)
		}
		if im.Manifest.Digest != want.Manifest.Digest || !im.Created.Equal(want.Created) || im.Size != want.Size {
			t.Errorf("loaded %s:%s = %s %v %d, want %s %v %d", want.Name, want.Tag, im.Manifest.Digest, im.Created, im.Size, want.Manifest.Digest, want.Created, want.Size)
		}
	}
	// Loading again changes nothing; saving from the new store gives the
	// same bytes.
	before := snapshot(t, dst)
	if _, err := Load(ctx, dst, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snapshot(t, dst)); diff != "" {
		t.Errorf("a second load changed the store:\n%s", diff)
	}
	if !bytes.Equal(saved(t, dst, "web:1", "127.0.0.1:5000/other:v2"), archive) {
		t.Error("the loaded images save differently")
	}
}

// TestLoadRefusesTampering flips a byte at many offsets of an archive:
// each load fails (or, where the byte is padding, succeeds with exactly
// the saved images) and a failed load leaves the store as it was.
func TestLoadRefusesTampering(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	fakeImage(t, src, "web", "1", "a")
	archive := saved(t, src, "web:1")
	dst := newStore(t)
	before := snapshot(t, dst)
	refused := 0
	for off := 0; off < len(archive); off += 97 {
		bad := bytes.Clone(archive)
		bad[off] ^= 0x20
		_, err := Load(ctx, dst, bytes.NewReader(bad))
		if err == nil {
			// Only bytes nobody reads may change: tar padding, unused
			// header fields.
			if diff := cmp.Diff(before, snapshot(t, dst)); diff != "" && !sameImages(t, dst, src) {
				t.Fatalf("offset %d: a modified archive loaded other images:\n%s", off, diff)
			}
			dst = newStore(t)
			before = snapshot(t, dst)
			continue
		}
		refused++
		if !errors.Is(err, ErrBadArchive) && !errors.Is(err, store.ErrDigestMismatch) && !errors.Is(err, ErrNotNosImage) {
			t.Logf("offset %d: %v", off, err)
		}
		if diff := cmp.Diff(before, snapshot(t, dst)); diff != "" {
			t.Fatalf("offset %d: a refused load changed the store (%v):\n%s", off, err, diff)
		}
	}
	if refused == 0 {
		t.Fatal("no modified archive was refused")
	}
	// A blob's content changed: a digest mismatch, named as such.
	bad := bytes.Clone(archive)
	i := bytes.Index(bad, []byte("kernel a"))
	bad[i] = 'K'
	if _, err := Load(ctx, dst, bytes.NewReader(bad)); !errors.Is(err, store.ErrDigestMismatch) || !errors.Is(err, ErrBadArchive) {
		t.Errorf("a modified blob: got %v, want a digest mismatch", err)
	}
	// Truncated: refused.
	if _, err := Load(ctx, dst, bytes.NewReader(archive[:len(archive)/2])); err == nil {
		t.Error("a truncated archive loaded")
	}
	if diff := cmp.Diff(before, snapshot(t, dst)); diff != "" {
		t.Fatalf("refused loads changed the store:\n%s", diff)
	}
}

func sameImages(t testing.TB, a, b *store.Store) bool {
	t.Helper()
	ia, err1 := a.Images(context.Background())
	ib, err2 := b.Images(context.Background())
	if err1 != nil || err2 != nil || len(ia) != len(ib) {
		return false
	}
	for i := range ia {
		if ia[i].Name != ib[i].Name || ia[i].Tag != ib[i].Tag || ia[i].Manifest.Digest != ib[i].Manifest.Digest {
			return false
		}
	}
	return true
}

func TestLoadRefusesIncompleteAndForeign(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	img := fakeImage(t, src, "web", "1", "a")
	archive := saved(t, src, "web:1")
	man, err := src.Manifest(img.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	// The same archive without the kernel blob.
	var without bytes.Buffer
	tw := tar.NewWriter(&without)
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "blobs/sha256/"+man.Layers[0].Digest.Encoded() {
			continue
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.Close()
	dst := newStore(t)
	before := snapshot(t, dst)
	if _, err := Load(ctx, dst, &without); !errors.Is(err, ErrBadArchive) {
		t.Errorf("an archive missing a blob: got %v, want ErrBadArchive", err)
	}
	if _, err := Load(ctx, dst, bytes.NewReader([]byte("not a tar at all"))); !errors.Is(err, ErrBadArchive) {
		t.Errorf("garbage: got %v, want ErrBadArchive", err)
	}
	if diff := cmp.Diff(before, snapshot(t, dst)); diff != "" {
		t.Fatalf("refused loads changed the store:\n%s", diff)
	}
}
