package kernel

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const (
	// maxModuleSize caps the uncompressed size of a module.
	maxModuleSize = 64 << 20
	// maxModinfoSize caps the size of a .modinfo section.
	maxModinfoSize = 1 << 20
)

// ErrNotELF is returned by ReadModinfo for input that is not an ELF file.
var ErrNotELF = errors.New("not an ELF file")

// ReadModinfo parses the .modinfo section of a kernel module's ELF image:
// NUL-separated key=value strings. Keys may repeat (alias, depends...), so
// each maps to its values in order of appearance. Malformed input yields an
// error, never a panic.
func ReadModinfo(r io.ReaderAt) (info map[string][]string, err error) {
	defer func() {
		// debug/elf is not hardened against hostile input.
		if p := recover(); p != nil {
			info, err = nil, fmt.Errorf("malformed ELF: %v", p)
		}
	}()
	magic := make([]byte, len(elf.ELFMAG))
	if _, err := r.ReadAt(magic, 0); err != nil || string(magic) != elf.ELFMAG {
		return nil, ErrNotELF
	}
	data, err := modinfoSection(r)
	if err != nil {
		return nil, err
	}
	return parseModinfo(data), nil
}

// modinfoSection returns the contents of the .modinfo section.
func modinfoSection(r io.ReaderAt) ([]byte, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("malformed ELF: %w", err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	if sec.Type == elf.SHT_NOBITS {
		return nil, errors.New(".modinfo section has no data")
	}
	if sec.Size > maxModinfoSize {
		return nil, fmt.Errorf(".modinfo section too large (%d bytes)", sec.Size)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .modinfo: %w", err)
	}
	return data, nil
}

// parseModinfo splits NUL-separated key=value strings; others are ignored.
func parseModinfo(data []byte) map[string][]string {
	info := make(map[string][]string)
	for _, field := range bytes.Split(data, []byte{0}) {
		key, value, ok := strings.Cut(string(field), "=")
		if !ok || key == "" {
			continue
		}
		info[key] = append(info[key], value)
	}
	return info
}

// OpenModule returns the uncompressed bytes of the module file at path,
// decompressing .ko.xz, .ko.zst and .ko.gz files. Modules larger than
// 64 MiB once uncompressed are rejected.
func OpenModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, closeFn, err := decompressor(path, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer closeFn()
	data, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxModuleSize {
		return nil, fmt.Errorf("%s: larger than %d MiB uncompressed", path, maxModuleSize>>20)
	}
	return data, nil
}

// decompressor returns a reader of r's uncompressed contents, chosen by
// the file name's extension, and a function releasing its resources.
func decompressor(name string, r io.Reader) (io.Reader, func(), error) {
	nop := func() {}
	switch {
	case strings.HasSuffix(name, ".xz"):
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, nop, fmt.Errorf("xz: %w", err)
		}
		return xr, nop, nil
	case strings.HasSuffix(name, ".zst"):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxModuleSize+1))
		if err != nil {
			return nil, nop, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	case strings.HasSuffix(name, ".gz"):
		gr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nop, fmt.Errorf("gzip: %w", err)
		}
		return gr, func() { gr.Close() }, nil
	}
	return r, nop, nil
}
