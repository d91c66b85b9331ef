package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtractLayer applies arbitrary bytes as a layer tar on top of a lower
// layer that offers targets (a symlink to a directory outside the root, a
// symlink to "..", files to link to or white out) and checks that nothing
// panics, nothing outside the root changes, and on success the tree
// matches the disk.
func FuzzExtractLayer(f *testing.F) {
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
	outside := filepath.Join(work, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		f.Fatal(err)
	}
	sentinel := filepath.Join(outside, "sentinel")
	if err := os.WriteFile(sentinel, []byte("keep"), 0o644); err != nil {
		f.Fatal(err)
	}
	lower := mkTar(f, dir("d"), file("d/f", "f"), file("d/g", "g"), symlink("out", outside), symlink("up", ".."),
		symlink("self", "."), te{name: "ro", typ: tar.TypeDir, mode: 0o555}, file("ro/x", "x"))

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

	f.Fuzz(func(t *testing.T, data []byte) {
		parent, err := os.MkdirTemp(work, "run-")
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
		x := newExtractor(root, Limits{MaxBytes: 1 << 20, MaxEntries: 200, MaxLayers: 2}, false)
		ctx := context.Background()
		if err := x.applyLayer(ctx, 1, "layer 1", bytes.NewReader(lower)); err != nil {
			t.Fatal(err)
		}
		applyErr := x.applyLayer(ctx, 2, "layer 2", bytes.NewReader(data))
		var tree *Tree
		if applyErr == nil {
			tree, applyErr = x.finish(dst)
		}

		// Nothing outside the root changed.
		if ents, err := os.ReadDir(parent); err != nil || len(ents) != 1 || ents[0].Name() != "root" {
			t.Fatalf("beside the root: %v %v", ents, err)
		}
		if ents, err := os.ReadDir(outside); err != nil || len(ents) != 1 {
			t.Fatalf("outside: %v %v", ents, err)
		}
		b, err := os.ReadFile(sentinel)
		if err != nil || string(b) != "keep" {
			t.Fatalf("the sentinel changed: %q %v", b, err)
		}
		sent, err := os.Stat(sentinel)
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
	})
}
