package oci

import (
	"io/fs"
	"strings"
	"time"
)

// Limits bounds the work Extract does for one image. A zero (or negative)
// field means the matching DefaultLimits value.
type Limits struct {
	// MaxBytes caps the uncompressed bytes over all layers: both the
	// uncompressed tar streams and the sizes the tar headers declare for
	// regular files (a sparse entry can declare more than its stream holds).
	MaxBytes int64
	// MaxEntries caps the tar entries over all layers, whiteouts included.
	MaxEntries int
	// MaxLayers caps the number of layers in the image.
	MaxLayers int
}

// DefaultLimits returns 8 GiB of uncompressed data, 1,000,000 entries and
// 256 layers.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 8 << 30, MaxEntries: 1_000_000, MaxLayers: 256}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxLayers <= 0 {
		l.MaxLayers = d.MaxLayers
	}
	return l
}

// Entry describes one file of the flattened root filesystem as the image
// specified it, whatever the extracting user could apply on disk.
type Entry struct {
	// Path is slash-separated and relative to the root, without a leading
	// "./"; the root itself is ".".
	Path string
	// Mode holds the type (fs.ModeDir, fs.ModeSymlink, or none for a
	// regular file), the permission bits and fs.ModeSetuid, fs.ModeSetgid
	// and fs.ModeSticky.
	Mode fs.FileMode
	// UID and GID are the owners the image gave the file.
	UID, GID int
	// Size is the length of a regular file.
	Size int64
	// Linkname is a symlink's target, exactly as the image wrote it (it may
	// be absolute: it is resolved inside the guest).
	Linkname string
	// ModTime is the modification time from the layer (zero for
	// directories the image did not list but that were needed as parents).
	ModTime time.Time
	// Inode identifies the underlying file: entries that are hard links
	// to one file share it; it is unique otherwise.
	Inode uint64
	// Xattrs holds the extended attributes recorded in the layer's PAX
	// headers (for example security.capability). They are recorded only,
	// never applied on disk.
	Xattrs map[string]string
}

// Tree is the result of Extract: the flattened root filesystem under Dir,
// and the image's metadata for every path in it.
//
// On disk, when running as root, owners and modes are the image's. As
// another user owners stay the extracting user's, directories keep owner
// rwx and regular files owner rw (so the tree can be read and removed), and
// setuid/setgid bits are not set on regular files. Entries always carry the
// image's values: pack from them. Dir's own mode and owner are never
// changed; the image's values for the root are in the "." entry. Symlink
// timestamps are not set on disk.
type Tree struct {
	// Dir is the directory the image was extracted into.
	Dir string
	// Entries lists every path, the root "." first, parents before their
	// children, siblings sorted by name.
	Entries []Entry
	// Warnings lists what was skipped (for example FIFOs, which are not
	// created) or could not be applied on disk.
	Warnings []string

	index map[string]int
}

// Lookup returns the entry for p ("." or a slash-separated relative path;
// a leading "/" or "./" is ignored).
func (t *Tree) Lookup(p string) (Entry, bool) {
	p = strings.TrimLeft(p, "/")
	for strings.HasPrefix(p, "./") {
		p = strings.TrimLeft(p[2:], "/")
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		p = "."
	}
	i, ok := t.index[p]
	if !ok {
		return Entry{}, false
	}
	return t.Entries[i], true
}
