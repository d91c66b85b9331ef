package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Kernel is a kernel nos can boot, with its modules when it is modular.
type Kernel struct {
	// Version is the kernel release, e.g. "6.1.0-56-cloud-amd64".
	Version string
	// Path is the bootable image (vmlinuz/bzImage or an ELF vmlinux).
	Path string
	// Vmlinux is the same kernel as an ELF vmlinux with a PVH entry
	// point, which boots faster, or "" when there is none.
	Vmlinux string
	// ModulesDir is .../lib/modules/<Version>, or "" when the kernel has
	// no modules directory (module-free or unknown).
	ModulesDir string
	// ConfigPath is .../boot/config-<Version> when present, else "".
	ConfigPath string
	// Origin tells where the kernel came from: "file", "host", "cache"
	// (fetched), "built" (nos kernel build) or "imported".
	Origin string
	// Features lists the optional features a nos-built kernel has (see
	// kernel/config); nil when unknown, as for distribution kernels, which
	// have them all.
	Features []string
	// ConfigHash digests the configuration fragments a nos-built kernel
	// was configured from; "" when unknown.
	ConfigHash string
}

// UnpacksLZ4 reports whether the kernel unpacks an LZ4-compressed
// initramfs (CONFIG_RD_LZ4), from its configuration: false when that is
// unknown or unreadable, so that the initramfs is then gzip'd, which every
// kernel nos boots unpacks.
func (k *Kernel) UnpacksLZ4() bool {
	if k.ConfigPath == "" {
		return false
	}
	b, err := os.ReadFile(k.ConfigPath)
	return err == nil && bytes.Contains(append([]byte("\n"), b...), []byte("\nCONFIG_RD_LZ4=y\n"))
}

// HasNetwork reports whether the kernel can run a network stack.
func (k *Kernel) HasNetwork() bool {
	return k.Features == nil || slices.Contains(k.Features, "net")
}

// Finder finds a kernel.
type Finder interface {
	// Find returns a usable kernel, or an error saying why there is none.
	Find(ctx context.Context) (*Kernel, error)
}

// ErrNoKernel is wrapped by the errors of finders that found no kernel.
var ErrNoKernel = errors.New("no kernel found")

// fetchHint tells the user how to get a kernel when none was found.
const fetchHint = "run `nos kernel fetch` to download Debian's linux-image-cloud-amd64 into nos's cache, or pass --kernel PATH"

// Chain is a Finder that tries its finders in order and returns the first
// kernel found.
type Chain []Finder

// Find returns the first finder's kernel that succeeds. When all fail, the
// error wraps ErrNoKernel and lists every finder's reason on one line.
func (c Chain) Find(ctx context.Context) (*Kernel, error) {
	var reasons []string
	for _, f := range c {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k, err := f.Find(ctx)
		if err == nil {
			return k, nil
		}
		reasons = append(reasons, oneLine(err.Error()))
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "no kernel sources configured")
	}
	return nil, fmt.Errorf("%w: %s; %s", ErrNoKernel, strings.Join(reasons, "; "), fetchHint)
}

// oneLine folds s onto a single line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

const (
	setupHeaderMagicOff = 0x202 // "HdrS" in a bzImage's setup header
	kernelVersionOff    = 0x20e // offset of the version string, minus 0x200
	maxVersionLen       = 256
)

// checkImage returns nil when the file at path is a bzImage or an ELF vmlinux.
func checkImage(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	hdr := make([]byte, setupHeaderMagicOff+4)
	n, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w", path, err)
	}
	hdr = hdr[:n]
	if isBzImage(hdr) || bytes.HasPrefix(hdr, []byte("\x7fELF")) {
		return nil
	}
	return fmt.Errorf("%s: not a kernel image (no bzImage \"HdrS\" magic at 0x202, not ELF)", path)
}

func isBzImage(hdr []byte) bool {
	return len(hdr) >= setupHeaderMagicOff+4 &&
		string(hdr[setupHeaderMagicOff:setupHeaderMagicOff+4]) == "HdrS"
}

// bzImageVersion returns the kernel release recorded in a bzImage's setup
// header, or "" when there is none.
func bzImageVersion(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	hdr := make([]byte, kernelVersionOff+2)
	if _, err := f.ReadAt(hdr, 0); err != nil || !isBzImage(hdr) {
		return ""
	}
	off := int64(binary.LittleEndian.Uint16(hdr[kernelVersionOff:])) + 0x200
	if off == 0x200 {
		return ""
	}
	buf := make([]byte, maxVersionLen)
	n, _ := f.ReadAt(buf, off)
	s, _, _ := strings.Cut(string(buf[:n]), "\x00")
	fields := strings.Fields(s)
	if len(fields) == 0 || !validVersion(fields[0]) {
		return ""
	}
	return fields[0]
}

// validVersion reports whether v can be a kernel release used in a path.
func validVersion(v string) bool {
	if v == "" || v == "." || v == ".." || strings.HasPrefix(v, ".") {
		return false
	}
	for _, r := range v {
		if r <= ' ' || r == '/' || r == '\\' || r > '~' {
			return false
		}
	}
	return true
}

// companions fills k.ModulesDir and k.ConfigPath from the usual layout:
// <bootDir>/config-<ver> and <modulesRoot>/<ver>.
func (k *Kernel) companions(bootDir, modulesRoot string) {
	if k.Version == "" {
		return
	}
	if dir := filepath.Join(modulesRoot, k.Version); isDir(dir) {
		k.ModulesDir = dir
	}
	if cfg := filepath.Join(bootDir, "config-"+k.Version); isFile(cfg) {
		k.ConfigPath = cfg
	}
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
