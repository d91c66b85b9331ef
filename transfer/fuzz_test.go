package transfer

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Load as an archive: it must never
// panic, and an archive it refuses must leave the store as it was.
func FuzzLoad(f *testing.F) {
	src := newStore(f)
	fakeImage(f, src, "web", "1", "a")
	archive := saved(f, src, "web:1")
	f.Add(archive)
	f.Add(archive[:1024])
	f.Add([]byte{})
	f.Add([]byte("oci-layout"))
	st := newStore(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		before := snapshot(t, st)
		if _, err := Load(ctx, st, bytes.NewReader(b)); err != nil {
			if after := snapshot(t, st); len(after) != len(before) {
				t.Fatalf("a refused archive changed the store: %v", err)
			}
		}
	})
}

// FuzzLoadIndex puts arbitrary bytes in the index.json of an archive
// whose blobs are good, and in its first manifest blob's place.
func FuzzLoadIndex(f *testing.F) {
	src := newStore(f)
	fakeImage(f, src, "web", "1", "a")
	archive := saved(f, src, "web:1")
	var index []byte
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Name == "index.json" {
			index, _ = io.ReadAll(tr)
		}
	}
	f.Add(index)
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + zeros + `","size":-5,"annotations":{"org.opencontainers.image.ref.name":"a:b"}}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:../x","size":1,"annotations":{"org.opencontainers.image.ref.name":"a"}}]}`))
	f.Add([]byte(`null`))
	st := newStore(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, idx []byte) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tr := tar.NewReader(bytes.NewReader(archive))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			body, _ := io.ReadAll(tr)
			if h.Name == "index.json" {
				body = idx
				h.Size = int64(len(idx))
			}
			tw.WriteHeader(h)
			tw.Write(body)
		}
		tw.Close()
		_, _ = Load(ctx, st, &buf)
	})
}
