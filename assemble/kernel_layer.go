package assemble

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/store"
)

// kernelLayer is the layer of the kernel the image boots: the ELF vmlinux
// when there is one, since booting it through its PVH entry point skips
// the decompression and real-mode setup of a bzImage (BENCHMARKS.md, "Fast
// boot path"), gzip-compressed into tmp because most of an ELF vmlinux is
// alignment padding; else the boot image as it is. It returns the layer
// and the digest of the kernel itself, uncompressed, which the config
// records.
func kernelLayer(k *kernel.Kernel, tmp string) (store.LayerFile, string, error) {
	path := k.Vmlinux
	if path == "" && fsutil.IsELF(k.Path) {
		path = k.Path
	}
	if path == "" {
		d, err := fileDigest(k.Path)
		return store.LayerFile{Path: k.Path, MediaType: image.MediaTypeKernel}, d, err
	}
	gz := filepath.Join(tmp, "kernel.gz")
	d, err := gzipFile(path, gz)
	if err != nil {
		return store.LayerFile{}, "", err
	}
	return store.LayerFile{Path: gz, MediaType: image.MediaTypeKernelGzip}, d, nil
}

// efiKernelLayer is the layer of the kernel's UEFI boot image, for disk
// exports (image.MediaTypeKernelEFI): when the image boots the ELF
// vmlinux under nos and the boot image beside it is a PE file (a kernel
// built with the EFI stub: nos's cloud feature). nil otherwise: a kernel
// stored as its boot image needs no second copy.
func efiKernelLayer(k *kernel.Kernel) *store.LayerFile {
	if k.Vmlinux == "" || k.Path == k.Vmlinux || !fsutil.IsEFI(k.Path) {
		return nil
	}
	return &store.LayerFile{Path: k.Path, MediaType: image.MediaTypeKernelEFI}
}

// gzipFile compresses src into dst and returns the digest of src. No name
// and no time go in the gzip header: the same kernel always gives the same
// blob.
func gzipFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	defer out.Close()
	h := sha256.New()
	zw, err := gzip.NewWriterLevel(out, gzip.DefaultCompression)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(zw, io.TeeReader(in, h)); err != nil {
		return "", fmt.Errorf("compressing %s: %w", src, err)
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
