package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzHarness applies fuzzed layers on top of a lower layer that offers
// targets (a symlink to a directory outside the root, a symlink to "..",
// files to link to or white out) and checks that nothing outside the root
// changes and, on success, that the tree matches the disk.
type fuzzHarness struct {
	work, outside, sentinel string
	lower                   []byte
}

func newFuzzHarness(f *testing.F) *fuzzHarness {
	// Directory operations on a tmpfs are much faster than on a disk.
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && fi.Mode().Perm()&0o002 != 0 {
		base = "/dev/shm"
	}
	work, err := os.MkdirTemp(base, "oci-fuzz-")
	if err != nil {
		work, err = os.MkdirTemp("", "oci-fuzz-")
	}
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(work) })
	h := &fuzzHarness{work: work, outside: filepath.Join(work, "outside")}
	h.sentinel = filepath.Join(h.outside, "sentinel")
	if err := os.Mkdir(h.outside, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(h.sentinel, []byte("keep"), 0o644); err != nil {
		f.Fatal(err)
	}
	h.lower = mkTar(f, dir("d"), file("d/f", "f"), file("d/g", "g"), symlink("out", h.outside), symlink("up", ".."),
		symlink("self", "."), te{name: "ro", typ: tar.TypeDir, mode: 0o555}, file("ro/x", "x"))
	return h
}

func (h *fuzzHarness) run(t *testing.T, layers ...[]byte) {
	parent, err := os.MkdirTemp(h.work, "run-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	dst := filepath.Join(parent, "root")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	x := newExtractor(root, Limits{MaxBytes: 1 << 20, MaxEntries: 200, MaxLayers: 4}, false)
	ctx := context.Background()
	if err := x.applyLayer(ctx, 1, "layer 1", bytes.NewReader(h.lower)); err != nil {
		t.Fatal(err)
	}
	var applyErr error
	for i, l := range layers {
		if applyErr = x.applyLayer(ctx, i+2, "layer", bytes.NewReader(l)); applyErr != nil {
			break
		}
	}
	var tree *Tree
	if applyErr == nil {
		tree, applyErr = x.finish(dst)
	}

	// Nothing outside the root changed.
	if ents, err := os.ReadDir(parent); err != nil || len(ents) != 1 || ents[0].Name() != "root" {
		t.Fatalf("beside the root: %v %v", ents, err)
	}
	if ents, err := os.ReadDir(h.outside); err != nil || len(ents) != 1 {
		t.Fatalf("outside: %v %v", ents, err)
	}
	b, err := os.ReadFile(h.sentinel)
	if err != nil || string(b) != "keep" {
		t.Fatalf("the sentinel changed: %q %v", b, err)
	}
	sent, err := os.Stat(h.sentinel)
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := os.Lstat(p); err == nil && os.SameFile(fi, sent) {
			t.Fatalf("%s is the sentinel", p)
		}
		return nil
	})
	if applyErr != nil {
		return
	}

	// The tree is the disk.
	for _, e := range tree.Entries {
		fi, err := os.Lstat(filepath.Join(dst, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatalf("%s is in the tree but not on disk: %v", e.Path, err)
		}
		if fi.Mode().Type() != e.Mode.Type() {
			t.Fatalf("%s: disk type %v, tree type %v", e.Path, fi.Mode().Type(), e.Mode.Type())
		}
		if e.Mode.IsRegular() && fi.Size() != e.Size {
			t.Fatalf("%s: disk size %d, tree size %d", e.Path, fi.Size(), e.Size)
		}
	}
	n := 0
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			n++
		}
		return nil
	})
	if n != len(tree.Entries) {
		t.Fatalf("%d files on disk, %d in the tree", n, len(tree.Entries))
	}
}

// FuzzExtractLayer feeds arbitrary bytes as a layer tar.
func FuzzExtractLayer(f *testing.F) {
	h := newFuzzHarness(f)
	outside, sentinel := h.outside, h.sentinel
	for _, seed := range [][]byte{
		nil,
		[]byte("not a tar"),
		mkTar(f, file("a", "a"), dir("b"), file("b/c", "c"), hardlink("b/h", "a"), symlink("b/s", "/etc")),
		mkTar(f, whiteout("d", "f"), opaqueMarker("ro"), file("ro/y", "y"), whiteout("", "up")),
		mkTar(f, file("out/pwned", "x"), file("up/pwned", "x"), file("../pwned", "x"), file("self/../../pwned", "x")),
		mkTar(f, hardlink("h", "../sentinel"), hardlink("h2", "out/sentinel"), hardlink("h3", sentinel)),
		mkTar(f, file("out/.wh.sentinel", ""), file("../.wh.outside", ""), file("out/.wh..wh..opq", "")),
		mkTar(f, te{name: "dev/null", typ: tar.TypeChar}, te{name: "p", typ: tar.TypeFifo}),
		mkTar(f, file("d", "file over dir"), dir("d/f"), symlink("d", outside), file("d/x", "x")),
		mkTar(f, te{name: "big", size: 4 << 20}),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) { h.run(t, data) })
}

// FuzzExtractEntries builds well-formed tars from a line-based description,
// so that the fuzzer explores names, types and orderings rather than tar
// checksums. Each line is TYPE NAME [> LINK]; TYPE is one of f (file), d
// (directory), s (symlink), h (hardlink), c (char device), p (FIFO); a line
// "---" starts the next layer.
func FuzzExtractEntries(f *testing.F) {
	h := newFuzzHarness(f)
	for _, seed := range []string{
		"f a\nd b\nf b/c\nh b/h > a\ns b/s > /etc",
		"f d/.wh.f\nf ro/.wh..wh..opq\nf ro/y\nf .wh.up\n---\nf d/.wh.g\nd d\nf d/n",
		"f out/pwned\nf up/pwned\nf ../pwned\nf self/../../pwned\nd up/x",
		"h h > ../sentinel\nh h2 > out/sentinel\nh h3 > " + h.sentinel,
		"f out/.wh.sentinel\nf ../.wh.outside\nf out/.wh..wh..opq",
		"s l > " + h.outside + "\nf l/x\ns m > l\nf m/y\ns n > up/outside\nf n/z",
		"f d\nd d/f\ns d > /\nf d/x\n---\nd d\nf d/.wh..wh..opq\nh d/k > ro/x",
		"c dev/null\np fifo\nd ./\nf /abs\nf a/b/../../c",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		var layers [][]byte
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		flush := func() {
			tw.Close()
			layers = append(layers, bytes.Clone(buf.Bytes()))
			buf.Reset()
			tw = tar.NewWriter(&buf)
		}
		for i, line := range strings.Split(spec, "\n") {
			if i > 64 || len(layers) > 3 {
				break
			}
			if line == "---" {
				flush()
				continue
			}
			if len(line) < 2 {
				continue
			}
			name, link, _ := strings.Cut(line[2:], " > ")
			hdr := &tar.Header{Name: name, Linkname: link, Mode: 0o755, Format: tar.FormatPAX}
			switch line[0] {
			case 'f':
				hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(name))
			case 'd':
				hdr.Typeflag = tar.TypeDir
			case 's':
				hdr.Typeflag = tar.TypeSymlink
			case 'h':
				hdr.Typeflag = tar.TypeLink
			case 'c':
				hdr.Typeflag = tar.TypeChar
			case 'p':
				hdr.Typeflag = tar.TypeFifo
			default:
				continue
			}
			if tw.WriteHeader(hdr) != nil {
				return // the writer refuses it: the reader would too
			}
			if hdr.Typeflag == tar.TypeReg {
				tw.Write([]byte(name))
			}
		}
		flush()
		h.run(t, layers...)
	})
}
