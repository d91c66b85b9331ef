package store

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nosproject/nos/image"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestOpenCreatesLayout(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "store")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Root() != root {
		t.Errorf("Root = %q, want %q", s.Root(), root)
	}
	b, err := os.ReadFile(filepath.Join(root, "oci-layout"))
	if err != nil || string(b) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q, %v", b, err)
	}
	idx := readIndexFile(t, s)
	want := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	want.SchemaVersion = 2
	if diff := cmp.Diff(want, idx); diff != "" {
		t.Errorf("index.json (-want +got):\n%s", diff)
	}
	for _, dir := range []string{"blobs/sha256", "tmp"} {
		if fi, err := os.Stat(filepath.Join(root, dir)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "lock")); err != nil {
		t.Error(err)
	}
	if names := dirNames(t, s.path(tmpDir)); len(names) != 0 {
		t.Errorf("tmp/ holds %v", names)
	}
}

func TestOpenRelativeRoot(t *testing.T) {
	t.Chdir(t.TempDir())
	s, err := Open("store")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(s.Root()) {
		t.Errorf("Root = %q, want an absolute path", s.Root())
	}
}

func TestOpenKeepsImages(t *testing.T) {
	s := newStore(t)
	mustImage(t, s, "app:v1", "x")
	s2, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := s2.Images(t.Context())
	if err != nil || len(imgs) != 1 {
		t.Errorf("Images after reopening = %v, %v; want app:v1", imgs, err)
	}
}

func TestOpenRejects(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
	}{
		{"layout version", map[string]string{"oci-layout": `{"imageLayoutVersion":"2.0.0"}`}},
		{"layout garbage", map[string]string{"oci-layout": `{`}},
		{"index missing", map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`}},
		{"index garbage", map[string]string{"index.json": `{"schemaVersion":2,`}},
		{"index schema", map[string]string{"index.json": `{"schemaVersion":1,"manifests":[]}`}},
		{"index media type", map[string]string{"index.json": `{"schemaVersion":2,"mediaType":"x","manifests":[]}`}},
		{"bad digest", map[string]string{"index.json": indexWith(`"digest":"sha256:1234","size":1`)}},
		{"digest without algorithm", map[string]string{"index.json": indexWith(`"digest":"abc","size":1`)}},
		{"negative size", map[string]string{"index.json": indexWith(fmt.Sprintf(`"digest":%q,"size":-1`, zeroDigest))}},
		{"bad ref", map[string]string{"index.json": indexWith(fmt.Sprintf(`"digest":%q,"size":1,"annotations":{%q:"Bad"}`, zeroDigest, image.AnnotationRefName))}},
		{"ref without tag", map[string]string{"index.json": indexWith(fmt.Sprintf(`"digest":%q,"size":1,"annotations":{%q:"app"}`, zeroDigest, image.AnnotationRefName))}},
		{"bad created", map[string]string{"index.json": indexWith(fmt.Sprintf(`"digest":%q,"size":1,"annotations":{%q:"yesterday"}`, zeroDigest, image.AnnotationCreated))}},
		{"duplicate ref", map[string]string{"index.json": `{"schemaVersion":2,"manifests":[` +
			fmt.Sprintf(`{"digest":%q,"size":1,"annotations":{%q:"a:b"}},`, zeroDigest, image.AnnotationRefName) +
			fmt.Sprintf(`{"digest":%q,"size":1,"annotations":{%q:"a:b"}}]}`, zeroDigest, image.AnnotationRefName)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.files {
				if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Open(root); err == nil {
				t.Error("Open succeeded")
			}
		})
	}
	t.Run("root is a file", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(root, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(root); err == nil {
			t.Error("Open succeeded")
		}
	})
}

const zeroDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

func indexWith(entry string) string {
	return `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",` + entry + `}]}`
}

func TestOpenConcurrently(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() { _, errs[i] = Open(root) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestKilledWriter checks that leftovers of a process killed while
// writing a blob or index.json do not disturb the store and that GC
// removes them.
func TestKilledWriter(t *testing.T) {
	s := newStore(t)
	img := mustImage(t, s, "app:v1", "x")
	stale := []byte("half of a kernel")
	if err := os.WriteFile(filepath.Join(s.Root(), "tmp", "ingest-123"), stale, 0o600); err != nil {
		t.Fatal(err)
	}
	partial := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manif`)
	if err := os.WriteFile(filepath.Join(s.Root(), "index.json.tmp"), partial, 0o644); err != nil {
		t.Fatal(err)
	}

	s, err := Open(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Images(t.Context())
	if err != nil || len(imgs) != 1 || imgs[0].Manifest.Digest != img.manifest.Digest {
		t.Fatalf("Images = %v, %v; want app:v1", imgs, err)
	}
	removed, freed, err := s.GC(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 || freed != int64(len(stale)+len(partial)) {
		t.Errorf("GC = %v, %d; want no blobs and %d bytes", removed, freed, len(stale)+len(partial))
	}
	if names := dirNames(t, s.path(tmpDir)); len(names) != 0 {
		t.Errorf("tmp/ holds %v after GC", names)
	}
	if _, err := os.Stat(s.path(indexTemp)); !os.IsNotExist(err) {
		t.Errorf("index.json.tmp after GC: %v", err)
	}
	// A later tag works where the killed one left off.
	mustImage(t, s, "app:v2", "y")
	if imgs, err := s.Images(t.Context()); err != nil || len(imgs) != 2 {
		t.Errorf("Images = %v, %v; want two", imgs, err)
	}
}

// TestKillDuringTag kills a process that re-tags an image in a loop and
// checks that it leaves a usable store behind.
func TestKillDuringTag(t *testing.T) {
	s := newStore(t)
	for i := range 3 {
		cmd := helper(t, "tagloop", s.Root(), "loop")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitForImage(t, s, "loop")
		time.Sleep(time.Duration(10+30*i) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		s2, err := Open(s.Root())
		if err != nil {
			t.Fatal(err)
		}
		imgs, err := s2.Images(t.Context())
		if err != nil || len(imgs) != 1 {
			t.Fatalf("Images = %v, %v; want loop:latest", imgs, err)
		}
		if _, _, err := s2.GC(t.Context()); err != nil {
			t.Fatal(err)
		}
		if imgs2, err := s2.Images(t.Context()); err != nil || !slices.EqualFunc(imgs, imgs2, func(a, b Image) bool { return a.Manifest.Digest == b.Manifest.Digest }) {
			t.Errorf("Images after GC = %v, %v; want %v", imgs2, err, imgs)
		}
	}
}

// waitForImage waits until ref is in the store.
func waitForImage(t *testing.T, s *Store, ref string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(10 * time.Millisecond) {
		if _, err := s.Resolve(t.Context(), ref); err == nil {
			return
		}
	}
	t.Fatalf("%s did not appear", ref)
}

func FuzzIndex(f *testing.F) {
	tagged := fmt.Sprintf(`"digest":%q,"size":10,"annotations":{%q:"a:b",%q:"2024-01-01T00:00:00Z"}`,
		zeroDigest, image.AnnotationRefName, image.AnnotationCreated)
	for _, seed := range []string{
		`{"schemaVersion":2,"manifests":[]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":null}`,
		indexWith(tagged),
		indexWith(fmt.Sprintf(`"digest":%q,"size":10`, zeroDigest)),
		indexWith(`"digest":"abc","size":1`),
		indexWith(`"digest":"sha256:../../../etc/passwd","size":1`),
		indexWith(`"digest":"sha512:00","size":1`),
		`{"schemaVersion":2,"manifests":[{}]}`,
		`{}`, `null`, `[]`, ``, `{"schemaVersion":2}`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "index.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(root)
		if err != nil {
			return
		}
		ctx := t.Context()
		_, before, err := s.readIndex()
		if err != nil {
			t.Fatalf("Open accepted an index readIndex rejects: %v", err)
		}
		s.Images(ctx)
		s.Resolve(ctx, "a:b")
		s.Resolve(ctx, "0000")
		s.GC(ctx)
		// The store stays writable and keeps the entries it accepted.
		img := mustImage(t, s, "", "fuzz")
		if err := s.Tag(ctx, "fuzz", "latest", img.manifest, testTime); err != nil {
			t.Fatalf("Tag: %v", err)
		}
		_, after, err := s.readIndex()
		if err != nil {
			t.Fatalf("index after Tag: %v", err)
		}
		before = slices.DeleteFunc(before, func(img Image) bool { return img.Name == "fuzz" && img.Tag == "latest" })
		if len(after) != len(before)+1 {
			t.Fatalf("index tags %d images after Tag, want %d", len(after), len(before)+1)
		}
	})
}

// TestFailedIndexWrite checks that a write of index.json that fails
// midway leaves the previous index in place.
func TestFailedIndexWrite(t *testing.T) {
	s := newStore(t)
	mustImage(t, s, "app:v1", "a")
	before, err := os.ReadFile(s.path(indexFile))
	if err != nil {
		t.Fatal(err)
	}
	// A directory in the way of the temporary file makes the write fail.
	if err := os.Mkdir(s.path(indexTemp), 0o755); err != nil {
		t.Fatal(err)
	}
	img := mustImage(t, s, "", "b")
	if err := s.Tag(t.Context(), "app", "v2", img.manifest, testTime); err == nil {
		t.Fatal("Tag succeeded")
	}
	after, err := os.ReadFile(s.path(indexFile))
	if err != nil || string(after) != string(before) {
		t.Errorf("index.json changed by a failed write:\n%s\nwant:\n%s", after, before)
	}
	if err := os.Remove(s.path(indexTemp)); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(t.Context(), "app", "v2", img.manifest, testTime); err != nil {
		t.Fatal(err)
	}
}
