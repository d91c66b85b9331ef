package elfdeps

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
)

// ResolveObjects extends base, the Result of Resolve(base.Program, opts),
// with the shared libraries needed by objs: ELF shared objects that the
// program loads at run time with dlopen (Python extension modules, NSS
// modules, nginx modules, ...). Paths in objs are taken as Resolve takes
// the program: inside opts.Root, relative ones against the working
// directory (or Root's "/").
//
// Each object is resolved as if the program had just dlopen'ed it, by
// its absolute path, and nothing else: its DT_NEEDED libraries, and
// theirs, are searched for with the rules of the package documentation,
// the object counting as loaded by the program. So its own DT_RPATH (when
// it has no DT_RUNPATH) is followed by the program's; its DT_RUNPATH
// applies to its own needs only; $ORIGIN is the directory of the path
// given. A library that matches an object already in base (by name,
// path, soname or file) is not searched for again. Objects are resolved
// independently of each other, so the result holds what each one needs
// whatever order the program loads them in.
//
// The objects themselves are not added to Files, since the caller copies
// them already, at their paths (one is, with the links leading to it,
// when another object or library needs it); a library path found through
// an object's $ORIGIN may go through the object's directory. Directories, other non-regular files, dangling
// symbolic links, files that are not ELF, ELF files for another
// architecture and ELF files that dlopen refuses (executables, including
// PIEs, relocatable objects, core dumps) are skipped, so that whole
// directory trees can be passed; an object path that does not exist is an
// error (ErrNotFound), as is a corrupt ELF object (ErrCorrupt) or a
// needed library that cannot be found (ErrLibraryNotFound, naming the
// object and the library).
//
// The returned Result is new; base is not modified. Its Files are base's
// and the new ones, sorted and unique; Libraries lists base's and then
// the new ones, each file once, in the order found (NeededBy names the
// object or library that needed it); LibraryDirs is recomputed.
func ResolveObjects(base *Result, objs []string, opts Options) (*Result, error) {
	if base == nil || base.Program == "" {
		return nil, errors.New("elfdeps: ResolveObjects needs the Result of Resolve")
	}
	t, err := newTree(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("elfdeps: root %s: %w", opts.Root, err)
	}
	// Rebuild the loaded objects of the program: ld.so's state when the
	// program calls dlopen.
	r := &resolver{t: t}
	again, err := r.run(base.Program, opts)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(realsOf(again.Libraries), realsOf(base.Libraries)) || again.Interp != base.Interp {
		return nil, fmt.Errorf("elfdeps: %s resolves to other libraries than in the result given; pass the options it was resolved with", base.Program)
	}
	for _, f := range base.Files {
		if _, ok := r.files[f.GuestPath]; !ok {
			r.files[f.GuestPath] = f
		}
	}
	r.res.Libraries = slices.Clone(base.Libraries)
	baseByName, baseByReal, baseCount := r.byName, r.byReal, r.count

	done := map[string]bool{} // real paths of the objects resolved
	for _, p := range objs {
		o, err := r.openObject(p)
		if err != nil {
			return nil, err
		}
		if o == nil || done[o.real] {
			continue
		}
		done[o.real] = true
		if _, ok := baseByReal[o.real]; ok {
			continue // already loaded by the program with all it needs
		}
		r.byName = maps.Clone(baseByName)
		r.byReal = maps.Clone(baseByReal)
		r.count = baseCount
		r.register(o, o.path)
		if err := r.loadDeps(o); err != nil {
			return nil, err
		}
	}

	res := &Result{Program: base.Program, Interp: base.Interp}
	seen := map[string]bool{}
	for _, l := range r.res.Libraries {
		if !seen[l.Real] {
			seen[l.Real] = true
			res.Libraries = append(res.Libraries, l)
		}
	}
	for _, f := range r.files {
		res.Files = append(res.Files, f)
	}
	sort.Slice(res.Files, func(i, j int) bool { return res.Files[i].GuestPath < res.Files[j].GuestPath })
	res.LibraryDirs = r.orderedLibDirs()
	return res, nil
}

func realsOf(libs []Library) []string {
	out := make([]string, len(libs))
	for i, l := range libs {
		out[i] = l.Real
	}
	return out
}

// openObject opens the object at p for ResolveObjects. It returns nil,
// nil for a file that is to be skipped.
func (r *resolver) openObject(p string) (*object, error) {
	abs, err := r.absPath(p)
	if err != nil {
		return nil, newError(ErrNotFound, err, "%s: %v", p, err)
	}
	w, err := r.t.walk(abs)
	if err != nil {
		if isNotFound(err) {
			if r.danglingLink(abs) {
				return nil, nil
			}
			return nil, newError(ErrNotFound, err, "%s does not exist", abs)
		}
		return nil, newError(ErrNotFound, err, "%s: %v", abs, unwrapPathError(err))
	}
	if !w.Info.Mode().IsRegular() {
		return nil, nil
	}
	info, err := r.openELF(w.Real)
	if err != nil {
		var ae *archError
		if errors.Is(err, errNotELF) || errors.Is(err, errScript) || errors.As(err, &ae) {
			return nil, nil
		}
		msg, kind := describeELFError(abs, err)
		return nil, newError(kind, err, "%s", msg)
	}
	if info.Type != elf.ET_DYN || info.Flags1&uint64(elf.DF_1_PIE) != 0 {
		return nil, nil // dlopen refuses it
	}
	op := path.Clean(abs)
	if strings.Contains(abs+"/", "/../") {
		op = w.Real // as Resolve names the program
	}
	return &object{path: op, real: w.Real, origin: dirname(op), info: info, loader: r.main, dlopened: true}, nil
}

// danglingLink reports whether the absolute path p, which does not
// resolve, ends in a symbolic link inside a directory that exists.
func (r *resolver) danglingLink(p string) bool {
	p = trimSlashes(p)
	dir, name := dirname(p), p[strings.LastIndexByte(p, '/')+1:]
	if name == "" || name == "." || name == ".." {
		return false
	}
	w, err := r.t.walk(dir)
	if err != nil || !w.Info.IsDir() {
		return false
	}
	fi, err := r.t.doLstat(r.t.host(joinDir(w.Real, name)))
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}
