package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
)

const (
	maxPathLen      = 4096 // PATH_MAX
	maxComponentLen = 255  // NAME_MAX
	maxLinkLen      = 4095
	maxWarnings     = 100

	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"

	specialBits = fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
)

// contentError is a refusal of what a layer contains (as opposed to a
// failure to read it): it is reported as is, without re-checking digests.
type contentError struct{ msg string }

func (e *contentError) Error() string { return e.msg }

// node mirrors one file of the tree being extracted. The extractor is the
// only writer of the destination, so the nodes are the truth about what is
// on disk: every decision (is this parent a symlink? does this hardlink
// target exist?) is taken on them, and os.Root guarantees on top that no
// operation leaves the destination whatever happens.
type node struct {
	e        Entry // without Path
	children map[string]*node
	// layer is the last layer that created or touched the node (wrote it,
	// or wrote beneath it): whiteouts and opaque markers remove only what
	// comes from lower layers.
	layer int
}

func (n *node) isDir() bool { return n.e.Mode.IsDir() }

// extractor applies layers in order into root.
type extractor struct {
	root *os.Root
	lim  Limits
	// archive: unpacking an OCI layout tar, not applying an image layer.
	// No whiteouts; only directories and regular files; fixed private modes.
	archive bool
	// chown: running as root, apply owners and exact modes on disk.
	chown bool

	top         *node
	ino         uint64
	entries     int
	streamBytes int64
	fileBytes   int64
	overBudget  bool
	warnings    []string
	dropped     int

	where string // "layer 3", for messages
	n     int    // current layer number
}

func newExtractor(root *os.Root, lim Limits, archive bool) *extractor {
	x := &extractor{
		root:    root,
		lim:     lim.withDefaults(),
		archive: archive,
		chown:   !archive && os.Geteuid() == 0,
	}
	x.ino++
	x.top = &node{e: Entry{Mode: fs.ModeDir | 0o755, Inode: x.ino}, children: map[string]*node{}}
	return x
}

func (x *extractor) errf(format string, args ...any) error {
	return &contentError{x.where + ": " + fmt.Sprintf(format, args...)}
}

func (x *extractor) warnf(format string, args ...any) {
	if len(x.warnings) >= maxWarnings {
		x.dropped++
		return
	}
	x.warnings = append(x.warnings, x.where+": "+fmt.Sprintf(format, args...))
}

func (x *extractor) bombError() error {
	return &contentError{fmt.Sprintf("%s exceeds the size limit (%s uncompressed in total); the image may be a decompression bomb",
		x.where, formatBytes(x.lim.MaxBytes))}
}

// budgetReader counts the uncompressed stream against MaxBytes.
type budgetReader struct {
	ctx context.Context
	r   io.Reader
	x   *extractor
}

var errOverBudget = errors.New("size limit exceeded")

func (b *budgetReader) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if b.x.overBudget {
		return 0, errOverBudget
	}
	n, err := b.r.Read(p)
	b.x.streamBytes += int64(n)
	if b.x.streamBytes > b.x.lim.MaxBytes {
		b.x.overBudget = true
		return n, errOverBudget
	}
	return n, err
}

// applyLayer applies one uncompressed layer tar stream, then reads r to its
// end (so that a caller hashing r sees all of it).
func (x *extractor) applyLayer(ctx context.Context, n int, where string, r io.Reader) error {
	x.n, x.where = n, where
	br := &budgetReader{ctx: ctx, r: r, x: x}
	tr := tar.NewReader(br)
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return x.readError(ctx, err)
		}
		x.entries++
		if x.entries > x.lim.MaxEntries {
			return x.errf("too many entries (the limit is %d in total); the image may be a decompression bomb", x.lim.MaxEntries)
		}
		if err := x.apply(ctx, tr, hdr, buf); err != nil {
			return err
		}
	}
	if _, err := io.CopyBuffer(io.Discard, br, buf); err != nil {
		return x.readError(ctx, err)
	}
	return nil
}

func (x *extractor) readError(ctx context.Context, err error) error {
	if x.overBudget {
		return x.bombError()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: reading the tar stream: %w", x.where, err)
}

// splitName turns a tar name into clean components. A leading "/" is
// relative to the root; ".." may not climb above it.
func splitName(name string) (comps []string, problem string) {
	if len(name) > maxPathLen {
		return nil, "is too long"
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, "contains a NUL byte"
	}
	for c := range strings.SplitSeq(name, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(comps) == 0 {
				return nil, "escapes the root"
			}
			comps = comps[:len(comps)-1]
		default:
			if len(c) > maxComponentLen {
				return nil, "has a component longer than 255 bytes"
			}
			comps = append(comps, c)
		}
	}
	return comps, ""
}

func modeOf(h int64) fs.FileMode {
	m := fs.FileMode(h & 0o777)
	if h&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if h&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if h&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// diskMode is the mode set on disk for an entry of mode m.
func (x *extractor) diskMode(m fs.FileMode) fs.FileMode {
	perm := m & (fs.ModePerm | specialBits)
	switch {
	case x.archive && m.IsDir():
		return 0o700
	case x.archive:
		return 0o600
	case x.chown:
		return perm
	case m.IsDir():
		return perm | 0o700
	default:
		return (perm | 0o600) &^ (fs.ModeSetuid | fs.ModeSetgid)
	}
}

func (x *extractor) newNode(e Entry) *node {
	x.ino++
	e.Inode = x.ino
	nd := &node{e: e, layer: x.n}
	if e.Mode.IsDir() {
		nd.children = map[string]*node{}
	}
	return nd
}

func (x *extractor) lchown(p string, uid, gid int) {
	if !x.chown {
		return
	}
	if err := x.root.Lchown(p, uid, gid); err != nil {
		x.chown = false
		x.warnf("cannot set owners on disk (%v); owners are recorded in the tree only", err)
	}
}

// parentDir walks comps, which must all be directories. With create,
// missing ones are made (mode 0755, owned by root, as tar extractors do)
// and every one is marked as touched by the current layer. Without create,
// a missing component yields nil. A symlink or a non-directory among them
// is refused: nothing is ever written through a symlink.
func (x *extractor) parentDir(name string, comps []string, create bool) (*node, error) {
	cur := x.top
	for i, c := range comps {
		child := cur.children[c]
		p := strings.Join(comps[:i+1], "/")
		switch {
		case child == nil:
			if !create {
				return nil, nil
			}
			if err := x.root.Mkdir(p, 0o700); err != nil {
				return nil, fmt.Errorf("%s: creating %q: %w", x.where, p, err)
			}
			x.lchown(p, 0, 0)
			child = x.newNode(Entry{Mode: fs.ModeDir | 0o755})
			cur.children[c] = child
		case child.e.Mode&fs.ModeSymlink != 0:
			return nil, x.errf("entry %q goes through the symlink %q; refusing to write through a symlink", name, p)
		case !child.isDir():
			return nil, x.errf("entry %q: %q is not a directory", name, p)
		}
		if create {
			child.layer = x.n
		}
		cur = child
	}
	if create {
		cur.layer = x.n
	}
	return cur, nil
}

// remove deletes parent's child base (at path p) from disk and the nodes.
func (x *extractor) remove(parent *node, base, p string) error {
	child := parent.children[base]
	var err error
	if child.isDir() {
		err = x.root.RemoveAll(p)
	} else {
		err = x.root.Remove(p)
	}
	if err != nil {
		return fmt.Errorf("%s: removing %q: %w", x.where, p, err)
	}
	delete(parent.children, base)
	return nil
}

func xattrsOf(hdr *tar.Header) map[string]string {
	var xa map[string]string
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && name != "" {
			if xa == nil {
				xa = map[string]string{}
			}
			xa[name] = v
		}
	}
	return xa
}

// slot is where an entry of a layer goes: its name as the tar header
// gives it, its path in the tree, its parent directory (created) and what
// is there now, if anything.
type slot struct {
	name     string
	p        string
	base     string
	parent   *node
	existing *node
}

// apply applies one tar entry: the checks every entry goes through (its
// name, whiteouts, owners, type), then the method for its type.
func (x *extractor) apply(ctx context.Context, tr *tar.Reader, hdr *tar.Header, buf []byte) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name := hdr.Name
	comps, problem := splitName(name)
	if problem != "" {
		return x.errf("entry %q %s", name, problem)
	}
	if len(comps) == 0 {
		return x.applyRoot(hdr)
	}
	base := comps[len(comps)-1]
	dirs := comps[:len(comps)-1]
	if x.archive {
		if hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeReg {
			return x.errf("entry %q is not a regular file or a directory; an OCI layout archive holds no others", name)
		}
	} else if done, err := x.applyWhiteout(name, dirs, base); done || err != nil {
		return err
	}
	if skip, err := x.checkEntry(hdr); skip || err != nil {
		return err
	}
	parent, err := x.parentDir(name, dirs, true)
	if err != nil {
		return err
	}
	s := slot{name: name, p: strings.Join(comps, "/"), base: base, parent: parent, existing: parent.children[base]}
	e := Entry{
		Mode:    modeOf(hdr.Mode),
		UID:     hdr.Uid,
		GID:     hdr.Gid,
		ModTime: hdr.ModTime,
		Xattrs:  xattrsOf(hdr),
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.applyDir(s, e)
	case tar.TypeSymlink:
		return x.applySymlink(s, e, hdr.Linkname)
	case tar.TypeLink:
		return x.hardlink(s, hdr.Linkname)
	}
	return x.applyFile(ctx, s, e, hdr.Size, tr, buf)
}

// applyRoot records the metadata of the root directory ("./" or "/").
func (x *extractor) applyRoot(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return x.errf("entry %q would replace the root directory", hdr.Name)
	}
	if !x.archive {
		x.top.e.Mode = fs.ModeDir | modeOf(hdr.Mode)
		x.top.e.UID, x.top.e.GID = hdr.Uid, hdr.Gid
		x.top.e.ModTime = hdr.ModTime
		x.top.e.Xattrs = xattrsOf(hdr)
	}
	return nil
}

// applyWhiteout handles an entry that is AUFS metadata, an opaque marker
// or a whiteout, and says whether the entry was one (done). It refuses an
// entry beneath a whiteout.
func (x *extractor) applyWhiteout(name string, dirs []string, base string) (done bool, err error) {
	for _, c := range dirs {
		if strings.HasPrefix(c, whiteoutMeta) {
			return true, nil // AUFS metadata (.wh..wh.plnk and such): not content
		}
		if strings.HasPrefix(c, whiteoutPrefix) {
			return true, x.errf("entry %q has a whiteout as a parent directory", name)
		}
	}
	switch {
	case base == whiteoutOpaque:
		dir, err := x.parentDir(name, dirs, true)
		if err != nil {
			return true, err
		}
		return true, x.opaque(dir, strings.Join(dirs, "/"))
	case strings.HasPrefix(base, whiteoutMeta):
		return true, nil
	case strings.HasPrefix(base, whiteoutPrefix):
		return true, x.whiteout(name, dirs, base[len(whiteoutPrefix):])
	}
	return false, nil
}

// whiteout removes target from the directory dirs, as lower layers made
// it.
func (x *extractor) whiteout(name string, dirs []string, target string) error {
	if target == "" || target == "." || target == ".." {
		return x.errf("whiteout %q names nothing", name)
	}
	dir, err := x.parentDir(name, dirs, false)
	if err != nil || dir == nil {
		return err
	}
	child := dir.children[target]
	tp := strings.Join(append(dirs[:len(dirs):len(dirs)], target), "/")
	switch {
	case child == nil:
	case child.layer < x.n:
		return x.remove(dir, target, tp)
	case child.isDir():
		// This layer already wrote into the directory (the whiteout comes
		// after its entries): what it wrote stays, the lower layers'
		// content goes.
		return x.opaque(child, tp)
	}
	return nil
}

// checkEntry refuses invalid owners, device nodes and unknown types, and
// says to skip a FIFO (with a warning).
func (x *extractor) checkEntry(hdr *tar.Header) (skip bool, err error) {
	if !validID(hdr.Uid) || !validID(hdr.Gid) {
		return false, x.errf("entry %q has an invalid owner %d:%d", hdr.Name, hdr.Uid, hdr.Gid)
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		return false, x.errf("device node %q refused", hdr.Name)
	case tar.TypeFifo:
		x.warnf("FIFO %q skipped (FIFOs are not supported)", hdr.Name)
		return true, nil
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont, tar.TypeSymlink, tar.TypeLink:
		return false, nil
	}
	return false, x.errf("entry %q has an unsupported type %q", hdr.Name, hdr.Typeflag)
}

// clear removes what is at the slot, if anything.
func (x *extractor) clear(s slot) error {
	if s.existing == nil {
		return nil
	}
	return x.remove(s.parent, s.base, s.p)
}

// applyDir makes a directory, or updates the one there.
func (x *extractor) applyDir(s slot, e Entry) error {
	e.Mode |= fs.ModeDir
	if s.existing != nil && s.existing.isDir() {
		e.Inode = s.existing.e.Inode
		s.existing.e = e
		s.existing.layer = x.n
		x.lchown(s.p, e.UID, e.GID)
		return nil
	}
	if err := x.clear(s); err != nil {
		return err
	}
	if err := x.root.Mkdir(s.p, 0o700); err != nil {
		return fmt.Errorf("%s: creating %q: %w", x.where, s.p, err)
	}
	x.lchown(s.p, e.UID, e.GID)
	s.parent.children[s.base] = x.newNode(e)
	return nil
}

func (x *extractor) applySymlink(s slot, e Entry, target string) error {
	if target == "" || len(target) > maxLinkLen || strings.IndexByte(target, 0) >= 0 {
		return x.errf("symlink %q has an invalid target %q", s.name, target)
	}
	if err := x.clear(s); err != nil {
		return err
	}
	if err := x.root.Symlink(target, s.p); err != nil {
		return fmt.Errorf("%s: creating symlink %q: %w", x.where, s.p, err)
	}
	x.lchown(s.p, e.UID, e.GID)
	e.Mode = fs.ModeSymlink | 0o777
	e.Linkname = target
	s.parent.children[s.base] = x.newNode(e)
	return nil
}

// applyFile writes a regular file of the given size from tr.
func (x *extractor) applyFile(ctx context.Context, s slot, e Entry, size int64, tr io.Reader, buf []byte) error {
	if size < 0 || size > x.lim.MaxBytes-x.fileBytes {
		return x.bombError()
	}
	x.fileBytes += size
	if err := x.clear(s); err != nil {
		return err
	}
	f, err := x.root.OpenFile(s.p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%s: creating %q: %w", x.where, s.p, err)
	}
	w := &recordingWriter{w: f}
	n, err := io.CopyBuffer(w, tr, buf)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		f.Close()
		if w.err != nil && err == w.err {
			return fmt.Errorf("%s: writing %q: %w", x.where, s.p, err)
		}
		return x.readError(ctx, err)
	}
	if x.chown {
		if err := f.Chown(e.UID, e.GID); err != nil {
			x.chown = false
			x.warnf("cannot set owners on disk (%v); owners are recorded in the tree only", err)
		}
	}
	if err := f.Chmod(x.diskMode(e.Mode)); err != nil {
		f.Close()
		return fmt.Errorf("%s: setting the mode of %q: %w", x.where, s.p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: writing %q: %w", x.where, s.p, err)
	}
	if !x.archive && !e.ModTime.IsZero() {
		if err := x.root.Chtimes(s.p, e.ModTime, e.ModTime); err != nil {
			return fmt.Errorf("%s: setting the times of %q: %w", x.where, s.p, err)
		}
	}
	e.Size = size
	s.parent.children[s.base] = x.newNode(e)
	return nil
}

// recordingWriter remembers its writer's error, to tell it from the reader's.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil {
		r.err = err
	}
	return n, err
}

func validID(id int) bool { return id >= 0 && id < 1<<32-1 }

// hardlink links the slot to an earlier regular file of the tree.
func (x *extractor) hardlink(s slot, linkname string) error {
	name, p := s.name, s.p
	tcomps, problem := splitName(linkname)
	if problem != "" {
		return x.errf("hardlink %q -> %q: the target %s", name, linkname, problem)
	}
	if len(tcomps) == 0 {
		return x.errf("hardlink %q points at the root directory", name)
	}
	tdir, err := x.parentDir(name, tcomps[:len(tcomps)-1], false)
	if err != nil {
		return err
	}
	var target *node
	if tdir != nil {
		target = tdir.children[tcomps[len(tcomps)-1]]
	}
	switch {
	case target == nil:
		return x.errf("hardlink %q -> %q: the target is not in the image (it must come earlier)", name, linkname)
	case target.e.Mode.Type() != 0:
		return x.errf("hardlink %q -> %q: the target is not a regular file", name, linkname)
	case target == s.existing:
		return nil // a link to itself: already there
	}
	tpath := strings.Join(tcomps, "/")
	if s.existing != nil && s.existing.isDir() && strings.HasPrefix(tpath, p+"/") {
		return x.errf("hardlink %q -> %q: the target is inside the directory it replaces", name, linkname)
	}
	if err := x.clear(s); err != nil {
		return err
	}
	if err := x.root.Link(tpath, p); err != nil {
		return fmt.Errorf("%s: creating hardlink %q: %w", x.where, p, err)
	}
	s.parent.children[s.base] = &node{e: target.e, layer: x.n}
	return nil
}

// opaque empties dir (at path p) of everything lower layers put there,
// keeping what the current layer wrote, before or after the marker.
func (x *extractor) opaque(dir *node, p string) error {
	for _, name := range slices.Sorted(maps.Keys(dir.children)) {
		child := dir.children[name]
		cp := name
		if p != "" {
			cp = p + "/" + name
		}
		if child.layer < x.n {
			if err := x.remove(dir, name, cp); err != nil {
				return err
			}
		} else if child.isDir() {
			if err := x.opaque(child, cp); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish sets the directories' final modes and times (deepest first) and
// lists the tree.
func (x *extractor) finish(dir string) (*Tree, error) {
	var fix func(nd *node, p string) error
	fix = func(nd *node, p string) error {
		for name, child := range nd.children {
			if child.isDir() {
				if err := fix(child, joinPath(p, name)); err != nil {
					return err
				}
			}
		}
		if p == "." {
			return nil
		}
		if err := x.root.Chmod(p, x.diskMode(nd.e.Mode)); err != nil {
			return fmt.Errorf("setting the mode of %q: %w", p, err)
		}
		if !x.archive && !nd.e.ModTime.IsZero() {
			if err := x.root.Chtimes(p, nd.e.ModTime, nd.e.ModTime); err != nil {
				return fmt.Errorf("setting the times of %q: %w", p, err)
			}
		}
		return nil
	}
	if err := fix(x.top, "."); err != nil {
		return nil, err
	}

	t := &Tree{Dir: dir, index: map[string]int{}}
	var list func(nd *node, p string)
	list = func(nd *node, p string) {
		e := nd.e
		e.Path = p
		t.index[p] = len(t.Entries)
		t.Entries = append(t.Entries, e)
		for _, name := range slices.Sorted(maps.Keys(nd.children)) {
			list(nd.children[name], joinPath(p, name))
		}
	}
	list(x.top, ".")
	t.Warnings = x.warnings
	if x.dropped > 0 {
		t.Warnings = append(t.Warnings, fmt.Sprintf("(%d more warnings)", x.dropped))
	}
	return t, nil
}

func joinPath(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
