package assemble

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nosproject/nos/image"
)

// ociLayout writes a one-layer OCI layout holding a program and a FIFO,
// with the entrypoint and user given.
func ociLayout(t *testing.T, entrypoint []string, user string) string {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/app", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2})
	tw.Write([]byte("#!"))
	tw.WriteHeader(&tar.Header{Name: "run/pipe", Typeflag: tar.TypeFifo, Mode: 0o644})
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b.Bytes())), nil }, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer}); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{Entrypoint: entrypoint, User: user, Env: []string{"PATH=/bin"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOCISourceStage: a container image's files go in the tree, its
// config becomes the image's, and what the extractor skipped comes back as
// a warning.
func TestOCISourceStage(t *testing.T) {
	ref := ociLayout(t, []string{"/bin/app"}, "")
	init := writeFile(t, t.TempDir(), "nos-init", minimalELF(false))
	sg, err := newStaging(init, t.TempDir(), OnRootDisk, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sg.close()
	var cfg image.Config
	if err := sg.stageSource(t.Context(), &ociSource{ref: ref}, &cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sg.tree.dir, "bin/app")); err != nil {
		t.Error(err)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/bin/app"}) || !slices.Contains(cfg.Env, "PATH=/bin") || cfg.RootFS != "erofs" {
		t.Errorf("config %+v", cfg)
	}
	if len(sg.warnings) != 1 || !strings.Contains(sg.warnings[0], `FIFO "run/pipe" skipped`) || !strings.HasPrefix(sg.warnings[0], ref+": ") {
		t.Errorf("warnings %q, want the skipped FIFO", sg.warnings)
	}
}
