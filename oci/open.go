// Package oci turns an OCI or Docker image reference into the image's run
// configuration and its flattened root filesystem, for nos build --from-oci.
//
// A reference is, tried in this order:
//
//  1. a directory holding an OCI image layout (an oci-layout file), with
//     an optional ":TAG" (matched against the org.opencontainers.image.ref.name
//     annotation) or "@sha256:..." suffix to choose among several images;
//  2. a regular file: "docker save" output (optionally "FILE:TAG") or an OCI
//     image layout archived as a tar (optionally "FILE:TAG" or
//     "FILE@sha256:...");
//  3. a registry reference such as "alpine:3.20" or
//     "localhost:5000/app@sha256:...". Credentials come from the Docker
//     configuration (~/.docker/config.json, $DOCKER_CONFIG). Only loopback
//     registries are spoken to over plain HTTP.
//
// Only linux/amd64 images are accepted; from a multi-platform index the
// linux/amd64 image is chosen. All content is treated as hostile: digests
// are verified, layers are applied with os.Root so that nothing is written
// outside the destination, and sizes are bounded by Limits.
package oci

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	wantOS   = "linux"
	wantArch = "amd64"

	refNameAnnotation = "org.opencontainers.image.ref.name"

	maxConfigSize   = 16 << 20
	maxManifestSize = 16 << 20
	maxIndexDepth   = 4
	maxUntyped      = 8 // index children without a platform we are willing to open
)

type sourceKind int

const (
	srcLayout sourceKind = iota
	srcOCIArchive
	srcDockerArchive
	srcRegistry
)

// Image is a resolved linux/amd64 image.
type Image struct {
	ref     string
	kind    sourceKind
	img     v1.Image
	cfg     *v1.ConfigFile
	digest  v1.Hash // manifest digest, or config digest for docker save output
	tempDir string
}

// Config is the part of the image configuration nos needs to run it.
type Config struct {
	Entrypoint, Cmd, Env []string
	WorkingDir, User     string
	// ExposedPorts are "PORT/PROTO" strings such as "80/tcp", sorted by port
	// number, then protocol.
	ExposedPorts []string
	Architecture string
	OS           string
	// Digest is the image manifest's digest ("sha256:..."). "docker save"
	// output has no manifest: for it, Digest is the configuration's digest
	// (Docker's image ID).
	Digest string
}

// Option configures Open.
type Option func(*options)

type options struct {
	keychain authn.Keychain
	tempDir  string
}

// WithKeychain sets where registry credentials come from (by default
// authn.DefaultKeychain, that is the Docker configuration).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithTempDir sets where an OCI layout archive is unpacked (by default
// os.TempDir()). The unpacked copy is removed by Close.
func WithTempDir(dir string) Option { return func(o *options) { o.tempDir = dir } }

// selector chooses one image among several in a layout or archive.
type selector struct {
	tag    string
	digest v1.Hash
}

// Open resolves ref (see the package documentation) to a linux/amd64 image.
// The context is also used by registry requests that Extract makes later.
// Close the image when done with it.
func Open(ctx context.Context, ref string, opts ...Option) (*Image, error) {
	o := options{keychain: authn.DefaultKeychain}
	for _, opt := range opts {
		opt(&o)
	}
	if ref == "" {
		return nil, errors.New("empty image reference")
	}
	if strings.ContainsAny(ref, "\x00\n") {
		return nil, fmt.Errorf("image reference %q contains a control character", ref)
	}

	// Local forms: the whole ref, then PATH@sha256:..., then PATH:TAG
	// (paths may themselves contain ':').
	if im, ok, err := openLocal(ctx, ref, ref, selector{}, o); ok || err != nil {
		return im, err
	}
	if i := strings.LastIndex(ref, "@"); i > 0 {
		if h, err := v1.NewHash(ref[i+1:]); err == nil {
			if im, ok, err := openLocal(ctx, ref, ref[:i], selector{digest: h}, o); ok || err != nil {
				return im, err
			}
		}
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] == ':' && i > 0 && i < len(ref)-1 {
			if im, ok, err := openLocal(ctx, ref, ref[:i], selector{tag: ref[i+1:]}, o); ok || err != nil {
				return im, err
			}
		}
	}
	if fi, err := os.Stat(ref); err == nil {
		if fi.IsDir() {
			return nil, fmt.Errorf("%s is a directory but not an OCI image layout (it has no oci-layout file)", ref)
		}
		return nil, fmt.Errorf("%s is neither a directory nor a regular file", ref)
	}
	if looksLikePath(ref) {
		return nil, fmt.Errorf("%s does not resolve: no such file or directory", ref)
	}
	return openRegistry(ctx, ref, o)
}

func looksLikePath(ref string) bool {
	return strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") ||
		strings.HasPrefix(ref, "~") || ref == "." || ref == ".." ||
		strings.HasSuffix(ref, ".tar") || strings.HasSuffix(ref, ".tar.gz") || strings.HasSuffix(ref, ".tgz")
}

// openLocal opens path as a layout directory or an archive if it is one;
// ok reports whether it was.
func openLocal(ctx context.Context, ref, path string, sel selector, o options) (im *Image, ok bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false, nil
	}
	switch {
	case fi.IsDir():
		if !isLayoutDir(path) {
			return nil, false, nil
		}
		im, err := openLayout(ref, path, sel, srcLayout)
		return im, true, err
	case fi.Mode().IsRegular():
		im, err := openArchive(ctx, ref, path, sel, o)
		return im, true, err
	}
	return nil, false, nil
}

func isLayoutDir(dir string) bool {
	fi, err := os.Stat(dir + "/oci-layout")
	return err == nil && fi.Mode().IsRegular()
}

// Config returns the image's run configuration.
func (im *Image) Config() (Config, error) {
	c := im.cfg.Config
	cfg := Config{
		Entrypoint:   slices.Clone(c.Entrypoint),
		Cmd:          slices.Clone(c.Cmd),
		Env:          slices.Clone(c.Env),
		WorkingDir:   c.WorkingDir,
		User:         c.User,
		Architecture: im.cfg.Architecture,
		OS:           im.cfg.OS,
		Digest:       im.digest.String(),
	}
	for p := range c.ExposedPorts {
		cfg.ExposedPorts = append(cfg.ExposedPorts, p)
	}
	slices.SortFunc(cfg.ExposedPorts, comparePorts)
	return cfg, nil
}

func comparePorts(a, b string) int {
	pa, protoA, _ := strings.Cut(a, "/")
	pb, protoB, _ := strings.Cut(b, "/")
	na, errA := strconv.Atoi(pa)
	nb, errB := strconv.Atoi(pb)
	if errA == nil && errB == nil && na != nb {
		return cmp.Compare(na, nb)
	}
	if errA == nil && errB == nil {
		return cmp.Compare(protoA, protoB)
	}
	return cmp.Compare(a, b)
}

// FromRegistry reports whether the image was pulled from a registry
// rather than read from a local layout or archive.
func (im *Image) FromRegistry() bool { return im.kind == srcRegistry }

// Close releases what Open made (an unpacked OCI layout archive).
func (im *Image) Close() error {
	if im.tempDir == "" {
		return nil
	}
	err := os.RemoveAll(im.tempDir)
	im.tempDir = ""
	return err
}

// --- OCI layouts -------------------------------------------------------

func openLayout(ref, dir string, sel selector, kind sourceKind) (*Image, error) {
	if fi, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return nil, fmt.Errorf("%s: the OCI layout has no index.json", ref)
	} else if fi.Size() > maxManifestSize {
		return nil, fmt.Errorf("%s: the OCI layout's index.json is too large (%d bytes)", ref, fi.Size())
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the OCI layout: %w", ref, err)
	}
	r := resolver{ref: ref, dir: dir}
	img, dig, err := r.selectFromLayout(idx, sel)
	if err != nil {
		return nil, err
	}
	return finishOpen(r, kind, img, dig)
}

// resolver resolves descriptors for one reference. dir is set for a local
// layout: go-containerregistry reads its blobs whole, so their sizes are
// checked first.
type resolver struct {
	ref string
	dir string
}

// checkBlob refuses a local blob that is not the size its descriptor says
// or is larger than max.
func (r resolver) checkBlob(what string, d v1.Descriptor, max int64) error {
	if d.Size > max {
		return fmt.Errorf("%s: %s %s is too large (%d bytes)", r.ref, what, d.Digest, d.Size)
	}
	if r.dir == "" {
		return nil
	}
	fi, err := os.Stat(filepath.Join(r.dir, "blobs", d.Digest.Algorithm, d.Digest.Hex))
	if err != nil {
		return fmt.Errorf("%s: %s %s is missing from the layout", r.ref, what, d.Digest)
	}
	if !fi.Mode().IsRegular() || fi.Size() != d.Size {
		return fmt.Errorf("%s: %s %s does not match its content (%d bytes, the descriptor says %d)", r.ref, what, d.Digest, fi.Size(), d.Size)
	}
	return nil
}

func describe(d v1.Descriptor) string {
	s := d.Digest.String()
	if n := d.Annotations[refNameAnnotation]; n != "" {
		s = n + " (" + s + ")"
	}
	return s
}

func (r resolver) selectFromLayout(idx v1.ImageIndex, sel selector) (v1.Image, v1.Hash, error) {
	ref := r.ref
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("%s: reading index.json: %w", ref, err)
	}
	var cands []v1.Descriptor
	for _, d := range im.Manifests {
		if d.MediaType.IsImage() || d.MediaType.IsIndex() {
			cands = append(cands, d)
		}
	}
	switch {
	case sel.digest != (v1.Hash{}):
		for _, d := range cands {
			if d.Digest == sel.digest {
				return r.resolveDesc(idx, d, 0)
			}
		}
		// A platform image inside one of the indexes.
		for _, d := range cands {
			if !d.MediaType.IsIndex() || r.checkBlob("index", d, maxManifestSize) != nil {
				continue
			}
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				continue
			}
			cm, err := child.IndexManifest()
			if err != nil {
				continue
			}
			for _, c := range cm.Manifests {
				if c.Digest == sel.digest {
					return r.resolveDesc(child, c, 1)
				}
			}
		}
		return nil, v1.Hash{}, fmt.Errorf("%s does not resolve: the layout has no image %s", ref, sel.digest)
	case sel.tag != "":
		var matches []v1.Descriptor
		for _, d := range cands {
			if tagMatches(d.Annotations[refNameAnnotation], sel.tag) {
				matches = append(matches, d)
			}
		}
		switch len(matches) {
		case 1:
			return r.resolveDesc(idx, matches[0], 0)
		case 0:
			return nil, v1.Hash{}, fmt.Errorf("%s does not resolve: no image in the layout is named %q (it has: %s)", ref, sel.tag, listDescs(cands))
		}
		return nil, v1.Hash{}, fmt.Errorf("%s is ambiguous: several images in the layout are named %q (%s); choose one with @sha256:...", ref, sel.tag, listDescs(matches))
	}
	switch {
	case len(cands) == 0:
		return nil, v1.Hash{}, fmt.Errorf("%s: the OCI layout holds no image", ref)
	case len(cands) == 1:
		return r.resolveDesc(idx, cands[0], 0)
	}
	allPlatforms := true
	for _, d := range cands {
		if d.Platform == nil {
			allPlatforms = false
		}
	}
	if allPlatforms {
		// index.json itself is a multi-platform list.
		return r.pickPlatform(idx, 0)
	}
	return nil, v1.Hash{}, fmt.Errorf("%s holds %d images; choose one with %s:NAME or %s@sha256:... (it has: %s)",
		ref, len(cands), ref, ref, listDescs(cands))
}

func listDescs(ds []v1.Descriptor) string {
	var s []string
	for _, d := range ds {
		s = append(s, describe(d))
	}
	return strings.Join(s, ", ")
}

// tagMatches reports whether an image named candidate (a ref.name annotation
// or a docker save RepoTag) is the one the user asked for as want.
func tagMatches(candidate, want string) bool {
	if candidate == "" {
		return false
	}
	if candidate == want {
		return true
	}
	if c, err := name.NewTag(candidate); err == nil {
		if w, err := name.NewTag(want); err == nil && strings.Contains(want, ":") && c.Name() == w.Name() {
			return true
		}
		if !strings.ContainsAny(want, ":/") && c.TagStr() == want && strings.Contains(candidate, ":") {
			return true
		}
	}
	return false
}

// --- platform selection (layouts and registries) ----------------------

func platformString(p *v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func wrongPlatform(platforms []string) error {
	slices.Sort(platforms)
	platforms = slices.Compact(platforms)
	if len(platforms) == 1 {
		return fmt.Errorf("image is %s; nos runs %s/%s images", platforms[0], wantOS, wantArch)
	}
	return fmt.Errorf("image is only available for %s; nos runs %s/%s images", strings.Join(platforms, ", "), wantOS, wantArch)
}

// resolveDesc turns an index entry into an image (choosing the platform if
// the entry is itself an index) and checks the manifest's digest.
func (r resolver) resolveDesc(idx v1.ImageIndex, d v1.Descriptor, depth int) (v1.Image, v1.Hash, error) {
	ref := r.ref
	if err := r.checkBlob("manifest", d, maxManifestSize); err != nil {
		return nil, v1.Hash{}, err
	}
	switch {
	case d.MediaType.IsIndex():
		if depth >= maxIndexDepth {
			return nil, v1.Hash{}, fmt.Errorf("%s: image indexes are nested too deeply", ref)
		}
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("%s: reading index %s: %w", ref, d.Digest, err)
		}
		raw, err := child.RawManifest()
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("%s: reading index %s: %w", ref, d.Digest, err)
		}
		if err := checkDigest(raw, d.Digest); err != nil {
			return nil, v1.Hash{}, fmt.Errorf("%s: index %w", ref, err)
		}
		return r.pickPlatform(child, depth+1)
	case d.MediaType.IsImage():
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("%s: reading manifest %s: %w", ref, d.Digest, err)
		}
		raw, err := img.RawManifest()
		if err != nil {
			return nil, v1.Hash{}, fmt.Errorf("%s: reading manifest %s: %w", ref, d.Digest, err)
		}
		if err := checkDigest(raw, d.Digest); err != nil {
			return nil, v1.Hash{}, fmt.Errorf("%s: manifest %w", ref, err)
		}
		return img, d.Digest, nil
	}
	return nil, v1.Hash{}, fmt.Errorf("%s: unsupported manifest media type %q", ref, d.MediaType)
}

// pickPlatform chooses the linux/amd64 image of an index.
func (r resolver) pickPlatform(idx v1.ImageIndex, depth int) (v1.Image, v1.Hash, error) {
	ref := r.ref
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("%s: reading the image index: %w", ref, err)
	}
	var others []string
	var untyped []v1.Descriptor
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		p := d.Platform
		switch {
		case p == nil:
			untyped = append(untyped, d)
		case p.OS == wantOS && p.Architecture == wantArch:
			return r.resolveDesc(idx, d, depth)
		case p.OS == "unknown" || p.Architecture == "unknown":
			// Attestations and such.
		default:
			others = append(others, platformString(p))
		}
	}
	// Entries without a platform: look at their configuration.
	for i, d := range untyped {
		if i >= maxUntyped {
			break
		}
		img, dig, err := r.resolveDesc(idx, d, depth)
		if err != nil {
			return nil, v1.Hash{}, err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			continue
		}
		if platformOK(cfg) {
			return img, dig, nil
		}
		others = append(others, cfg.OS+"/"+cfg.Architecture)
	}
	if len(others) == 0 {
		return nil, v1.Hash{}, fmt.Errorf("%s: the image index lists no %s/%s image", ref, wantOS, wantArch)
	}
	return nil, v1.Hash{}, fmt.Errorf("%s: %w", ref, wrongPlatform(others))
}

func platformOK(cfg *v1.ConfigFile) bool {
	return (cfg.OS == "" || cfg.OS == wantOS) && (cfg.Architecture == "" || cfg.Architecture == wantArch)
}

func checkDigest(raw []byte, want v1.Hash) error {
	if want.Algorithm != "sha256" {
		return fmt.Errorf("%s: unsupported digest algorithm", want)
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != want.Hex {
		return fmt.Errorf("%s does not match its content (sha256:%s)", want, got)
	}
	return nil
}

// finishOpen reads and checks the configuration of the chosen image.
func finishOpen(r resolver, kind sourceKind, img v1.Image, dig v1.Hash) (*Image, error) {
	ref := r.ref
	var raw []byte
	if kind == srcDockerArchive {
		var err error
		raw, err = img.RawConfigFile()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the image configuration: %w", ref, err)
		}
	} else {
		m, err := img.Manifest()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the image manifest: %w", ref, err)
		}
		if err := r.checkBlob("image configuration", m.Config, maxConfigSize); err != nil {
			return nil, err
		}
		switch m.Config.MediaType {
		case types.OCIConfigJSON, types.DockerConfigJSON, "":
		default:
			return nil, fmt.Errorf("%s is not a container image (its config has media type %q)", ref, m.Config.MediaType)
		}
		raw, err = img.RawConfigFile()
		if err != nil {
			return nil, classify(ref, fmt.Errorf("reading the image configuration: %w", err))
		}
		if err := checkDigest(raw, m.Config.Digest); err != nil {
			return nil, fmt.Errorf("%s: image configuration %w", ref, err)
		}
	}
	if len(raw) > maxConfigSize {
		return nil, fmt.Errorf("%s: the image configuration is too large (%d bytes)", ref, len(raw))
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: parsing the image configuration: %w", ref, err)
	}
	if !platformOK(cfg) {
		return nil, fmt.Errorf("%s: %w", ref, wrongPlatform([]string{cfg.OS + "/" + cfg.Architecture}))
	}
	if kind == srcDockerArchive {
		sum := sha256.Sum256(raw)
		dig = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	}
	return &Image{ref: ref, kind: kind, img: img, cfg: cfg, digest: dig}, nil
}

// --- archives ----------------------------------------------------------

func openArchive(ctx context.Context, ref, file string, sel selector, o options) (*Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	defer f.Close()
	var magic [6]byte
	n, _ := io.ReadFull(f, magic[:])
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b,
		n >= 4 && bytes.Equal(magic[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}),
		n >= 6 && bytes.Equal(magic[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, fmt.Errorf("%s is compressed; decompress it first (nos reads docker save output or an OCI layout as a plain tar)", file)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	var hasManifest, hasLayout, hasIndex bool
	// Sizes of the regular files, for the small JSON files that
	// go-containerregistry reads whole.
	sizes := map[string]int64{}
	tr := tar.NewReader(f)
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			if i == 0 {
				return nil, fmt.Errorf("%s is not a tar archive (nos reads docker save output or an OCI layout archived as a tar)", file)
			}
			return nil, fmt.Errorf("%s: reading the archive: %w", ref, err)
		}
		if i >= DefaultLimits().MaxEntries {
			return nil, fmt.Errorf("%s: too many entries in the archive", ref)
		}
		clean := path.Clean(hdr.Name)
		if _, seen := sizes[clean]; !seen { // the reader uses the first one
			sizes[clean] = -1
			if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeGNUSparse {
				sizes[clean] = hdr.Size
			}
		}
		if clean == "manifest.json" {
			hasManifest = true // as go-containerregistry's reader finds it
		}
		switch strings.TrimLeft(clean, "/") {
		case "oci-layout":
			hasLayout = true
		case "index.json":
			hasIndex = true
		}
	}
	oci := hasLayout && hasIndex
	switch {
	case oci && (!hasManifest || sel.digest != (v1.Hash{})):
		return openOCIArchive(ctx, ref, file, sel, o)
	case hasManifest:
		if sel.digest != (v1.Hash{}) {
			return nil, fmt.Errorf("%s: docker save output cannot be chosen from by digest; use %s:TAG", ref, file)
		}
		return openDockerArchive(ref, file, sel, sizes)
	}
	return nil, fmt.Errorf("%s is neither docker save output (no manifest.json) nor an OCI image layout archive (no oci-layout and index.json)", file)
}

func openOCIArchive(ctx context.Context, ref, file string, sel selector, o options) (*Image, error) {
	tmp, err := os.MkdirTemp(o.tempDir, "nos-oci-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	x := newExtractor(root, DefaultLimits(), true)
	if err := x.applyLayer(ctx, 0, "archive "+file, f); err != nil {
		return nil, err
	}
	if _, err := x.finish(tmp); err != nil {
		return nil, err
	}
	im, err := openLayout(ref, tmp, sel, srcOCIArchive)
	if err != nil {
		return nil, err
	}
	im.tempDir = tmp
	ok = true
	return im, nil
}

func openDockerArchive(ref, file string, sel selector, sizes map[string]int64) (*Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(file) }
	small := func(name string) error {
		size, ok := sizes[path.Clean(name)]
		switch {
		case !ok || size < 0:
			return fmt.Errorf("%s: %s is not a regular file in the archive", ref, name)
		case size > maxConfigSize:
			return fmt.Errorf("%s: %s is too large (%d bytes)", ref, name, size)
		}
		return nil
	}
	if err := small("manifest.json"); err != nil {
		return nil, err
	}
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("%s: reading manifest.json: %w", ref, err)
	}
	list := func() string {
		var s []string
		for i, d := range m {
			if len(d.RepoTags) > 0 {
				s = append(s, strings.Join(d.RepoTags, " "))
			} else {
				s = append(s, fmt.Sprintf("#%d (untagged, %s)", i+1, d.Config))
			}
		}
		return strings.Join(s, ", ")
	}
	var tag *name.Tag
	chosen := 0
	switch {
	case len(m) == 0:
		return nil, fmt.Errorf("%s: manifest.json lists no image", ref)
	case sel.tag != "":
		var found []string
		for i, d := range m {
			for _, t := range d.RepoTags {
				if tagMatches(t, sel.tag) {
					found = append(found, t)
					chosen = i
				}
			}
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("%s does not resolve: no image in %s is tagged %q (it has: %s)", ref, file, sel.tag, list())
		case 1:
		default:
			return nil, fmt.Errorf("%s is ambiguous: %s match %q", ref, strings.Join(found, ", "), sel.tag)
		}
		if len(m) > 1 {
			t, err := name.NewTag(found[0])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ref, err)
			}
			tag = &t
		}
	case len(m) > 1:
		return nil, fmt.Errorf("%s holds %d images; choose one with %s:TAG (it has: %s)", ref, len(m), file, list())
	}
	if err := small(m[chosen].Config); err != nil {
		return nil, err
	}
	img, err := tarball.Image(opener, tag)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return finishOpen(resolver{ref: ref}, srcDockerArchive, img, v1.Hash{})
}

// --- registries --------------------------------------------------------

func openRegistry(ctx context.Context, ref string, o options) (*Image, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%s does not resolve: it is not an OCI layout directory, an archive file, or a valid image reference (%v)", ref, err)
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.keychain),
		remote.WithTransport(plainHTTPGuard{remote.DefaultTransport}),
		remote.WithPlatform(v1.Platform{OS: wantOS, Architecture: wantArch}),
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, classify(ref, err)
	}
	if desc.Size > maxManifestSize {
		return nil, fmt.Errorf("%s: the manifest is too large", ref)
	}
	raw := desc.Manifest
	if d, ok := r.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		if err := checkDigest(raw, h); err != nil {
			return nil, fmt.Errorf("%s: manifest %w", ref, err)
		}
	}
	sum := sha256.Sum256(raw)
	dig := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	var img v1.Image
	mt := desc.MediaType
	if !mt.IsIndex() && !mt.IsImage() {
		mt = sniffMediaType(raw, mt)
	}
	switch {
	case mt == types.DockerManifestSchema1 || mt == types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("%s is a Docker schema 1 image, which nos does not read (push it again with a current Docker)", ref)
	case mt.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, classify(ref, err)
		}
		img, dig, err = resolver{ref: ref}.pickPlatform(idx, 0)
		if err != nil {
			return nil, classify(ref, err)
		}
	case mt.IsImage():
		img, err = desc.Image()
		if err != nil {
			return nil, classify(ref, err)
		}
	default:
		return nil, fmt.Errorf("%s: unsupported manifest media type %q", ref, desc.MediaType)
	}
	im, err := finishOpen(resolver{ref: ref}, srcRegistry, img, dig)
	if err != nil {
		return nil, classify(ref, err)
	}
	return im, nil
}

// parseRef parses a registry reference. Loopback registries are spoken to
// over plain HTTP: go-containerregistry already does so for most spellings
// (localhost:PORT, 127.0.0.1, [::1]) but not for a bare "localhost".
func parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	host := r.Context().RegistryStr()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if isLoopbackHost(strings.Trim(host, "[]")) && r.Context().Scheme() != "http" {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// sniffMediaType reads the type of a manifest a registry served with a
// wrong Content-Type from the manifest itself.
func sniffMediaType(raw []byte, served types.MediaType) types.MediaType {
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     types.MediaType   `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
		Layers        []json.RawMessage `json:"layers"`
		FSLayers      []json.RawMessage `json:"fsLayers"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return served
	}
	switch {
	case probe.MediaType.IsIndex() || probe.MediaType.IsImage():
		return probe.MediaType
	case probe.SchemaVersion == 1 || probe.FSLayers != nil:
		return types.DockerManifestSchema1
	case probe.Manifests != nil:
		return types.OCIImageIndex
	case probe.Layers != nil:
		return types.OCIManifestSchema1
	}
	return served
}

// namedError is an error whose message already names the reference.
type namedError struct {
	msg string
	err error
}

func (e *namedError) Error() string { return e.msg }
func (e *namedError) Unwrap() error { return e.err }

// classify turns an error met while talking to a registry (or reading an
// image) into one line that names ref and the cause.
func classify(ref string, err error) error {
	var ne *namedError
	if errors.As(err, &ne) {
		return err
	}
	named := func(format string, args ...any) error {
		return &namedError{msg: fmt.Sprintf(format, args...), err: err}
	}
	var te *transport.Error
	if errors.As(err, &te) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range te.Errors {
			codes[d.Code] = true
		}
		reg := registryOf(ref)
		login := "docker login " + reg
		if reg == name.DefaultRegistry || reg == "docker.io" {
			login = "docker login"
		}
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden ||
			codes[transport.UnauthorizedErrorCode] || codes[transport.DeniedErrorCode]:
			return named("registry %s refused access to %s (HTTP %d): check your credentials (run `%s`, or add them to ~/.docker/config.json); the repository may also not exist",
				reg, ref, te.StatusCode, login)
		case te.StatusCode == http.StatusNotFound || codes[transport.ManifestUnknownErrorCode] || codes[transport.NameUnknownErrorCode]:
			return named("%s does not resolve: the registry has no such image (manifest unknown)", ref)
		case codes[transport.BlobUnknownErrorCode]:
			return named("%s: the registry lacks a blob the image needs (blob unknown)", ref)
		case te.StatusCode == http.StatusTooManyRequests || codes[transport.TooManyRequestsErrorCode]:
			return named("registry %s is rate-limiting requests for %s (HTTP 429); log in (`%s`) or retry later", reg, ref, login)
		}
		return named("registry %s: %s: %v", reg, ref, err)
	}
	var ue *url.Error
	var nerr net.Error
	if errors.As(err, &ue) || errors.As(err, &nerr) {
		return named("cannot reach the registry for %s: %v", ref, err)
	}
	if strings.HasPrefix(err.Error(), ref+" ") || strings.HasPrefix(err.Error(), ref+":") {
		return named("%s", err.Error())
	}
	return named("%s: %v", ref, err)
}

func registryOf(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "?"
	}
	return r.Context().RegistryStr()
}

// plainHTTPGuard refuses plain HTTP except to loopback hosts: a registry
// on a private network must speak TLS too.
type plainHTTPGuard struct{ next http.RoundTripper }

func (g plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopbackHost(req.URL.Hostname()) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: only loopback registries may be used without TLS", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
