package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/store"
)

// created is the fixed creation time of the test images.
var created = time.Date(2026, 11, 27, 13, 59, 19, 0, time.UTC)

// newStore opens a store in a fresh directory.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fakeImage writes a small nos image into st as ref: a made-up kernel
// and initramfs (content is what a store holds, not what boots) and a
// config, and returns its digest.
func fakeImage(t testing.TB, st *store.Store, name, tag, content string) store.Image {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel")
	initrd := filepath.Join(dir, "initrd")
	if err := os.WriteFile(kernel, []byte("kernel "+content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(initrd, []byte("initramfs "+content), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(image.Config{
		Entrypoint: []string{"/app/httpserver"}, Args: []string{"-addr", ":8080"}, ExposedPorts: []string{"8080/tcp"},
		MemoryMiB: 256, CPUs: 1, KernelCmdline: "console=ttyS0",
		Kernel: image.KernelInfo{Version: "6.1.0-test", Features: []string{"net"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := st.WriteImage(context.Background(), store.ImageParts{
		Config: cfg, Name: name, Tag: tag, Created: created,
		Layers: []store.LayerFile{{Path: kernel, MediaType: image.MediaTypeKernel}, {Path: initrd, MediaType: image.MediaTypeInitramfs}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// snapshot records every file of a store with its hash, but the lock.
func snapshot(t testing.TB, st *store.Store) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(st.Root(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(st.Root(), p)
		files[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
