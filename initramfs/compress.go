package initramfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/pierrec/lz4/v4"

	"github.com/nosproject/nos/internal/initrdz"
)

// LZ4ChunkSize is the most a chunk of the archives WriteTo writes holds
// uncompressed. LZ4's legacy format, the one the kernel's unpacker reads,
// allows chunks of up to 8 MiB, and the kernel unpacks through a buffer
// of the largest size it accepts; nos's kernels accept 256 KiB (a source
// edit, kernel/kbuild), which keeps 8 MiB of a small guest's memory free
// while it unpacks. Chunks this small cost the ratio little: LZ4 looks
// back 64 KiB at most.
const LZ4ChunkSize = 256 << 10

// Compression is how an archive is compressed for the kernel.
type Compression = initrdz.Compression

const (
	// LZ4 is LZ4's legacy format in chunks of LZ4ChunkSize.
	LZ4 = initrdz.LZ4
	// Gzip is gzip at level 6, with no name and no time in its header.
	Gzip = initrdz.Gzip
)

// Detect tells how the archive beginning with head is compressed.
func Detect(head []byte) (Compression, bool) { return initrdz.Detect(head) }

// NewReader returns the archive r holds uncompressed, LZ4 or gzip'd.
func NewReader(r io.Reader) (io.ReadCloser, error) { return initrdz.NewReader(r) }

// gzipLevel: measured with klauspost/compress v1.20.4 on a 10.5 MB input
// (a Go binary, /usr/share/zoneinfo and /etc/ssl/certs), level 6 gave
// 3,957,199 bytes in 150 ms, level 9 3,881,756 bytes in 1.82 s.
const gzipLevel = 6

func compressor(c Compression, w io.Writer) (io.WriteCloser, error) {
	if c != Gzip {
		return newLZ4Writer(w), nil
	}
	zw, err := gzip.NewWriterLevel(w, gzipLevel)
	if err != nil {
		return nil, err
	}
	// No name, no modification time and OS "unknown" (255): nothing in the
	// header depends on the host or the time.
	zw.Header = gzip.Header{OS: 255}
	return zw, nil
}

// lz4Level: measured with pierrec/lz4 v4.1.26 on the example's 10.5 MB
// archive (the Go app, nos-init, the CA bundle, zoneinfo), 5 rounds
// interleaved: level 2 gave 5,239,170 bytes in 455 ms, 3 5,236,633 in
// 603 ms, 5 5,233,356 in 924 ms, 9 5,232,330 in 1.21 s (level 1, oddly,
// took 4.7 s). Level 9's 7 KB, 0.13 %, are not worth 750 ms of every
// nos build; the kernel unpacks all of them alike.
const lz4Level = lz4.Level2

// lz4Writer writes an LZ4 legacy stream in chunks of LZ4ChunkSize,
// compressed with LZ4's high-compression matcher at lz4Level. The output
// depends only on the input.
type lz4Writer struct {
	w       io.Writer
	buf     []byte // the chunk being filled
	out     []byte
	c       lz4.CompressorHC
	started bool
	err     error
}

func newLZ4Writer(w io.Writer) *lz4Writer {
	return &lz4Writer{
		w:   w,
		buf: make([]byte, 0, LZ4ChunkSize),
		out: make([]byte, 4+lz4.CompressBlockBound(LZ4ChunkSize)),
		c:   lz4.CompressorHC{Level: lz4Level},
	}
}

func (z *lz4Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && z.err == nil {
		k := min(len(p), LZ4ChunkSize-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(z.buf) == LZ4ChunkSize {
			z.flush()
		}
	}
	return n, z.err
}

func (z *lz4Writer) flush() {
	if z.err != nil {
		return
	}
	if !z.started {
		if _, z.err = z.w.Write(initrdz.LZ4Magic); z.err != nil {
			return
		}
		z.started = true
	}
	if len(z.buf) == 0 {
		return
	}
	// out has room for CompressBlockBound: compression always succeeds.
	n, err := z.c.CompressBlock(z.buf, z.out[4:])
	if err == nil && n == 0 {
		err = errors.New("no output for a full-size buffer")
	}
	if err != nil {
		z.err = fmt.Errorf("lz4: %w", err)
		return
	}
	binary.LittleEndian.PutUint32(z.out, uint32(n))
	_, z.err = z.w.Write(z.out[:4+n])
	z.buf = z.buf[:0]
}

// Close writes what is buffered; the stream needs no end marker.
func (z *lz4Writer) Close() error {
	z.flush()
	return z.err
}
