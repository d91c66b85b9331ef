package oci

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// appImage is a small two-layer image with a run configuration.
func appImage(t testing.TB, marker string) v1.Image {
	return mkImage(t, func(c *v1.ConfigFile) {
		c.Config.Entrypoint = []string{"/bin/app", "--serve"}
		c.Config.Cmd = []string{"--port", "80"}
		c.Config.Env = []string{"PATH=/bin", "MARKER=" + marker}
		c.Config.WorkingDir = "/srv"
		c.Config.User = "1000:1000"
		c.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}, "53/udp": {}, "80/tcp": {}, "9/tcp": {}, "80/udp": {}}
	},
		layerOf(t, "gzip", dir("bin"), te{name: "bin/app", body: "app-v1", mode: 0o755}, dir("srv"), file("srv/old", "o")),
		layerOf(t, "zstd", file("bin/app", "app-"+marker), whiteout("srv", "old"), file("srv/marker", marker)),
	)
}

func openOK(t testing.TB, ref string, opts ...Option) *Image {
	t.Helper()
	im, err := Open(context.Background(), ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

// extractOK extracts im and checks it is appImage(marker).
func extractOK(t testing.TB, im *Image, marker string) *Tree {
	t.Helper()
	dst := t.TempDir()
	tree, err := im.Extract(context.Background(), dst, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(dst, "bin/app")); got != "app-"+marker {
		t.Fatalf("bin/app = %q", got)
	}
	if got := mustRead(t, filepath.Join(dst, "srv/marker")); got != marker {
		t.Fatalf("srv/marker = %q", got)
	}
	mustNotExist(t, filepath.Join(dst, "srv/old"))
	return tree
}

func TestLayoutDirAndConfig(t *testing.T) {
	dir := t.TempDir()
	img := appImage(t, "one")
	writeLayout(t, dir, []v1.Image{img})
	im := openOK(t, dir)
	cfg, err := im.Config()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Entrypoint:   []string{"/bin/app", "--serve"},
		Cmd:          []string{"--port", "80"},
		Env:          []string{"PATH=/bin", "MARKER=one"},
		WorkingDir:   "/srv",
		User:         "1000:1000",
		ExposedPorts: []string{"9/tcp", "53/udp", "80/tcp", "80/udp", "8080/tcp"},
		Architecture: "amd64",
		OS:           "linux",
		Digest:       digestOf(t, img).String(),
	}
	if !slices.Equal(cfg.Entrypoint, want.Entrypoint) || !slices.Equal(cfg.Cmd, want.Cmd) || !slices.Equal(cfg.Env, want.Env) ||
		!slices.Equal(cfg.ExposedPorts, want.ExposedPorts) || cfg.WorkingDir != want.WorkingDir || cfg.User != want.User ||
		cfg.Architecture != want.Architecture || cfg.OS != want.OS || cfg.Digest != want.Digest {
		t.Fatalf("config\n got %+v\nwant %+v", cfg, want)
	}
	tree := extractOK(t, im, "one")
	if e, ok := tree.Lookup("bin/app"); !ok || e.Mode != 0o644 || e.Size != 7 {
		t.Fatalf("bin/app entry %+v", e)
	}
	// The destination must be empty.
	dst := t.TempDir()
	os.WriteFile(filepath.Join(dst, "x"), nil, 0o644)
	_, err = im.Extract(context.Background(), dst, Limits{})
	wantErr(t, err, "is not empty")
}

func TestLayoutWithSeveralImages(t *testing.T) {
	dir := t.TempDir()
	one, two := appImage(t, "one"), appImage(t, "two")
	writeLayout(t, dir, []v1.Image{one, two}, "example.com/app:v1", "v2")

	_, err := Open(context.Background(), dir)
	wantErr(t, err, "holds 2 images", "example.com/app:v1", "v2 (sha256:", ":NAME")

	extractOK(t, openOK(t, dir+":v2"), "two")
	extractOK(t, openOK(t, dir+":v1"), "one")
	extractOK(t, openOK(t, dir+":example.com/app:v1"), "one")
	extractOK(t, openOK(t, dir+"@"+digestOf(t, two).String()), "two")

	_, err = Open(context.Background(), dir+":v3")
	wantErr(t, err, "does not resolve", `no image in the layout is named "v3"`)
	_, err = Open(context.Background(), dir+"@sha256:"+strings.Repeat("0", 64))
	wantErr(t, err, "does not resolve", "the layout has no image sha256:000")
}

func platformIndex(t testing.TB, imgs map[string]v1.Image) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for k := range imgs {
			if !yield(k) {
				return
			}
		}
	}) {
		parts := strings.Split(p, "/")
		plat := &v1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) > 2 {
			plat.Variant = parts[2]
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: imgs[p], Descriptor: v1.Descriptor{Platform: plat}})
	}
	return idx
}

func armImage(t testing.TB, arch, variant string) v1.Image {
	return mkImage(t, func(c *v1.ConfigFile) { c.Architecture, c.Variant = arch, variant },
		layerOf(t, "gzip", file("arch", arch)))
}

func TestMultiPlatformIndexPicksAmd64(t *testing.T) {
	amd := appImage(t, "amd")
	idx := platformIndex(t, map[string]v1.Image{
		"linux/arm64":   armImage(t, "arm64", ""),
		"linux/amd64":   amd,
		"linux/arm/v7":  armImage(t, "arm", "v7"),
		"windows/amd64": armImage(t, "amd64", ""),
	})
	// As a nested index in index.json (docker buildx, skopeo).
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	im := openOK(t, dir)
	cfg, _ := im.Config()
	if cfg.Digest != digestOf(t, amd).String() {
		t.Fatalf("picked %s, want the amd64 image %s", cfg.Digest, digestOf(t, amd))
	}
	extractOK(t, im, "amd")

	// As index.json itself.
	dir2 := t.TempDir()
	if _, err := layout.Write(dir2, idx); err != nil {
		t.Fatal(err)
	}
	extractOK(t, openOK(t, dir2), "amd")
}

func TestOtherArchitecturesRefused(t *testing.T) {
	dir := t.TempDir()
	writeLayout(t, dir, []v1.Image{armImage(t, "arm64", "")})
	_, err := Open(context.Background(), dir)
	wantErr(t, err, "image is linux/arm64; nos runs linux/amd64 images")

	dir2 := t.TempDir()
	p, _ := layout.Write(dir2, empty.Index)
	p.AppendIndex(platformIndex(t, map[string]v1.Image{
		"linux/arm64":  armImage(t, "arm64", ""),
		"linux/arm/v7": armImage(t, "arm", "v7"),
	}))
	_, err = Open(context.Background(), dir2)
	wantErr(t, err, "image is only available for linux/arm/v7, linux/arm64; nos runs linux/amd64 images")

	// The configuration is checked too, not only the index's word.
	dir3 := t.TempDir()
	p3, _ := layout.Write(dir3, empty.Index)
	p3.AppendIndex(platformIndex(t, map[string]v1.Image{"linux/amd64": armImage(t, "arm64", "")}))
	_, err = Open(context.Background(), dir3)
	wantErr(t, err, "image is linux/arm64")
}

func TestDockerSaveTarball(t *testing.T) {
	dir := t.TempDir()
	// What docker save writes: uncompressed layers.
	one, two := appImage(t, "one"), appImage(t, "two")
	saved := filepath.Join(dir, "saved.tar")
	dockerSave(t, saved, []v1.Image{one}, [][]string{{"app:latest"}})
	im := openOK(t, saved)
	cfg, _ := im.Config()
	if cfg.Digest != mustConfigName(t, one).String() || cfg.User != "1000:1000" {
		t.Fatalf("config %+v", cfg)
	}
	extractOK(t, im, "one")

	multi := filepath.Join(dir, "multi.tar")
	dockerSave(t, multi, []v1.Image{one, two}, [][]string{{"app:one"}, {"example.com/app:two", "app:second"}})
	_, err := Open(context.Background(), multi)
	wantErr(t, err, "holds 2 images", "app:one", "example.com/app:two")
	extractOK(t, openOK(t, multi+":app:one"), "one")
	extractOK(t, openOK(t, multi+":example.com/app:two"), "two")
	extractOK(t, openOK(t, multi+":second"), "two")
	_, err = Open(context.Background(), multi+":nope")
	wantErr(t, err, "does not resolve", `no image in`, `tagged "nope"`)

	// go-containerregistry's writer (compressed layers).
	gcr := filepath.Join(dir, "gcr.tar")
	tag, _ := name.NewTag("example.com/app:gcr")
	if err := tarball.WriteToFile(gcr, tag, two); err != nil {
		t.Fatal(err)
	}
	extractOK(t, openOK(t, gcr), "two")

	// A corrupted layer in a docker save archive fails its diff_id.
	bad := filepath.Join(dir, "bad.tar")
	dockerSave(t, bad, []v1.Image{one}, [][]string{{"app:latest"}})
	b, _ := os.ReadFile(bad)
	i := strings.Index(string(b), "app-one")
	b[i] = 'X'
	os.WriteFile(bad, b, 0o644)
	_, err = openOK(t, bad).Extract(context.Background(), t.TempDir(), Limits{})
	wantErr(t, err, "layer 2: the uncompressed content is sha256:", "diff_id")
}

// go-containerregistry reads a docker save archive's JSON files whole:
// oversized ones are refused first.
func TestDockerSaveOversizedConfig(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.tar")
	big := strings.Repeat(" ", 17<<20)
	os.WriteFile(huge, mkTar(t, file("manifest.json", `[{"Config":"c.json","RepoTags":["a:b"],"Layers":[]}]`),
		file("c.json", big)), 0o644)
	_, err := Open(context.Background(), huge)
	wantErr(t, err, "c.json is too large")

	// go-containerregistry's reader takes the first of two same-named
	// entries: so does the check.
	twice := filepath.Join(dir, "twice.tar")
	os.WriteFile(twice, mkTar(t, file("manifest.json", `[{"Config":"c.json","RepoTags":["a:b"],"Layers":[]}]`),
		file("c.json", big), file("./c.json", "{}")), 0o644)
	_, err = Open(context.Background(), twice)
	wantErr(t, err, "c.json is too large")

	linked := filepath.Join(dir, "linked.tar")
	os.WriteFile(linked, mkTar(t, file("manifest.json", `[{"Config":"c.json","RepoTags":["a:b"],"Layers":[]}]`),
		symlink("c.json", "/etc/passwd")), 0o644)
	_, err = Open(context.Background(), linked)
	wantErr(t, err, "c.json is not a regular file in the archive")
}

func mustConfigName(t testing.TB, img v1.Image) v1.Hash {
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestOCIArchive(t *testing.T) {
	dir := t.TempDir()
	lay := filepath.Join(dir, "layout")
	one, two := appImage(t, "one"), appImage(t, "two")
	writeLayout(t, lay, []v1.Image{one, two}, "one", "two")
	archive := filepath.Join(dir, "image.tar")
	tarDir(t, lay, archive)

	tmp := t.TempDir()
	im := openOK(t, archive+":two", WithTempDir(tmp))
	extractOK(t, im, "two")
	if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
		t.Fatalf("the archive is unpacked in the temp dir: %v", ents)
	}
	im.Close()
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("Close leaves %v", ents)
	}
	extractOK(t, openOK(t, archive+"@"+digestOf(t, one).String()), "one")
	_, err := Open(context.Background(), archive, WithTempDir(tmp))
	wantErr(t, err, "holds 2 images")
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("a failed Open leaves %v", ents)
	}

	// An OCI archive with a symlink is refused (the layout reader would
	// follow it), and nothing leaks.
	hostile := filepath.Join(dir, "hostile.tar")
	os.WriteFile(hostile, mkTar(t, file("oci-layout", `{"imageLayoutVersion":"1.0.0"}`), file("index.json", "{}"),
		symlink("blobs", "/etc")), 0o644)
	_, err = Open(context.Background(), hostile, WithTempDir(tmp))
	wantErr(t, err, `entry "blobs" is not a regular file or a directory`)
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("a failed Open leaves %v", ents)
	}
}

func TestCorruptedLayer(t *testing.T) {
	img := appImage(t, "one")
	ls, _ := img.Layers()
	blobDigest, _ := ls[0].Digest()

	for _, mode := range []string{"flip", "truncate", "append"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			writeLayout(t, dir, []v1.Image{img})
			blob := filepath.Join(dir, "blobs/sha256", blobDigest.Hex)
			b, err := os.ReadFile(blob)
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case "flip":
				b[len(b)/2] ^= 0xff
			case "truncate":
				b = b[:len(b)-10]
			case "append":
				b = append(b, "trailing"...)
			}
			os.WriteFile(blob, b, 0o644)
			_, err = openOK(t, dir).Extract(context.Background(), t.TempDir(), Limits{})
			wantErr(t, err, "layer 1: digest mismatch")
		})
	}

	// The blob is intact but the configuration's diff_id is not.
	dir := t.TempDir()
	bad := mkImage(t, func(c *v1.ConfigFile) { c.RootFS.DiffIDs[0] = sha([]byte("something else")) },
		layerOf(t, "gzip", file("a", "a")))
	writeLayout(t, dir, []v1.Image{bad})
	_, err := openOK(t, dir).Extract(context.Background(), t.TempDir(), Limits{})
	wantErr(t, err, "layer 1: the uncompressed content is", "diff_id says "+sha([]byte("something else")).String())

	// A tampered manifest no longer matches index.json.
	dir = t.TempDir()
	writeLayout(t, dir, []v1.Image{img})
	mblob := filepath.Join(dir, "blobs/sha256", digestOf(t, img).Hex)
	mb, _ := os.ReadFile(mblob)
	os.WriteFile(mblob, append(mb, ' '), 0o644)
	_, err = Open(context.Background(), dir)
	wantErr(t, err, "does not match its content")
}

func TestCompressions(t *testing.T) {
	for _, comp := range []string{"gzip", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			dir := t.TempDir()
			writeLayout(t, dir, []v1.Image{mkImage(t, nil, layerOf(t, comp, file("hello", comp)))})
			dst := t.TempDir()
			if _, err := openOK(t, dir).Extract(context.Background(), dst, Limits{}); err != nil {
				t.Fatal(err)
			}
			if mustRead(t, filepath.Join(dst, "hello")) != comp {
				t.Fatal("content")
			}
		})
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	l := layerOf(t, "gzip", file("a", "a"))
	l.mt = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	dir := t.TempDir()
	writeLayout(t, dir, []v1.Image{mkImage(t, nil, l)})
	_, err := openOK(t, dir).Extract(context.Background(), t.TempDir(), Limits{})
	wantErr(t, err, `layer 1 has an unsupported media type "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"`)
}

func TestDecompressionBomb(t *testing.T) {
	// 32 MiB of zeros in one file: ~32 KiB of gzip. Also a bomb of many
	// files, which no single header gives away.
	zeros := strings.Repeat("\x00", 32<<20)
	var many []te
	for i := range 32 {
		many = append(many, file("f/"+strings.Repeat("n", i+1), zeros[:1<<20]))
	}
	for name, l := range map[string]*testLayer{
		"one file":   layerOf(t, "gzip", file("bomb", zeros)),
		"many files": layerOf(t, "gzip", many...),
		"zstd":       layerOf(t, "zstd", file("bomb", zeros)),
	} {
		t.Run(name, func(t *testing.T) {
			if len(l.blob) > 128<<10 {
				t.Fatalf("the bomb is %d bytes", len(l.blob))
			}
			dir := t.TempDir()
			writeLayout(t, dir, []v1.Image{mkImage(t, nil, layerOf(t, "gzip", file("ok", "ok")), l)})
			start := time.Now()
			_, err := openOK(t, dir).Extract(context.Background(), t.TempDir(), Limits{MaxBytes: 4 << 20})
			wantErr(t, err, "layer 2 exceeds the size limit (4 MiB uncompressed in total); the image may be a decompression bomb")
			t.Logf("failed after %v", time.Since(start))
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestLayerCountLimit(t *testing.T) {
	var ls []v1.Layer
	for i := range 5 {
		ls = append(ls, layerOf(t, "gzip", file("f", strings.Repeat("x", i))))
	}
	dir := t.TempDir()
	writeLayout(t, dir, []v1.Image{mkImage(t, nil, ls...)})
	_, err := openOK(t, dir).Extract(context.Background(), t.TempDir(), Limits{MaxLayers: 4})
	wantErr(t, err, "has 5 layers; the limit is 4")
}

func TestReferencesThatDoNotResolve(t *testing.T) {
	dir := t.TempDir()
	for ref, want := range map[string]string{
		filepath.Join(dir, "missing"):     "does not resolve: no such file or directory",
		"./nope.tar":                      "does not resolve: no such file or directory",
		"Not A Valid/Reference!!":         "does not resolve: it is not an OCI layout directory, an archive file, or a valid image reference",
		dir:                               "is a directory but not an OCI image layout",
		filepath.Join(dir, "garbage.bin"): "is not a tar archive",
		filepath.Join(dir, "plain.tar"):   "is neither docker save output",
		filepath.Join(dir, "gz.tar.gz"):   "is compressed; decompress it first",
	} {
		os.WriteFile(filepath.Join(dir, "garbage.bin"), []byte(strings.Repeat("garbage", 200)), 0o644)
		os.WriteFile(filepath.Join(dir, "plain.tar"), mkTar(t, file("hello", "x")), 0o644)
		os.WriteFile(filepath.Join(dir, "gz.tar.gz"), gzipBytes(t, mkTar(t, file("hello", "x"))), 0o644)
		_, err := Open(context.Background(), ref)
		wantErr(t, err, want)
	}
}

func TestContextCancelled(t *testing.T) {
	dir := t.TempDir()
	writeLayout(t, dir, []v1.Image{appImage(t, "one")})
	im := openOK(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := im.Extract(ctx, t.TempDir(), Limits{})
	wantErr(t, err, "context canceled")
}
