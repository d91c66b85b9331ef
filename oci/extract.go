package oci

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxZstdWindow bounds the memory a zstd layer may ask for (zstd --long=27).
const maxZstdWindow = 128 << 20

type layerInfo struct {
	l         v1.Layer
	mediaType types.MediaType
	digest    v1.Hash // of the blob; zero for docker save output
	size      int64   // of the blob, as the manifest says
	diffID    v1.Hash
}

// Extract applies the image's layers in order into dst, an existing empty
// directory, and describes the result. Nothing is written outside dst:
// paths that climb out, writes through symlinks, hardlinks and whiteouts
// that point outside, and device nodes are refused; FIFOs are skipped with
// a warning. Layer blobs are checked against their digests and the
// uncompressed streams against the configuration's diff_ids. lim bounds
// the work (a zero field means its DefaultLimits value).
//
// When running as root, owners and exact modes (setuid bits included) are
// applied on disk, so dst should not be reachable by other users. On error,
// dst holds a partial tree for the caller to remove.
func (im *Image) Extract(ctx context.Context, dst string, lim Limits) (*Tree, error) {
	lim = lim.withDefaults()
	ents, err := os.ReadDir(dst)
	if err != nil {
		return nil, fmt.Errorf("extracting %s: %w", im.ref, err)
	}
	if len(ents) > 0 {
		return nil, fmt.Errorf("extracting %s: %s is not empty", im.ref, dst)
	}
	if n := len(im.cfg.RootFS.DiffIDs); n > lim.MaxLayers {
		return nil, fmt.Errorf("%s has %d layers; the limit is %d", im.ref, n, lim.MaxLayers)
	}
	layers, err := im.layers()
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return nil, fmt.Errorf("extracting %s: %w", im.ref, err)
	}
	defer root.Close()
	x := newExtractor(root, lim, false)
	for i, l := range layers {
		if err := im.extractLayer(ctx, x, i+1, l); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("extracting %s: %w", im.ref, ctx.Err())
			}
			return nil, classify(im.ref, err)
		}
	}
	t, err := x.finish(dst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", im.ref, err)
	}
	return t, nil
}

func (im *Image) layers() ([]layerInfo, error) {
	diffIDs := im.cfg.RootFS.DiffIDs
	ls, err := im.img.Layers()
	if err != nil {
		return nil, classify(im.ref, fmt.Errorf("listing the layers: %w", err))
	}
	if len(ls) != len(diffIDs) {
		return nil, fmt.Errorf("%s: the image has %d layers but its configuration lists %d diff_ids", im.ref, len(ls), len(diffIDs))
	}
	out := make([]layerInfo, len(ls))
	for i := range ls {
		out[i] = layerInfo{l: ls[i], diffID: diffIDs[i]}
	}
	if im.kind == srcDockerArchive {
		return out, nil
	}
	m, err := im.img.Manifest()
	if err != nil {
		return nil, classify(im.ref, fmt.Errorf("reading the manifest: %w", err))
	}
	if len(m.Layers) != len(ls) {
		return nil, fmt.Errorf("%s: the manifest lists %d layers but the image has %d", im.ref, len(m.Layers), len(ls))
	}
	for i, d := range m.Layers {
		out[i].mediaType, out[i].digest, out[i].size = d.MediaType, d.Digest, d.Size
	}
	return out, nil
}

func supportedLayer(mt types.MediaType) bool {
	switch mt {
	case types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer,
		types.DockerLayer, types.DockerUncompressedLayer:
		return true
	}
	return false
}

func (im *Image) extractLayer(ctx context.Context, x *extractor, n int, li layerInfo) error {
	where := fmt.Sprintf("layer %d", n)
	if im.kind == srcDockerArchive {
		// docker save output has no blob digests: go-containerregistry
		// decompresses if needed and the diff_id is what is checked.
		rc, err := li.l.Uncompressed()
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		defer rc.Close()
		ur := newHashingReader(rc)
		if err := x.applyLayer(ctx, n, where, ur); err != nil {
			return err
		}
		return checkDiffID(where, ur, li.diffID)
	}

	if !supportedLayer(li.mediaType) {
		return fmt.Errorf("%s has an unsupported media type %q", where, li.mediaType)
	}
	if li.digest.Algorithm != "sha256" {
		return fmt.Errorf("%s has an unsupported digest %q", where, li.digest)
	}
	rc, err := li.l.Compressed()
	if err != nil {
		return fmt.Errorf("%s: %w", where, classify(im.ref, err))
	}
	defer rc.Close()
	cr := newHashingReader(rc)
	br := bufio.NewReaderSize(cr, 64<<10)
	drainLimit := x.lim.MaxBytes
	if li.size > 0 {
		drainLimit = li.size + 1
	}

	dec, closeDec, err := decompressor(br)
	if err != nil {
		err = fmt.Errorf("%s: %w", where, err)
	} else {
		ur := newHashingReader(dec)
		err = x.applyLayer(ctx, n, where, ur)
		closeDec()
		if err == nil {
			// Whatever follows the compressed stream is part of the blob.
			_, err = io.Copy(io.Discard, io.LimitReader(br, drainLimit))
		}
		if err == nil {
			if verr := blobVerdict(where, cr, li); verr != nil {
				return verr
			}
			return checkDiffID(where, ur, li.diffID)
		}
	}
	var ce *contentError
	if errors.As(err, &ce) || ctx.Err() != nil {
		return err
	}
	// A read error: if the blob is not what the manifest says, that is the
	// cause to report.
	io.Copy(io.Discard, io.LimitReader(br, drainLimit))
	if verr := blobVerdict(where, cr, li); verr != nil {
		return verr
	}
	return err
}

var errUnsupportedCompression = errors.New("unsupported compression")

// decompressor recognises gzip and zstd by their magic numbers (whatever
// the media type says); anything else is read as a plain tar.
func decompressor(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zd, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
			zstd.WithDecoderMaxMemory(maxZstdWindow*2))
		if err != nil {
			return nil, nil, err
		}
		return zd, zd.Close, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, nil, fmt.Errorf("%w (xz)", errUnsupportedCompression)
	case bytes.HasPrefix(magic, []byte("BZh")):
		return nil, nil, fmt.Errorf("%w (bzip2)", errUnsupportedCompression)
	}
	return br, func() {}, nil
}

type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	eof bool
}

func newHashingReader(r io.Reader) *hashingReader {
	return &hashingReader{r: r, h: sha256.New()}
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	if err == io.EOF {
		h.eof = true
	}
	return n, err
}

func (h *hashingReader) sum() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.h.Sum(nil))}
}

// blobVerdict reports a blob that is not the one the manifest names: too
// long, too short, or with another digest. It says nothing (nil) when the
// blob was not read to its end for some other reason.
func blobVerdict(where string, cr *hashingReader, li layerInfo) error {
	switch {
	case li.size > 0 && cr.n > li.size:
		return fmt.Errorf("%s: digest mismatch: the blob is longer than the %d bytes the manifest says (corrupted or tampered)", where, li.size)
	case li.size > 0 && cr.n < li.size && cr.eof:
		return fmt.Errorf("%s: digest mismatch: the blob has %d bytes, the manifest says %d (truncated or tampered)", where, cr.n, li.size)
	case li.size > 0 && cr.n < li.size:
		return nil
	case li.size <= 0 && !cr.eof:
		return nil
	}
	if got := cr.sum(); got != li.digest {
		return fmt.Errorf("%s: digest mismatch: the blob is %s, the manifest says %s (corrupted or tampered)", where, got, li.digest)
	}
	return nil
}

func checkDiffID(where string, ur *hashingReader, want v1.Hash) error {
	if got := ur.sum(); got != want {
		return fmt.Errorf("%s: the uncompressed content is %s but the image configuration's diff_id says %s (corrupted or tampered)", where, got, want)
	}
	return nil
}
