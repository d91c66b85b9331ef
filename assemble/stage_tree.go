package assemble

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nosproject/nos/assemble/elfdeps"
	"github.com/nosproject/nos/guestapi"
)

// A tree image holds an application as a tree of files (a dynamically
// linked program with its libraries, a root directory, a container image)
// on a read-only erofs root disk (Layout OnRootDisk).

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

// addAdd copies an --add file or directory tree into the tree.
func (s *stage) addAdd(a Add) error {
	dir, _, err := a.stat()
	if err != nil {
		return err
	}
	if dir {
		err = s.addTree(a.Guest, a.Host)
	} else {
		err = s.addFile(a.Guest, a.Host)
	}
	if err != nil {
		return a.errorf(err)
	}
	return nil
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
