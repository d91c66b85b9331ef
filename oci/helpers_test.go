package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const mode0 = -1

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// te is one tar entry for a test layer.
type te struct {
	name string
	typ  byte // tar.TypeReg when zero
	body string
	mode int64 // 0644 (files) or 0755 (directories) when zero; mode0 for 0
	link string
	uid  int
	gid  int
	pax  map[string]string
	size int64 // declared size, when it must differ from len(body)
}

func file(name, body string) te          { return te{name: name, body: body} }
func dir(name string) te                 { return te{name: name, typ: tar.TypeDir} }
func symlink(name, target string) te     { return te{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) te    { return te{name: name, typ: tar.TypeLink, link: target} }
func whiteout(dirName, victim string) te { return file(joinTest(dirName, ".wh."+victim), "") }
func opaqueMarker(dirName string) te     { return file(joinTest(dirName, ".wh..wh..opq"), "") }
func joinTest(dirName, name string) string {
	if dirName == "" {
		return name
	}
	return dirName + "/" + name
}

// mkTar writes the entries as a tar stream, exactly as given.
func mkTar(t testing.TB, entries ...te) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:       e.name,
			Typeflag:   e.typ,
			Mode:       e.mode,
			Linkname:   e.link,
			Uid:        e.uid,
			Gid:        e.gid,
			ModTime:    testTime,
			PAXRecords: e.pax,
			Format:     tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		switch h.Mode {
		case 0:
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		case mode0:
			h.Mode = 0
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
			if e.size != 0 {
				h.Size = e.size
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil && e.size == 0 {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil && !strings.Contains(err.Error(), "missed writing") {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// testLayer is a layer whose blob and diff_id are exactly what the test
// says (go-containerregistry's own layers recompress or rehash).
type testLayer struct {
	blob   []byte
	tar    []byte
	diffID v1.Hash
	mt     types.MediaType
}

func (l *testLayer) Digest() (v1.Hash, error) { return sha(l.blob), nil }
func (l *testLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *testLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *testLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.tar)), nil
}
func (l *testLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *testLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

// layerOf makes a layer of the entries: compressed with gzip (the default),
// "zstd" or "none".
func layerOf(t testing.TB, comp string, entries ...te) *testLayer {
	t.Helper()
	return rawLayer(t, comp, mkTar(t, entries...))
}

func rawLayer(t testing.TB, comp string, tarBytes []byte) *testLayer {
	t.Helper()
	l := &testLayer{tar: tarBytes, diffID: sha(tarBytes)}
	switch comp {
	case "", "gzip":
		l.blob, l.mt = gzipBytes(t, tarBytes), types.OCILayer
	case "zstd":
		l.blob, l.mt = zstdBytes(t, tarBytes), types.OCILayerZStd
	case "none":
		l.blob, l.mt = tarBytes, types.OCIUncompressedLayer
	default:
		t.Fatalf("compression %q", comp)
	}
	return l
}

// mkImage builds a linux/amd64 OCI image of the layers; edit may change its
// configuration.
func mkImage(t testing.TB, edit func(*v1.ConfigFile), layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []mutate.Addendum
	for _, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: mustMT(t, l)})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: testTime}
	if edit != nil {
		edit(cf)
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustMT(t testing.TB, l v1.Layer) types.MediaType {
	mt, err := l.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

func digestOf(t testing.TB, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// writeLayout writes the images into a new OCI layout under dir; names, if
// given, become their org.opencontainers.image.ref.name annotations.
func writeLayout(t testing.TB, dir string, imgs []v1.Image, names ...string) layout.Path {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		var opts []layout.Option
		if i < len(names) {
			opts = append(opts, layout.WithAnnotations(map[string]string{refNameAnnotation: names[i]}))
		}
		if err := p.AppendImage(img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// tarDir archives dir (regular files and directories) into file.
func tarDir(t testing.TB, dir, file string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tw.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dockerSave writes what "docker save" writes for the images (uncompressed
// layers under <id>/layer.tar), with their tags.
func dockerSave(t testing.TB, file string, imgs []v1.Image, tags [][]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: testTime})
		tw.Write(b)
	}
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	for i, img := range imgs {
		raw, err := img.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfgName := sha(raw).Hex + ".json"
		add(cfgName, raw)
		e := entry{Config: cfgName, RepoTags: tags[i]}
		ls, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			name := sha(b).Hex + "/layer.tar"
			if !slices.Contains(e.Layers, name) {
				add(name, b)
			}
			e.Layers = append(e.Layers, name)
		}
		manifest = append(manifest, e)
	}
	mb, _ := json.Marshal(manifest)
	add("manifest.json", mb)
	tw.Close()
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sandbox is a destination with a sentinel directory beside it that no
// layer may touch.
type sandbox struct {
	parent, dst, outside string
}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	parent := t.TempDir()
	s := sandbox{parent: parent, dst: filepath.Join(parent, "root"), outside: filepath.Join(parent, "outside")}
	for _, d := range []string{s.dst, s.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.outside, "sentinel"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// check fails the test if anything outside dst changed.
func (s sandbox) check(t testing.TB) {
	t.Helper()
	if problem := s.problem(); problem != "" {
		t.Fatal(problem)
	}
}

func (s sandbox) problem() string {
	names := func(d string) []string {
		ents, err := os.ReadDir(d)
		if err != nil {
			return []string{"error: " + err.Error()}
		}
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		return n
	}
	if got := names(s.parent); !slices.Equal(got, []string{"outside", "root"}) {
		return "beside the root: " + strings.Join(got, ",")
	}
	if got := names(s.outside); !slices.Equal(got, []string{"sentinel"}) {
		return "in the outside directory: " + strings.Join(got, ",")
	}
	if b, err := os.ReadFile(filepath.Join(s.outside, "sentinel")); err != nil || string(b) != "keep" {
		return "the sentinel changed"
	}
	return ""
}

// applyTars applies raw layer tars (uncompressed) with the extractor.
func applyTars(t testing.TB, dst string, lim Limits, tars ...[]byte) (*Tree, error) {
	t.Helper()
	root, err := os.OpenRoot(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	x := newExtractor(root, lim, false)
	return applyWith(x, dst, tars...)
}

func applyWith(x *extractor, dst string, tars ...[]byte) (*Tree, error) {
	for i, b := range tars {
		where := "layer " + string(rune('1'+i))
		if err := x.applyLayer(context.Background(), i+1, where, bytes.NewReader(b)); err != nil {
			return nil, err
		}
	}
	return x.finish(dst)
}

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustNotExist(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("%s exists (err %v)", p, err)
	}
}

func wantErr(t testing.TB, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", subs)
	}
	t.Logf("error: %v", err)
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not contain %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error is not one line: %q", err)
	}
}
