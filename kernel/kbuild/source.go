package kbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nosproject/nos/kernel"
)

// DefaultSourceGlob matches the tarball Debian's linux-source-<version>
// package installs; the newest version is used.
const DefaultSourceGlob = "/usr/src/linux-source-*.tar.xz"

// SourcePackage is the Debian package providing the default source.
const SourcePackage = "linux-source"

// Source is a Linux kernel source: a tree, or a tarball holding one.
type Source struct {
	// Path is the directory or the tarball, absolute.
	Path string
	// Tarball is set when Path is a file to extract.
	Tarball bool
}

// ResolveSource returns the source spec names: a kernel source directory,
// a tarball (any compression tar understands), or, when spec is "", the
// newest tarball matching glob (DefaultSourceGlob when ""). A missing
// default source is a *MissingError naming SourcePackage.
func ResolveSource(spec, glob string) (Source, error) {
	if spec == "" {
		return defaultSource(glob)
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return Source{}, fmt.Errorf("kernel source %s: %w", spec, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Source{}, fmt.Errorf("kernel source: %w", err)
	}
	switch {
	case fi.IsDir():
		if err := CheckTree(abs); err != nil {
			return Source{}, err
		}
		return Source{Path: abs}, nil
	case fi.Mode().IsRegular():
		return Source{Path: abs, Tarball: true}, nil
	}
	return Source{}, fmt.Errorf("kernel source %s: not a directory or a tarball", spec)
}

func defaultSource(glob string) (Source, error) {
	if glob == "" {
		glob = DefaultSourceGlob
	}
	matches, err := filepath.Glob(glob)
	if err != nil {
		return Source{}, fmt.Errorf("kernel source %s: %w", glob, err)
	}
	if len(matches) == 0 {
		return Source{}, &MissingError{What: "a kernel source tarball (" + glob + ")", Packages: []string{SourcePackage}}
	}
	slices.SortFunc(matches, func(a, b string) int { return -kernel.CompareVersions(a, b) })
	return Source{Path: matches[0], Tarball: true}, nil
}

// treeMarkers are files every Linux source tree able to build for x86 has.
var treeMarkers = []string{"Makefile", "Kconfig", "arch/x86/Kconfig", "scripts/kconfig/Makefile"}

// CheckTree returns an error unless dir looks like a Linux kernel source
// tree that can build an x86 kernel.
func CheckTree(dir string) error {
	for _, m := range treeMarkers {
		if fi, err := os.Stat(filepath.Join(dir, m)); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a Linux kernel source tree (no %s)", dir, m)
		}
	}
	return nil
}

// Digest returns "sha256:<hex>" of the source: of a tarball's bytes, or of
// a tree's paths, modes, link targets and contents (skipping .git).
func (s Source) Digest(ctx context.Context) (string, error) {
	h := sha256.New()
	var err error
	if s.Tarball {
		err = hashFile(ctx, h, s.Path)
	} else {
		err = hashTree(ctx, h, s.Path)
	}
	if err != nil {
		return "", fmt.Errorf("hashing kernel source %s: %w", s.Path, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(ctx context.Context, h hash.Hash, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, ctxReader{ctx, f})
	return err
}

func hashTree(ctx context.Context, h hash.Hash, root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			fmt.Fprintf(h, "d %s\x00", rel)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %s\x00%s\x00", rel, target)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %s\x00%d\x00%d\x00", rel, fi.Mode().Perm()&0o111, fi.Size())
			return hashFile(ctx, h, path)
		}
		return nil
	})
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// extract unpacks the tarball src into dir and returns the kernel tree in
// it: dir itself or its single top-level directory.
func extract(ctx context.Context, src, dir string) (string, error) {
	if _, err := runTool(ctx, "", nil, "tar", "-xf", src, "-C", dir); err != nil {
		return "", fmt.Errorf("extracting %s: %w", src, err)
	}
	if CheckTree(dir) == nil {
		return dir, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 1 {
		tree := filepath.Join(dir, dirs[0])
		if CheckTree(tree) == nil {
			return tree, nil
		}
	}
	return "", fmt.Errorf("%s does not hold a Linux kernel source tree (want Makefile, Kconfig, arch/x86/Kconfig at its top or in its only directory)", src)
}

// errTail returns the last lines of a command's output for an error message.
func errTail(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// errNotExist reports whether err means a file is missing.
func errNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
