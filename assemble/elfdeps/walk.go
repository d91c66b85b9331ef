package elfdeps

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// maxSymlinks is how many symbolic links one path resolution follows
// before giving up with ELOOP, as Linux does.
const maxSymlinks = 40

// tree resolves absolute paths inside a root directory the way the
// kernel would after chroot(root): absolute symbolic links and ".." stay
// inside root. An empty root is the host's "/".
type tree struct {
	root string // "" for the host, else a clean absolute directory

	// Hooks for tests; nil means the os package.
	lstat    func(string) (fs.FileInfo, error)
	readlink func(string) (string, error)
	open     func(string) (readerFile, error)
}

// readerFile is what the resolver needs from an open file.
type readerFile interface {
	io.ReaderAt
	io.Closer
	Stat() (fs.FileInfo, error)
}

func newTree(root string) (*tree, error) {
	if root == "" || root == "/" {
		return &tree{}, nil
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &fs.PathError{Op: "root", Path: abs, Err: syscall.ENOTDIR}
	}
	if abs == "/" {
		abs = ""
	}
	return &tree{root: abs}, nil
}

// host maps a clean absolute path inside the tree to a host path.
func (t *tree) host(p string) string {
	if t.root == "" {
		return p
	}
	if p == "/" {
		return t.root
	}
	return t.root + p
}

// guest maps a host path under the root back to a path inside the tree.
func (t *tree) guest(h string) string {
	if t.root == "" {
		return h
	}
	g := strings.TrimPrefix(h, t.root)
	if g == "" {
		return "/"
	}
	return g
}

func (t *tree) doLstat(p string) (fs.FileInfo, error) {
	if t.lstat != nil {
		return t.lstat(p)
	}
	return os.Lstat(p)
}

func (t *tree) doReadlink(p string) (string, error) {
	if t.readlink != nil {
		return t.readlink(p)
	}
	return os.Readlink(p)
}

func (t *tree) doOpen(p string) (readerFile, error) {
	if t.open != nil {
		return t.open(p)
	}
	return os.Open(p)
}

// resolved is an absolute path inside the tree with its symbolic links
// followed.
type resolved struct {
	Real  string      // clean absolute path without symbolic links
	Links []File      // the symbolic links followed, in order
	Info  fs.FileInfo // Lstat of Real
}

// walk resolves the absolute path p inside the tree component by
// component, following symbolic links the way the kernel does
// (physical ".."), and records every link it follows: reproducing those
// links in the guest makes p resolve there to the same file. Errors are
// *fs.PathError with p as Path; a missing component gives fs.ErrNotExist
// or ENOTDIR.
func (t *tree) walk(p string) (*resolved, error) {
	fail := func(err error) (*resolved, error) {
		return nil, &fs.PathError{Op: "resolve", Path: p, Err: err}
	}
	if !strings.HasPrefix(p, "/") {
		return fail(errors.New("not an absolute path"))
	}
	var (
		stack   []string // resolved components
		pending = splitPath(p)
		links   []File
		follows int
		info    fs.FileInfo
	)
	cur := func(extra string) string {
		return "/" + strings.Join(append(stack[:len(stack):len(stack)], extra), "/")
	}
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if info != nil && !info.IsDir() {
				return fail(syscall.ENOTDIR)
			}
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			info = nil
			continue
		}
		if info != nil && !info.IsDir() {
			return fail(syscall.ENOTDIR)
		}
		g := cur(c)
		fi, err := t.doLstat(t.host(g))
		if err != nil {
			return fail(unwrapPathError(err))
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			follows++
			if follows > maxSymlinks {
				return fail(syscall.ELOOP)
			}
			target, err := t.doReadlink(t.host(g))
			if err != nil {
				return fail(unwrapPathError(err))
			}
			if target == "" {
				return fail(syscall.ENOENT)
			}
			links = append(links, File{GuestPath: g, Symlink: target, Mode: fs.ModeSymlink | 0o777})
			if strings.HasPrefix(target, "/") {
				stack = stack[:0]
			}
			pending = append(splitPath(target), pending...)
			info = nil
			continue
		}
		stack = append(stack, c)
		info = fi
	}
	real := "/" + strings.Join(stack, "/")
	if info == nil { // the path ended in "..", "." or at the root
		fi, err := t.doLstat(t.host(real))
		if err != nil {
			return fail(unwrapPathError(err))
		}
		info = fi
	}
	return &resolved{Real: real, Links: links, Info: info}, nil
}

func splitPath(p string) []string {
	return strings.Split(p, "/")
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// isNotFound reports whether err means that a path does not lead to a
// file, which makes ld.so try the next directory.
func isNotFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
