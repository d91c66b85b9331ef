// Package initrdz tells apart and undoes the compressions of the
// initramfs archives nos writes: LZ4's legacy format (the kernel's) and
// gzip. It knows nothing else of nos, so that the packages that only read
// images (sbom, bench) need not know how they are built.
package initrdz

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/pierrec/lz4/v4"
)

// Compression is how an archive is compressed for the kernel.
type Compression int

const (
	// LZ4 is LZ4's legacy format: the magic, then chunks, each its
	// compressed length (32-bit little-endian) and an LZ4 block.
	LZ4 Compression = iota
	// Gzip is gzip.
	Gzip
)

func (c Compression) String() string {
	if c == Gzip {
		return "gzip"
	}
	return "lz4"
}

// LZ4Magic opens an LZ4 legacy stream (little-endian 0x184C2102).
var LZ4Magic = []byte{0x02, 0x21, 0x4c, 0x18}

var gzipMagic = []byte{0x1f, 0x8b}

// Detect tells how the archive beginning with head is compressed.
func Detect(head []byte) (Compression, bool) {
	switch {
	case bytes.HasPrefix(head, LZ4Magic):
		return LZ4, true
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip, true
	}
	return 0, false
}

// NewReader returns the archive r holds uncompressed, whichever of the
// compressions nos has written it with (LZ4, or gzip before 2026-12-04):
// it tells them by their first bytes.
func NewReader(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	c, ok := Detect(head)
	switch {
	case ok && c == LZ4:
		return io.NopCloser(lz4.NewReader(br)), nil
	case ok && c == Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return zr, nil
	}
	return nil, fmt.Errorf("initramfs: not an LZ4 or gzip archive (starts % x)", head)
}
