package initramfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

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
// compressed with LZ4's high-compression matcher at lz4Level. Chunks are
// compressed independently (the format's blocks share nothing), so up to
// one per CPU are compressed at once and written in order: the output
// depends only on the input, not on the number of CPUs.
type lz4Writer struct {
	w       io.Writer
	buf     []byte   // the chunk being filled
	full    [][]byte // filled chunks, compressed together when there are par
	free    [][]byte // chunk buffers to fill again
	par     int
	c       []lz4.CompressorHC // one per chunk of a round
	out     [][]byte           // each chunk's length and block
	started bool
	err     error
}

// lz4MaxParallel bounds the chunks compressed at once: each holds a
// matcher (its tables are 384 KiB) and two buffers.
const lz4MaxParallel = 8

func newLZ4Writer(w io.Writer) *lz4Writer {
	par := min(max(runtime.GOMAXPROCS(0), 1), lz4MaxParallel)
	z := &lz4Writer{w: w, par: par, c: make([]lz4.CompressorHC, par), out: make([][]byte, par)}
	for i := range z.c {
		z.c[i].Level = lz4Level
		z.out[i] = make([]byte, 4+lz4.CompressBlockBound(LZ4ChunkSize))
	}
	z.buf = z.chunk()
	return z
}

// chunk returns an empty chunk buffer.
func (z *lz4Writer) chunk() []byte {
	if n := len(z.free); n > 0 {
		b := z.free[n-1]
		z.free = z.free[:n-1]
		return b[:0]
	}
	return make([]byte, 0, LZ4ChunkSize)
}

func (z *lz4Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && z.err == nil {
		k := min(len(p), LZ4ChunkSize-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(z.buf) == LZ4ChunkSize {
			z.full = append(z.full, z.buf)
			z.buf = z.chunk()
			if len(z.full) == z.par {
				z.flush()
			}
		}
	}
	return n, z.err
}

// flush compresses the filled chunks, at once, and writes them in order.
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
	sizes := make([]int, len(z.full))
	errs := make([]error, len(z.full))
	var wg sync.WaitGroup
	for i, b := range z.full {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// out has room for CompressBlockBound: compression always succeeds.
			n, err := z.c[i].CompressBlock(b, z.out[i][4:])
			if err == nil && n == 0 {
				err = errors.New("no output for a full-size buffer")
			}
			sizes[i], errs[i] = n, err
		}()
	}
	wg.Wait()
	for i := range z.full {
		if errs[i] != nil {
			z.err = fmt.Errorf("lz4: %w", errs[i])
			return
		}
		binary.LittleEndian.PutUint32(z.out[i], uint32(sizes[i]))
		if _, z.err = z.w.Write(z.out[i][:4+sizes[i]]); z.err != nil {
			return
		}
	}
	z.free = append(z.free, z.full...)
	z.full = z.full[:0]
}

// Close writes what is buffered; the stream needs no end marker.
func (z *lz4Writer) Close() error {
	if len(z.buf) > 0 {
		z.full = append(z.full, z.buf)
		z.buf = z.chunk()
	}
	z.flush()
	return z.err
}
