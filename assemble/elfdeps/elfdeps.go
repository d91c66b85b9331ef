// Package elfdeps finds the files a dynamically linked x86_64 Linux
// program needs to start: the program itself, its program interpreter
// (PT_INTERP, the dynamic loader ld.so) and every shared library it
// needs (DT_NEEDED), recursively, found the way glibc's ld.so finds them.
//
// The result is a list of files to place in a guest tree that has no
// distribution of its own, each at the path where the guest's loader
// will look for it. Symbolic links met on the way are reproduced as
// symbolic links (Debian's merged /usr: /lib -> usr/lib; the loader's
// /lib64/ld-linux-x86-64.so.2; libfoo.so.1 -> libfoo.so.1.2.3), so the
// guest tree has the shape of the host's and every path ld.so would
// try resolves there to the same file.
//
// # Search order
//
// For a DT_NEEDED name without a slash, each directory below is tried in
// turn, as glibc 2.36's ld.so does:
//
//  1. DT_RPATH of the object that needs the library, then of the object
//     that loaded that one, and so on up to the program; only when the
//     needing object has no DT_RUNPATH. An object with DT_RUNPATH has no
//     effective DT_RPATH.
//  2. Options.ExtraLibraryDirs, where ld.so would use LD_LIBRARY_PATH.
//     The host's LD_LIBRARY_PATH itself is not used: the image runs
//     elsewhere.
//  3. DT_RUNPATH of the object that needs the library (it does not apply
//     to the libraries those need).
//  4. The directories of ld.so.conf, standing in for /etc/ld.so.cache.
//  5. The default directories: /lib/x86_64-linux-gnu,
//     /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64, /lib, /usr/lib.
//     (Debian's ld.so searches the first two and the last two; /lib64
//     and /usr/lib64 are the defaults of other distributions.)
//
// Steps 4 and 5 are skipped for objects flagged DF_1_NODEFLIB. A name
// with a slash is a path and is not searched for. In names and paths the
// dynamic string tokens $ORIGIN (the directory of the object holding the
// entry: for the program its real path, for a library the path it was
// opened as), $LIB ("lib/x86_64-linux-gnu", as on Debian) and $PLATFORM
// ("x86_64") are expanded, also spelt ${ORIGIN}, ${LIB}, ${PLATFORM}.
// A candidate that is an ELF file for another architecture or class is
// skipped, as ld.so skips it; any other unusable candidate is an error.
//
// A needed name that matches the name, path or DT_SONAME of an object
// already loaded is not searched for again, and a file found twice under
// two names is loaded once: this also ends dependency cycles. Objects
// are processed breadth-first, as ld.so does.
//
// # Placement
//
// Every file keeps its host path in the guest, the program included:
// $ORIGIN entries and absolute DT_RPATH/DT_RUNPATH entries only work
// there. Regular files are listed at their real path (no symbolic link
// in it); the links leading there are Files of their own, and
// Result.Dirs lists the plain directories to create first. Paths are
// resolved as after chroot(Options.Root).
//
// # Parsing
//
// ELF files are read as ld.so and the kernel read them, through the ELF
// header and program headers (PT_INTERP, PT_DYNAMIC, PT_LOAD to map
// DT_STRTAB); section headers are not used, so stripped files work. The
// parser is a small one on top of debug/elf's types rather than
// debug/elf's File, which is not hardened: it reads through an
// io.ReaderAt, checks every offset and size against the file's size,
// caps what it reads (1 MiB of dynamic section, 1024 DT_NEEDED entries,
// 4 KiB per string, 1 MiB of strings per object, 4096 objects) and
// turns any panic into an error.
//
// # Not covered
//
// The glibc-hwcaps and legacy hwcap subdirectories (x86-64-v3, tls, ...)
// are not searched: the baseline library is what is copied, which the
// guest's ld.so then uses on any CPU. /etc/ld.so.cache is not read (the
// configuration it is built from is). Objects loaded with dlopen at run
// time cannot be seen in the ELF file: the caller has to add them, and
// ResolveObjects finds the libraries they need.
// A $ORIGIN in the program's own entries needs /proc in the guest, since
// ld.so reads /proc/self/exe to find it.
package elfdeps

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Options tunes Resolve.
type Options struct {
	// Root is the directory every absolute path is resolved under, as if
	// chroot(Root) had been called: "" or "/" is the host filesystem.
	// Tests point it at a fake tree.
	Root string

	// LDSoConf is the path, inside Root, of the ld.so.conf whose
	// directories are searched (step 4 of the search order). "" means
	// "/etc/ld.so.conf", which may be missing; a file named explicitly
	// must exist.
	LDSoConf string

	// ExtraLibraryDirs are absolute directories (inside Root) searched
	// after DT_RPATH and before DT_RUNPATH, where ld.so would search
	// LD_LIBRARY_PATH.
	ExtraLibraryDirs []string
}

// File is one entry of the guest tree.
type File struct {
	// GuestPath is the absolute path in the guest. Its parent
	// directories are plain directories for the caller to create: the
	// host's symbolic links, directories included, are Files of their
	// own and never appear as a parent of another File.
	GuestPath string

	// HostPath is a path on the host whose content to copy, with no
	// symbolic links in it; empty for a symbolic link.
	HostPath string

	// Symlink, when not empty, makes GuestPath a symbolic link with this
	// target, verbatim from the host (absolute or relative).
	Symlink string

	// Mode is the host file's permission bits, plus fs.ModeSymlink for
	// a symbolic link.
	Mode fs.FileMode
}

// Library describes one shared library the program needs.
type Library struct {
	Name     string // the DT_NEEDED entry that first loaded it
	Path     string // the guest path ld.so opens: search directory + Name, or Name expanded when it has a slash
	Real     string // Path with its symbolic links resolved (the regular File)
	Soname   string // DT_SONAME, if any
	NeededBy string // guest path of the object whose DT_NEEDED loaded it first
}

// Result is what a program needs in the guest.
type Result struct {
	// Program is the guest path of the program: the path Resolve was
	// given, made absolute.
	Program string

	// Interp is the program interpreter (PT_INTERP) as the kernel will
	// look it up, "" for a static program.
	Interp string

	// Files holds the program, the interpreter, the libraries and the
	// symbolic links leading to them, sorted by GuestPath, without
	// duplicates.
	Files []File

	// Libraries lists the shared libraries in the order ld.so loads
	// them (breadth-first), without the interpreter.
	Libraries []Library

	// LibraryDirs lists the directories, in search order, in which
	// libraries were found through ExtraLibraryDirs, ld.so.conf or a
	// default directory that the guest's ld.so does not search by
	// itself (it has no ld.so.cache). The caller should make the guest
	// search them, e.g. with LD_LIBRARY_PATH. Directories from DT_RPATH
	// or DT_RUNPATH are not listed: the guest's ld.so finds them in the
	// objects, as on the host.
	LibraryDirs []string
}

// Dirs returns the directories the caller must create as plain
// directories before adding Files: every ancestor of a GuestPath but "/",
// sorted (parents before children) and unique. None of them is a
// symbolic link File.
func (r *Result) Dirs() []string {
	seen := map[string]bool{}
	var dirs []string
	for _, f := range r.Files {
		for d := path.Dir(f.GuestPath); d != "/" && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	return dirs
}

// Error kinds, for errors.Is. Errors from Resolve are one line, name the
// offending path, and also wrap the underlying cause (fs.ErrNotExist,
// fs.ErrPermission, ...) when there is one.
var (
	ErrNotFound         = errors.New("program not found")
	ErrNotELF           = errors.New("not an ELF program")
	ErrWrongArch        = errors.New("not an x86_64 ELF")
	ErrCorrupt          = errors.New("corrupt or truncated ELF")
	ErrNoInterpreter    = errors.New("program interpreter not found")
	ErrLibraryNotFound  = errors.New("shared library not found")
	ErrUnsupported      = errors.New("unsupported dynamic linking")
	errTooManyLibraries = errors.New("too many libraries")
)

// resolveError is an error with a one-line message, a kind and a cause.
type resolveError struct {
	msg   string
	kind  error
	cause error
}

func (e *resolveError) Error() string { return e.msg }

func (e *resolveError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// newError formats a one-line message: names and paths taken from ELF
// files may hold any byte, so non-printable characters are escaped.
func newError(kind, cause error, format string, args ...any) error {
	return &resolveError{msg: escapeNonPrintable(fmt.Sprintf(format, args...)), kind: kind, cause: cause}
}

// escapeNonPrintable replaces non-printable characters and invalid UTF-8
// in s by Go escapes (\n, \x00, ...).
func escapeNonPrintable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			q := strconv.Quote(s[i : i+n])
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// defaultLDSoConf is read when Options.LDSoConf is empty.
const defaultLDSoConf = "/etc/ld.so.conf"

// defaultDirs are searched last (step 5).
var defaultDirs = []string{
	"/lib/x86_64-linux-gnu",
	"/usr/lib/x86_64-linux-gnu",
	"/lib64",
	"/usr/lib64",
	"/lib",
	"/usr/lib",
}

// systemDirs are the directories Debian's x86_64 ld.so searches without
// an ld.so.cache (ld.so --help lists them); libraries found elsewhere
// through ExtraLibraryDirs, ld.so.conf or defaultDirs are reported in
// Result.LibraryDirs.
var systemDirs = map[string]bool{
	"/lib/x86_64-linux-gnu":     true,
	"/usr/lib/x86_64-linux-gnu": true,
	"/lib":                      true,
	"/usr/lib":                  true,
}

// Values of the dynamic string tokens $LIB and $PLATFORM on Debian's
// x86_64 glibc.
const (
	dstLib      = "lib/x86_64-linux-gnu"
	dstPlatform = "x86_64"
)

// maxObjects caps the objects one program may load (a variable for
// tests).
var maxObjects = 4096

// Resolve finds the files the program at the given path needs to start
// in a guest: see the package documentation for how. A relative program
// path is relative to the working directory, or to Root's "/" when Root
// is set. A static program gives a Result with only the program (and the
// symbolic links on its path) and an empty Interp.
func Resolve(program string, opts Options) (*Result, error) {
	t, err := newTree(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("elfdeps: root %s: %w", opts.Root, err)
	}
	r := &resolver{t: t}
	return r.run(program, opts)
}

// LookPath finds a program the way a shell would: a name with a slash is
// returned as is; a bare name is searched in $PATH. The result is an
// absolute path when the search succeeds. Unlike exec.LookPath, a match
// found through a relative $PATH entry is refused, and the error says
// what to do.
func LookPath(name string) (string, error) {
	if name == "" {
		return "", newError(ErrNotFound, nil, "empty program name")
	}
	if strings.Contains(name, "/") {
		return name, nil
	}
	p, err := exec.LookPath(name)
	switch {
	case errors.Is(err, exec.ErrDot):
		return "", newError(ErrNotFound, err, "%s was found as %s through a relative directory in $PATH; pass ./%s or its absolute path", name, p, name)
	case err != nil:
		return "", newError(ErrNotFound, err, "%s is not in $PATH (%s); pass the program's path, e.g. ./%s", name, os.Getenv("PATH"), name)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", newError(ErrNotFound, err, "%s: %v", p, err)
	}
	return abs, nil
}

// object is an ELF object loaded into the simulated process.
type object struct {
	path   string // guest path as opened ("needed by" messages, $ORIGIN of libraries)
	real   string // guest path with links resolved: the identity of the file
	origin string // value of $ORIGIN
	info   *elfInfo
	loader *object // the object whose DT_NEEDED loaded this one; nil for the program

	rpath, runpath []string // expanded, computed on first use
	expanded       bool

	dlopened bool // loaded with dlopen (ResolveObjects); loader is the program
}

// resolver holds the state of one Resolve call.
type resolver struct {
	t       *tree
	extra   []string
	conf    []string
	files   map[string]File
	byName  map[string]*object // DT_NEEDED names, opened paths and sonames of loaded objects
	byReal  map[string]*object
	count   int
	libDirs []string
	libSeen map[string]bool
	res     *Result
	main    *object // the program, once loaded
}

// search kinds, for Result.LibraryDirs.
type dirKind int

const (
	fromRPath dirKind = iota
	fromExtra
	fromRunPath
	fromConf
	fromDefault
)

type searchDir struct {
	dir  string
	kind dirKind
}

func (r *resolver) run(program string, opts Options) (*Result, error) {
	r.files = map[string]File{}
	r.byName = map[string]*object{}
	r.byReal = map[string]*object{}
	r.libSeen = map[string]bool{}
	r.res = &Result{}

	prog, err := r.absPath(program)
	if err != nil {
		return nil, newError(ErrNotFound, err, "%s: %v", program, err)
	}
	for _, d := range opts.ExtraLibraryDirs {
		a, err := r.absPath(d)
		if err != nil {
			return nil, fmt.Errorf("library directory %s: %w", d, err)
		}
		r.extra = append(r.extra, trimSlashes(a))
	}
	conf, mustExist := opts.LDSoConf, true
	if conf == "" {
		conf, mustExist = defaultLDSoConf, false
	}
	if !strings.HasPrefix(conf, "/") {
		return nil, fmt.Errorf("ld.so.conf path %s is not absolute", conf)
	}
	if r.conf, err = readLDSoConf(r.t, conf, mustExist); err != nil {
		return nil, fmt.Errorf("ld.so.conf: %w", err)
	}

	main, err := r.loadProgram(prog)
	if err != nil {
		return nil, err
	}
	r.main = main
	if main.info.HasInterp {
		if err := r.loadInterp(main); err != nil {
			return nil, err
		}
		if err := r.loadDeps(main); err != nil {
			return nil, err
		}
	}

	for _, f := range r.files {
		r.res.Files = append(r.res.Files, f)
	}
	sort.Slice(r.res.Files, func(i, j int) bool { return r.res.Files[i].GuestPath < r.res.Files[j].GuestPath })
	r.res.LibraryDirs = r.orderedLibDirs()
	return r.res, nil
}

// absPath makes p absolute: against the working directory on the host,
// against "/" in a fake root. It does not clean "..", which the walk
// resolves physically.
func (r *resolver) absPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.HasPrefix(p, "/") {
		return p, nil
	}
	if r.t.root != "" {
		return "/" + p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(wd, "/") + "/" + p, nil
}

// addFiles records the links of a walk and the regular file it ends at.
func (r *resolver) addFiles(w *resolved) {
	for _, l := range w.Links {
		if _, ok := r.files[l.GuestPath]; !ok {
			r.files[l.GuestPath] = l
		}
	}
	if _, ok := r.files[w.Real]; !ok {
		r.files[w.Real] = File{GuestPath: w.Real, HostPath: r.t.host(w.Real), Mode: w.Info.Mode().Perm()}
	}
}

// openELF opens and parses the regular file at the resolved path.
func (r *resolver) openELF(real string) (*elfInfo, error) {
	f, err := r.t.doOpen(r.t.host(real))
	if err != nil {
		return nil, unwrapPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unwrapPathError(err)
	}
	info, err := parseELF(f, fi.Size())
	if err != nil {
		var ce *corruptError
		var ae *archError
		if !errors.Is(err, errNotELF) && !errors.As(err, &ce) && !errors.As(err, &ae) {
			return nil, unwrapPathError(err)
		}
		if errors.Is(err, errNotELF) && isScript(f) {
			return nil, errScript
		}
	}
	return info, err
}

var errScript = errors.New("a #! script")

func isScript(f readerFile) bool {
	var b [2]byte
	n, _ := f.ReadAt(b[:], 0)
	return n == 2 && string(b[:]) == "#!"
}

// describeELFError turns a parse or open error about the file at p into
// the tail of a message and an error kind.
func describeELFError(p string, err error) (string, error) {
	var ae *archError
	var ce *corruptError
	switch {
	case errors.As(err, &ae):
		d := ae.describe()
		return fmt.Sprintf("%s is %s %s ELF", p, article(d), d), ErrWrongArch
	case errors.As(err, &ce):
		return fmt.Sprintf("%s is a corrupt or truncated ELF file: %s", p, ce.msg), ErrCorrupt
	case errors.Is(err, errScript):
		return fmt.Sprintf("%s is a #! script, not an ELF file", p), ErrNotELF
	case errors.Is(err, errNotELF):
		return fmt.Sprintf("%s is not an ELF file", p), ErrNotELF
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("cannot read %s: %v", p, err), nil
	}
	return fmt.Sprintf("%s: %v", p, err), nil
}

// article returns "a" or "an" for a phrase starting like the ones
// describe returns.
func article(s string) string {
	if s == "" {
		return "a"
	}
	switch c := s[0]; {
	case strings.ContainsRune("aeiouxAEIOUX", rune(c)), strings.HasPrefix(s, "s390"):
		return "an"
	}
	return "a"
}

func (r *resolver) loadProgram(prog string) (*object, error) {
	w, err := r.t.walk(prog)
	if err != nil {
		if isNotFound(err) {
			return nil, newError(ErrNotFound, err, "%s does not exist", prog)
		}
		return nil, newError(ErrNotFound, err, "%s: %v", prog, unwrapPathError(err))
	}
	switch {
	case w.Info.IsDir():
		return nil, newError(ErrNotELF, nil, "%s is a directory, not a program", prog)
	case !w.Info.Mode().IsRegular():
		return nil, newError(ErrNotELF, nil, "%s is not a regular file", prog)
	}
	info, err := r.openELF(w.Real)
	if err != nil {
		msg, kind := describeELFError(prog, err)
		var ae *archError
		if errors.As(err, &ae) && ae.Class == elf.ELFCLASS32 {
			msg += "; nos images run 64-bit x86_64 programs"
		} else if kind == ErrWrongArch {
			msg += "; nos images run x86_64 programs"
		}
		return nil, newError(kind, err, "%s", msg)
	}
	switch info.Type {
	case elf.ET_EXEC, elf.ET_DYN:
	case elf.ET_REL:
		return nil, newError(ErrNotELF, nil, "%s is a relocatable object file, not a program", prog)
	case elf.ET_CORE:
		return nil, newError(ErrNotELF, nil, "%s is a core dump, not a program", prog)
	default:
		return nil, newError(ErrNotELF, nil, "%s is an ELF file of type %v, not a program", prog, info.Type)
	}
	if info.Type == elf.ET_DYN && info.Entry == 0 {
		return nil, newError(ErrNotELF, nil, "%s is a shared library, not a program", prog)
	}
	if !info.HasInterp && len(info.Needed) > 0 {
		return nil, newError(ErrUnsupported, nil, "%s needs shared libraries (%s) but has no program interpreter (PT_INTERP), so it cannot run", prog, info.Needed[0])
	}
	r.addFiles(w)
	if !strings.Contains("/"+prog+"/", "/../") {
		r.res.Program = path.Clean(prog)
	} else {
		r.res.Program = w.Real
	}
	main := &object{path: r.res.Program, real: w.Real, origin: path.Dir(w.Real), info: info}
	r.byReal[w.Real] = main
	r.count++
	return main, nil
}

func (r *resolver) loadInterp(main *object) error {
	ip := main.info.Interp
	if !strings.HasPrefix(ip, "/") {
		return newError(ErrUnsupported, nil, "%s has a relative program interpreter %q, which the kernel looks up from the working directory; nos needs an absolute path", main.path, ip)
	}
	w, err := r.t.walk(ip)
	if err != nil {
		if isNotFound(err) {
			return newError(ErrNoInterpreter, err, "%s needs the program interpreter %s, which is not on this host", main.path, ip)
		}
		return newError(ErrNoInterpreter, err, "%s needs the program interpreter %s: %v", main.path, ip, unwrapPathError(err))
	}
	if !w.Info.Mode().IsRegular() {
		return newError(ErrNoInterpreter, nil, "%s needs the program interpreter %s, which is not a regular file", main.path, ip)
	}
	info, err := r.openELF(w.Real)
	if err != nil {
		msg, kind := describeELFError(ip, err)
		return newError(kind, err, "%s needs the program interpreter %s: %s", main.path, ip, msg)
	}
	if info.Type != elf.ET_DYN && info.Type != elf.ET_EXEC {
		return newError(ErrNotELF, nil, "%s needs the program interpreter %s, which is not an executable (%v)", main.path, ip, info.Type)
	}
	r.addFiles(w)
	r.res.Interp = ip
	o := &object{path: ip, real: w.Real, origin: dirname(ip), info: info}
	r.register(o, ip)
	return nil
}

// register records a loaded object under its real path, the name it was
// loaded as, its opened path and its soname.
func (r *resolver) register(o *object, name string) {
	r.byReal[o.real] = o
	for _, n := range []string{name, o.path, o.info.Soname} {
		if _, ok := r.byName[n]; n != "" && !ok {
			r.byName[n] = o
		}
	}
	r.count++
}

// loadDeps loads the program's dependencies breadth-first.
func (r *resolver) loadDeps(main *object) error {
	queue := []*object{main}
	for len(queue) > 0 {
		o := queue[0]
		queue = queue[1:]
		for _, name := range o.info.Needed {
			if _, ok := r.byName[name]; ok {
				continue
			}
			lib, isNew, err := r.find(name, o)
			if err != nil {
				return err
			}
			if isNew {
				queue = append(queue, lib)
			}
		}
	}
	return nil
}

// chain describes where an object comes from, for error messages:
// "/usr/lib/libfoo.so.1 (needed by /usr/bin/app)".
// For an object loaded with dlopen: "/usr/lib/x.so (loaded with dlopen
// by /usr/bin/app)".
func chain(o *object) string {
	if o.loader == nil {
		return o.path
	}
	if o.dlopened {
		return o.path + " (loaded with dlopen by " + o.loader.path + ")"
	}
	var by []string
	l := o.loader
	for ; l != nil; l = l.loader {
		by = append(by, l.path)
		if l.dlopened {
			break
		}
	}
	s := o.path + " (needed by " + strings.Join(by, " <- ")
	if l != nil && l.dlopened {
		s += ", loaded with dlopen by " + l.loader.path
	}
	return s + ")"
}

// candidate is a file that may be the library.
type candidate struct {
	path string // as ld.so opens it
	dir  searchDir
}

// find locates the library name that loader needs, loads it if it is a
// new file and reports whether it is.
func (r *resolver) find(name string, loader *object) (*object, bool, error) {
	var cands []candidate
	if strings.Contains(name, "/") {
		p := expandDST(name, loader.origin)
		if !strings.HasPrefix(p, "/") {
			return nil, false, newError(ErrUnsupported, nil, "%s needs %s, a path relative to the working directory at run time, which nos cannot follow", chain(loader), name)
		}
		cands = []candidate{{path: p, dir: searchDir{dir: "", kind: fromRPath}}}
	} else {
		for _, d := range r.searchDirs(loader) {
			cands = append(cands, candidate{path: joinDir(d.dir, name), dir: d})
		}
	}

	var skipped []string
	skippedReal := map[string]bool{}
	for _, c := range cands {
		w, err := r.t.walk(c.path)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return nil, false, newError(nil, err, "%s needs %s: %s: %v", chain(loader), name, c.path, unwrapPathError(err))
		}
		if !w.Info.Mode().IsRegular() {
			continue
		}
		if o, ok := r.byReal[w.Real]; ok {
			// The same file under another name: ld.so opens it,
			// compares device and inode numbers and reuses the loaded
			// object. The path must still lead to it in the guest.
			r.addFiles(w)
			r.byName[name] = o
			return o, false, nil
		}
		info, err := r.openELF(w.Real)
		if err != nil {
			var ae *archError
			if errors.As(err, &ae) && !strings.Contains(name, "/") {
				if !skippedReal[w.Real] {
					skippedReal[w.Real] = true
					d := ae.describe()
					skipped = append(skipped, fmt.Sprintf("%s is %s %s ELF", c.path, article(d), d))
				}
				continue
			}
			msg, kind := describeELFError(c.path, err)
			return nil, false, newError(kind, err, "%s needs %s: %s", chain(loader), name, msg)
		}
		if info.Type != elf.ET_DYN {
			return nil, false, newError(ErrNotELF, nil, "%s needs %s: %s is not a shared library (%v)", chain(loader), name, c.path, info.Type)
		}
		if r.count >= maxObjects {
			return nil, false, newError(errTooManyLibraries, nil, "%s needs more than %d shared libraries", r.res.Program, maxObjects)
		}
		o := &object{path: c.path, real: w.Real, origin: dirname(c.path), info: info, loader: loader}
		r.register(o, name)
		r.addFiles(w)
		r.res.Libraries = append(r.res.Libraries, Library{
			Name: name, Path: c.path, Real: w.Real, Soname: info.Soname, NeededBy: loader.path,
		})
		switch c.dir.kind {
		case fromExtra, fromConf, fromDefault:
			if !systemDirs[c.dir.dir] && !r.libSeen[c.dir.dir] {
				r.libSeen[c.dir.dir] = true
				r.libDirs = append(r.libDirs, c.dir.dir)
			}
		}
		return o, true, nil
	}

	if strings.Contains(name, "/") {
		return nil, false, newError(ErrLibraryNotFound, fs.ErrNotExist, "%s needs %s, which does not exist", chain(loader), cands[0].path)
	}
	msg := fmt.Sprintf("%s needs %s, which is not in RUNPATH/RPATH, ld.so.conf or the default library directories; install it or pass --add", chain(loader), name)
	if len(skipped) > 0 {
		msg += " (skipped " + strings.Join(skipped, "; ") + ")"
	}
	return nil, false, newError(ErrLibraryNotFound, fs.ErrNotExist, "%s", msg)
}

// searchDirs lists the directories to search for a library loader needs.
func (r *resolver) searchDirs(loader *object) []searchDir {
	var dirs []searchDir
	if !loader.info.HasRunPath {
		for l := loader; l != nil; l = l.loader {
			for _, d := range r.paths(l).rpath {
				dirs = append(dirs, searchDir{d, fromRPath})
			}
		}
	}
	for _, d := range r.extra {
		dirs = append(dirs, searchDir{d, fromExtra})
	}
	for _, d := range r.paths(loader).runpath {
		dirs = append(dirs, searchDir{d, fromRunPath})
	}
	nodeflib := loader.info.Flags1&uint64(elf.DF_1_NODEFLIB) != 0
	for _, d := range r.conf {
		if nodeflib && isDefaultDir(d) {
			continue
		}
		dirs = append(dirs, searchDir{d, fromConf})
	}
	if !nodeflib {
		for _, d := range defaultDirs {
			dirs = append(dirs, searchDir{d, fromDefault})
		}
	}
	return dirs
}

func isDefaultDir(d string) bool {
	for _, x := range defaultDirs {
		if x == d {
			return true
		}
	}
	return false
}

// paths expands an object's DT_RPATH and DT_RUNPATH once.
func (r *resolver) paths(o *object) *object {
	if !o.expanded {
		o.expanded = true
		o.rpath = splitSearchPath(o.info.RPath, o.origin)
		o.runpath = splitSearchPath(o.info.RunPath, o.origin)
	}
	return o
}

// splitSearchPath splits a DT_RPATH or DT_RUNPATH value at colons and
// expands the dynamic string tokens. Empty and relative entries, which
// ld.so resolves against the working directory at run time, are dropped.
func splitSearchPath(s, origin string) []string {
	if s == "" {
		return nil
	}
	var dirs []string
	for _, e := range strings.Split(s, ":") {
		e = expandDST(e, origin)
		if !strings.HasPrefix(e, "/") {
			continue
		}
		dirs = append(dirs, trimSlashes(e))
	}
	return dirs
}

// expandDST replaces the dynamic string tokens $ORIGIN, $LIB and
// $PLATFORM, or their ${...} spellings, in s. Like ld.so, an unbraced
// token followed by a letter, digit or underscore is another name, and
// unknown names stay as they are.
func expandDST(s, origin string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		rest := s[i+1:]
		matched := false
		for _, tok := range []struct{ name, value string }{
			{"ORIGIN", origin}, {"PLATFORM", dstPlatform}, {"LIB", dstLib},
		} {
			if n := dstLen(rest, tok.name); n > 0 {
				b.WriteString(tok.value)
				i += 1 + n
				matched = true
				break
			}
		}
		if !matched {
			b.WriteByte('$')
			i++
		}
	}
	return b.String()
}

// dstLen returns the length of the token name at the start of s (after
// the "$"), braces included, or 0 when s does not start with it.
func dstLen(s, name string) int {
	if strings.HasPrefix(s, "{") {
		if strings.HasPrefix(s[1:], name+"}") {
			return len(name) + 2
		}
		return 0
	}
	if !strings.HasPrefix(s, name) {
		return 0
	}
	if len(s) > len(name) {
		c := s[len(name)]
		if c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return 0
		}
	}
	return len(name)
}

// dirname returns p without its last element, as ld.so computes $ORIGIN:
// unlike path.Dir it does not clean the result ("/a/b/../lib/x.so" gives
// "/a/b/../lib", which the kernel resolves physically).
func dirname(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func joinDir(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// orderedLibDirs returns the library directories in search order:
// ExtraLibraryDirs, then ld.so.conf, then the defaults.
func (r *resolver) orderedLibDirs() []string {
	if len(r.libDirs) == 0 {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, group := range [][]string{r.extra, r.conf, defaultDirs} {
		for _, d := range group {
			if r.libSeen[d] && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}
