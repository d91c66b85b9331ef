// Package fsutil holds small file helpers shared by nos's packages.
package fsutil

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
)

// CopyFile copies src to a new file dst with permissions perm. dst must not
// exist: the copy is always its own inode, never a link to src.
func CopyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// IsELF reports whether the file at path starts like an ELF file. It
// reads the magic bytes only, to tell an ELF vmlinux from a bzImage among
// files already known to be kernels; programs are checked by parsing
// their headers, once, in assemble (readELFKind).
func IsELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "\x7fELF"
}

// IsEFI reports whether path is a PE image, as a bzImage built with the
// EFI stub is: the "MZ" header pointing at a "PE\0\0" signature.
func IsEFI(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [0x40]byte
	if _, err := io.ReadFull(f, h[:]); err != nil || h[0] != 'M' || h[1] != 'Z' {
		return false
	}
	off := int64(h[0x3c]) | int64(h[0x3d])<<8 | int64(h[0x3e])<<16 | int64(h[0x3f])<<24
	var sig [4]byte
	_, err = f.ReadAt(sig[:], off)
	return err == nil && string(sig[:]) == "PE\x00\x00"
}

// WriteJSON replaces path atomically with v as indented JSON: a temporary
// file in the same directory, fsynced, then renamed over path. Readers see
// the old content or the new, never a part.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
