package bootable

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"
)

// maxKernelSize bounds an unpacked kernel: a vmlinux of nos's own kernel
// is about 17 MB, a distribution vmlinux with debug info far more.
const maxKernelSize = 512 << 20

// Unpack returns the unpacked kernel of the compressed kernel blob at
// blob, in dir, unpacking it first when needed. The file is named by the
// blob's digest and written atomically, so concurrent runs agree; it is
// shared by instances through hard links or copies.
func Unpack(ctx context.Context, dir, blob string) (string, error) {
	name := filepath.Base(blob)
	dst := filepath.Join(dir, name)
	if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() {
		now := time.Now()
		_ = os.Chtimes(dst, now, now) // in use: see PruneUnpacked
		return dst, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("unpacking the kernel: %w", err)
	}
	src, err := os.Open(blob)
	if err != nil {
		return "", fmt.Errorf("unpacking the kernel: %w", err)
	}
	defer src.Close()
	// The blob is checked against its digest as it is read, since this
	// file outlives the check the store made when it was written.
	h := sha256.New()
	zr, err := gzip.NewReader(io.TeeReader(src, h))
	if err != nil {
		return "", fmt.Errorf("unpacking the kernel %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, ".unpack-*")
	if err != nil {
		return "", fmt.Errorf("unpacking the kernel: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(zr, maxKernelSize+1))
	if err == nil && n > maxKernelSize {
		err = fmt.Errorf("larger than %d MiB", maxKernelSize>>20)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, src) // the rest, for the digest
	}
	if err == nil && hex.EncodeToString(h.Sum(nil)) != name {
		err = fmt.Errorf("the blob does not match its digest: run `nos rmi` and build the image again")
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return "", fmt.Errorf("unpacking the kernel %s: %w", name, err)
	}
	return dst, nil
}

// PruneUnpacked removes the unpacked kernels whose blob the store no
// longer has, unless one was used in the last hour (an instance being
// created may be about to link it). Instances keep their own hard links.
func PruneUnpacked(dir string, blobExists func(hexDigest string) bool) (removed int, err error) {
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	for _, de := range des {
		fi, err := de.Info()
		if err != nil || blobExists(de.Name()) || time.Since(fi.ModTime()) < time.Hour {
			continue
		}
		if os.Remove(filepath.Join(dir, de.Name())) == nil {
			removed++
		}
	}
	return removed, nil
}
