package assemble

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"

	"github.com/nosproject/nos/assemble/elfdeps"
	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/oci"
)

// A tree image holds an application as a tree of files (a dynamically
// linked program with its libraries, a root directory, a container image)
// on a read-only erofs root disk, which the init mounts and switches into.
// The files stay on the disk: the guest's page cache holds only what the
// application reads, where an initramfs would be copied whole into guest
// memory. Go programs and static executables, one file each, stay in the
// initramfs.

// Paths every tree image has: the init's mounts move onto the
// directories, and the files receive the guest's network identity.
var (
	treeDirs  = []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/etc"}
	treeFiles = []string{"/etc/resolv.conf", "/etc/hosts"}
)

// stage is the directory where a tree image's files are assembled. Every
// write goes through an os.Root, so that a symbolic link in the tree (a
// container image's /lib -> /usr/lib, or a hostile one) is resolved inside
// the tree and can never lead a write out to the host.
type stage struct {
	dir  string
	r    *os.Root
	root bool // running as root: owners are kept
}

func newStage(dir string) (*stage, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &stage{dir: dir, r: r, root: os.Geteuid() == 0}, nil
}

func (s *stage) close() { s.r.Close() }

// rel turns a guest path into a path relative to the tree's root.
func rel(guest string) string {
	r := strings.TrimPrefix(path.Clean("/"+guest), "/")
	if r == "" {
		return "."
	}
	return r
}

// mkdirAll creates guest directories (0755) that do not exist yet.
func (s *stage) mkdirAll(guest string) error {
	if rel(guest) == "." {
		return nil
	}
	return s.r.MkdirAll(rel(guest), 0o755)
}

// addFile copies the host file into the tree at guest, keeping its mode
// and, as root, its owners.
func (s *stage) addFile(guest, host string) error {
	fi, err := os.Stat(host)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", host)
	}
	if err := s.mkdirAll(path.Dir(guest)); err != nil {
		return err
	}
	_ = s.r.Remove(rel(guest))
	in, err := os.Open(host)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := s.r.OpenFile(rel(guest), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", host, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return s.setMeta(guest, fi)
}

// setMeta gives the guest path the host file's mode and, as root, owners.
func (s *stage) setMeta(guest string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && s.root {
		if err := s.r.Lchown(rel(guest), int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if fi.IsDir() && !s.root {
		mode |= 0o700 // the staging user must be able to fill it
	}
	return s.r.Chmod(rel(guest), mode)
}

func (s *stage) addSymlink(guest, target string) error {
	if err := s.mkdirAll(path.Dir(guest)); err != nil {
		return err
	}
	if t, err := s.r.Readlink(rel(guest)); err == nil && t == target {
		return nil
	}
	_ = s.r.Remove(rel(guest))
	return s.r.Symlink(target, rel(guest))
}

// exists reports whether the guest path exists, as a link or otherwise.
func (s *stage) exists(guest string) bool {
	_, err := s.r.Lstat(rel(guest))
	return err == nil
}

// addData writes a file with the given content unless one is there.
func (s *stage) addData(guest string, data []byte, mode fs.FileMode) error {
	if s.exists(guest) {
		return nil
	}
	if err := s.mkdirAll(path.Dir(guest)); err != nil {
		return err
	}
	f, err := s.r.OpenFile(rel(guest), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// addTree copies the host directory tree under the guest directory:
// directories, regular files, symbolic links as they are; devices, sockets
// and pipes are refused.
func (s *stage) addTree(guest, host string) error {
	host = filepath.Clean(host)
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		g := path.Join(guest, filepath.ToSlash(r))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch t := fi.Mode().Type(); {
		case t.IsDir() && rel(g) == ".":
			// The tree's root stays root's and 0755 whatever the source
			// directory's mode (often 0700 for a fresh temporary one).
			return nil
		case t.IsDir():
			if err := s.mkdirAll(g); err != nil {
				return err
			}
			return s.setMeta(g, fi)
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return s.addSymlink(g, target)
		case t.IsRegular():
			return s.addFile(g, p)
		default:
			return fmt.Errorf("%s: %s files are not supported in images", p, t)
		}
	})
}

// addAdd handles --add HOST[:GUEST]: a file or a directory tree; GUEST
// defaults to the host path.
func (s *stage) addAdd(spec string) error {
	host, guest, ok := strings.Cut(spec, ":")
	if !ok {
		guest = host
	}
	if host == "" || !path.IsAbs(guest) {
		return fmt.Errorf("--add %q: want HOST_PATH[:ABSOLUTE_GUEST_PATH]: %w", spec, ErrBadSource)
	}
	abs, err := filepath.Abs(host)
	if err != nil {
		return err
	}
	if !ok {
		guest = filepath.ToSlash(abs)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("--add %s: %w", spec, err)
	}
	if fi.IsDir() {
		err = s.addTree(guest, abs)
	} else {
		err = s.addFile(guest, abs)
	}
	if err != nil {
		return fmt.Errorf("--add %s: %w", spec, err)
	}
	return nil
}

// addDynamic adds a dynamically linked program with its interpreter and
// libraries, each where the guest's loader looks for it, and returns the
// program's guest path and the library directories the loader must be
// told about.
func (s *stage) addDynamic(program string) (*elfdeps.Result, error) {
	res, err := elfdeps.Resolve(program, elfdeps.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrBadSource)
	}
	return res, s.addResolved(res, nil)
}

// addResolved adds the files of res that are not in old.
func (s *stage) addResolved(res, old *elfdeps.Result) error {
	have := map[string]bool{}
	if old != nil {
		for _, f := range old.Files {
			have[f.GuestPath] = true
		}
	}
	for _, d := range res.Dirs() {
		if err := s.mkdirAll(d); err != nil {
			return err
		}
	}
	for _, f := range res.Files {
		if have[f.GuestPath] {
			continue
		}
		var err error
		if f.Symlink != "" {
			err = s.addSymlink(f.GuestPath, f.Symlink)
		} else {
			err = s.addFile(f.GuestPath, f.HostPath)
		}
		if err != nil {
			return fmt.Errorf("adding %s: %w", f.GuestPath, err)
		}
	}
	return nil
}

// addedObjects lists the shared objects among the --add paths (files
// whose name has ".so"), which the program may load with dlopen.
func addedObjects(adds []string) []string {
	var objs []string
	for _, spec := range adds {
		host, _, _ := strings.Cut(spec, ":")
		abs, err := filepath.Abs(host)
		if err != nil {
			continue
		}
		_ = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && strings.Contains(d.Name(), ".so") {
				objs = append(objs, p)
			}
			return nil
		})
	}
	return objs
}

// addBase makes what every tree image needs: the init's mount points, the
// files it rewrites, the users file and, from the host, CA certificates
// and time zones when the tree has none.
func (s *stage) addBase() error {
	for _, d := range treeDirs {
		if err := s.mkdirAll(d); err != nil {
			return fmt.Errorf("the image's root: %w", err)
		}
		if fi, err := s.r.Lstat(rel(d)); err != nil || !fi.IsDir() {
			return fmt.Errorf("the image's root: %s is not a directory", d)
		}
	}
	for _, f := range treeFiles {
		if err := s.addData(f, nil, 0o644); err != nil {
			return err
		}
	}
	for name, content := range etcFiles {
		if err := s.addData("/etc/"+name, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if !s.exists(hostCABundle) {
		if _, err := os.Stat(hostCABundle); err == nil {
			if err := s.addFile(hostCABundle, hostCABundle); err != nil {
				return err
			}
		}
	}
	if !s.exists(hostZoneinfo) {
		if fi, err := os.Stat(hostZoneinfo); err == nil && fi.IsDir() {
			if err := s.addTree(hostZoneinfo, hostZoneinfo); err != nil {
				return err
			}
		}
	}
	return nil
}

// mkfsErofs packs the tree into a read-only erofs image, LZ4-compressed,
// with fixed times and UUID so that the same tree gives the same image.
// Without root, owners are recorded as root (the files staged belong to
// the user running nos).
func mkfsErofs(ctx context.Context, dir, out string, asRoot bool) error {
	bin, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		return fmt.Errorf("mkfs.erofs not found: install erofs-utils (sudo apt-get install erofs-utils): %w", ErrBadSource)
	}
	args := []string{"-zlz4hc", "-T0", "-U", "6e6f7300-0000-4000-8000-000000000000", "-Enoinline_data"}
	if !asRoot {
		args = append(args, "--all-root")
	}
	cmd := exec.CommandContext(ctx, bin, append(args, out, dir)...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.erofs: %v: %s", err, tail(string(b), 10))
	}
	return nil
}

// lookupUser resolves an image user ("name", "uid", "name:group",
// "uid:gid") against the tree's /etc/passwd and /etc/group.
func (s *stage) lookupUser(spec string) (*guestapi.User, error) {
	return resolveUser(spec, s.readLimit("/etc/passwd"), s.readLimit("/etc/group"))
}

func (s *stage) readLimit(guest string) []byte {
	f, err := s.r.Open(rel(guest))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	return b
}

// ociSource extracts the container image ref into the stage and returns
// its configuration.
func (s *stage) addOCI(ctx context.Context, ref, tmp string) (oci.Config, error) {
	im, err := oci.Open(ctx, ref, oci.WithTempDir(tmp))
	if err != nil {
		return oci.Config{}, fmt.Errorf("%w: %w", err, ErrBadSource)
	}
	defer im.Close()
	c, err := im.Config()
	if err != nil {
		return c, err
	}
	if _, err := im.Extract(ctx, s.dir, oci.Limits{}); err != nil {
		return c, fmt.Errorf("%w: %w", err, ErrBadSource)
	}
	return c, nil
}

// isDynamicELF reports whether path is an ELF file with an interpreter.
func isDynamicELF(path string) bool {
	err := checkStaticELF(path)
	return errors.Is(err, ErrDynamicELF)
}

// parseEntrypoint reads --entrypoint: a JSON array of strings, or words
// separated by spaces.
func ParseEntrypoint(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil || len(argv) == 0 {
			return nil, fmt.Errorf("--entrypoint %s: want a JSON array of strings, e.g. [\"/bin/app\",\"-v\"], or words: %w", s, ErrBadSource)
		}
		return argv, nil
	}
	return strings.Fields(s), nil
}

// source is what an image is built from.
type source struct {
	kind string // "go", "static", "dynamic", "rootfs" or "oci"
	path string // the program, Go package or directory; the OCI reference
}

// tree reports whether the source's files go on a root disk.
func (s source) tree() bool { return s.kind == "dynamic" || s.kind == "rootfs" || s.kind == "oci" }

// classify tells what o builds: a container image, a root directory, an
// executable (a path, or a bare name found on PATH) or a Go package.
func classify(o Options) (source, error) {
	n := 0
	for _, s := range []string{o.Source, o.Rootfs, o.FromOCI} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return source{}, fmt.Errorf("nothing to build: give a Go main package, a program, --rootfs DIR or --from-oci REF: %w", ErrBadSource)
	case n > 1:
		return source{}, fmt.Errorf("give one of SOURCE, --rootfs and --from-oci: %w", ErrBadSource)
	case o.FromOCI != "":
		return source{kind: "oci", path: o.FromOCI}, nil
	case o.Rootfs != "":
		fi, err := os.Stat(o.Rootfs)
		if err != nil {
			return source{}, fmt.Errorf("--rootfs: %w", err)
		}
		if !fi.IsDir() {
			return source{}, fmt.Errorf("--rootfs %s is not a directory: %w", o.Rootfs, ErrBadSource)
		}
		if len(o.Entrypoint) == 0 {
			return source{}, fmt.Errorf("--rootfs needs --entrypoint: the command to run in the tree: %w", ErrBadSource)
		}
		return source{kind: "rootfs", path: o.Rootfs}, nil
	}
	p := o.Source
	if _, err := os.Stat(p); err != nil && !strings.Contains(p, "/") {
		// A bare name (python3.11 too) that is not a path here: a program
		// on PATH, else a Go package.
		if found, lerr := elfdeps.LookPath(p); lerr == nil {
			p = found
		}
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		if isDynamicELF(p) {
			return source{kind: "dynamic", path: p}, nil
		}
		if err := checkStaticELF(p); err != nil {
			return source{}, err
		}
		return source{kind: "static", path: p}, nil
	}
	return source{kind: "go", path: p}, nil
}

// fillTree puts a tree image's files in the stage and completes its
// config; it returns the image's default name.
func fillTree(ctx context.Context, st *stage, src source, o Options, cfg *image.Config, tmp string) (string, error) {
	var name string
	userSpec := o.User
	switch src.kind {
	case "dynamic":
		res, err := st.addDynamic(src.path)
		if err != nil {
			return "", err
		}
		// Shared objects given with --add (Python's extension modules,
		// NSS or nginx modules) are loaded with dlopen: their libraries
		// come too.
		if objs := addedObjects(o.Adds); len(objs) > 0 {
			more, err := elfdeps.ResolveObjects(res, objs, elfdeps.Options{})
			if err != nil {
				return "", fmt.Errorf("%w: %w", err, ErrBadSource)
			}
			if err := st.addResolved(more, res); err != nil {
				return "", err
			}
			res = more
		}
		name = defaultName(src.path)
		if len(cfg.Entrypoint) == 0 {
			cfg.Entrypoint = []string{res.Program}
		}
		if len(res.LibraryDirs) > 0 && !hasEnv(cfg.Env, "LD_LIBRARY_PATH") {
			cfg.Env = append([]string{"LD_LIBRARY_PATH=" + strings.Join(res.LibraryDirs, ":")}, cfg.Env...)
		}
	case "rootfs":
		if err := st.addTree("/", src.path); err != nil {
			return "", fmt.Errorf("--rootfs %s: %w", src.path, err)
		}
		abs, _ := filepath.Abs(src.path)
		name = defaultName(abs)
	case "oci":
		c, err := st.addOCI(ctx, src.path, tmp)
		if err != nil {
			return "", err
		}
		name = ociName(src.path)
		if len(cfg.Entrypoint) == 0 {
			cfg.Entrypoint = c.Entrypoint
			if len(cfg.Args) == 0 {
				cfg.Args = c.Cmd
			}
			if len(cfg.Entrypoint) == 0 { // a command alone, as docker runs it
				cfg.Entrypoint, cfg.Args = cfg.Args, nil
			}
		}
		cfg.Env = image.MergeEnv(c.Env, cfg.Env)
		if cfg.WorkingDir == "" {
			cfg.WorkingDir = c.WorkingDir
		}
		if userSpec == "" {
			userSpec = c.User
		}
		for _, p := range c.ExposedPorts {
			if !slices.Contains(cfg.ExposedPorts, p) {
				cfg.ExposedPorts = append(cfg.ExposedPorts, p)
			}
		}
	}
	for _, spec := range o.Adds {
		if err := st.addAdd(spec); err != nil {
			return "", err
		}
	}
	if err := st.addBase(); err != nil {
		return "", err
	}
	if len(cfg.Entrypoint) == 0 {
		return "", fmt.Errorf("the image has no command: give --entrypoint: %w", ErrBadSource)
	}
	u, err := st.lookupUser(userSpec)
	if err != nil {
		return "", err
	}
	cfg.User = u
	return name, nil
}

// ociName is the default image name for a container image reference: its
// last path element without tag or digest.
func ociName(ref string) string {
	ref = strings.TrimRight(ref, "/")
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	ref, _, _ = strings.Cut(ref, "@")
	ref, _, _ = strings.Cut(ref, ":")
	ref = strings.TrimSuffix(strings.TrimSuffix(ref, ".tar"), ".oci")
	return defaultName(ref)
}

// addToArchive adds --add HOST[:GUEST] to an initramfs.
func addToArchive(a *initramfs.Archive, spec string) error {
	host, guest, ok := strings.Cut(spec, ":")
	abs, err := filepath.Abs(host)
	if err != nil || host == "" || (ok && !path.IsAbs(guest)) {
		return fmt.Errorf("--add %q: want HOST_PATH[:ABSOLUTE_GUEST_PATH]: %w", spec, ErrBadSource)
	}
	if !ok {
		guest = filepath.ToSlash(abs)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("--add %s: %w", spec, err)
	}
	if fi.IsDir() {
		err = a.AddHostTree(guest, abs)
	} else {
		err = a.AddHostFile(guest, abs, fi.Mode().Perm())
	}
	if err != nil {
		return fmt.Errorf("--add %s: %w", spec, err)
	}
	return nil
}
