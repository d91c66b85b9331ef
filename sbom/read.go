package sbom

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/cavaliergopher/cpio"
	"github.com/nosproject/nos/internal/initrdz"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/image"
)

// Inventory is what an image holds, as its bill of materials lists it.
type Inventory struct {
	// Name, Tag and Digest (the manifest's) name the image.
	Name, Tag, Digest string
	Config            image.Config
	// Programs are the Go programs found in the image's files, sorted by
	// location and path.
	Programs []Program
	// Files holds the checksums of the files Config.Packages names and of
	// those under Config.Added, by guest path.
	Files map[string]File
	// Added lists the regular files under the --add paths, sorted.
	Added []File
}

// Program is a Go program in the image.
type Program struct {
	Path string // guest path
	// Location is LocationInitramfs or LocationRootDisk.
	Location string
	// Role is RoleInit (nos-init), RoleApp (the entrypoint) or "".
	Role      string
	GoVersion string
	Main      Module
	Deps      []Module
	SHA256    string
}

// Module is a Go module a program was built from.
type Module struct {
	Path, Version, Sum string
}

// File is a regular file of the image.
type File struct {
	Path         string
	Size         int64
	SHA1, SHA256 string
}

// Where files are, and what a program is for.
const (
	LocationInitramfs = "initramfs"
	LocationRootDisk  = "root disk"
	RoleInit          = "nos-init"
	RoleApp           = "application"
)

// Limits of what is read from an image's layers: a file larger than
// maxFileSize is neither hashed in memory nor searched for build
// information.
const maxFileSize = 1 << 30

// ReadOptions tune Read.
type ReadOptions struct {
	// TempDir is where a root disk is unpacked; "" is os.TempDir().
	TempDir string
	// FsckErofs is the fsck.erofs program; "" looks it up on PATH.
	FsckErofs string
}

// ErrNoErofsTool is wrapped when an image has a root disk and
// fsck.erofs, which unpacks it, is missing.
var ErrNoErofsTool = errors.New("fsck.erofs not found: install erofs-utils (sudo apt-get install erofs-utils)")

// Read takes the inventory of a stored image: its config, and the files
// of its initramfs and root disk.
func Read(ctx context.Context, im *bootable.Image, o ReadOptions) (*Inventory, error) {
	inv := &Inventory{Name: im.Ref.Name, Tag: im.Ref.Tag, Digest: im.Ref.Manifest.Digest.String(), Config: im.Config, Files: map[string]File{}}
	v := newVisitor(inv)
	f, err := os.Open(im.Initrd)
	if err != nil {
		return nil, fmt.Errorf("reading the initramfs: %w", err)
	}
	defer f.Close()
	if err := readInitramfs(ctx, f, v.visitor(LocationInitramfs), v.wants); err != nil {
		return nil, fmt.Errorf("reading the initramfs: %w", err)
	}
	if im.RootDisk != "" {
		if err := readRootDisk(ctx, im.RootDisk, o, v.visitor(LocationRootDisk)); err != nil {
			return nil, fmt.Errorf("reading the root disk: %w", err)
		}
	}
	v.finish()
	return inv, nil
}

// visitFunc is called for each regular file of a layer; r reads its
// size bytes.
type visitFunc func(p string, size int64, r io.ReaderAt) error

// visitor collects an inventory from the files of an image's layers.
type visitor struct {
	inv      *Inventory
	packaged map[string]bool
	added    []string
}

func newVisitor(inv *Inventory) *visitor {
	v := &visitor{inv: inv, packaged: map[string]bool{}}
	for _, p := range inv.Config.Packages {
		v.packaged[p.Path] = true
	}
	for _, a := range inv.Config.Added {
		v.added = append(v.added, path.Clean("/"+a))
	}
	return v
}

func (v *visitor) isAdded(p string) bool {
	for _, a := range v.added {
		if p == a || a == "/" || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}

// wants says whether a file with this path and first bytes is read.
func (v *visitor) wants(p string, head []byte) bool {
	return bytes.HasPrefix(head, []byte("\x7fELF")) || v.packaged[p] || v.isAdded(p)
}

func (v *visitor) visitor(loc string) visitFunc {
	return func(p string, size int64, r io.ReaderAt) error {
		hashed := v.packaged[p] || v.isAdded(p)
		prog, isGo := goProgram(r)
		if !hashed && !isGo {
			return nil
		}
		f, err := hashFile(p, size, r)
		if err != nil {
			return err
		}
		if hashed {
			v.inv.Files[p] = f
			if v.isAdded(p) {
				v.inv.Added = append(v.inv.Added, f)
			}
		}
		if isGo {
			prog.Path, prog.Location, prog.SHA256 = p, loc, f.SHA256
			switch {
			case loc == LocationInitramfs && p == image.InitPath:
				prog.Role = RoleInit
			case len(v.inv.Config.Entrypoint) > 0 && p == path.Clean(v.inv.Config.Entrypoint[0]):
				prog.Role = RoleApp
			}
			v.inv.Programs = append(v.inv.Programs, prog)
		}
		return nil
	}
}

func (v *visitor) finish() {
	loc := func(l string) int {
		if l == LocationInitramfs {
			return 0
		}
		return 1
	}
	sort.SliceStable(v.inv.Programs, func(i, j int) bool {
		a, b := v.inv.Programs[i], v.inv.Programs[j]
		if a.Location != b.Location {
			return loc(a.Location) < loc(b.Location)
		}
		return a.Path < b.Path
	})
	slices.SortFunc(v.inv.Added, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	v.inv.Added = slices.CompactFunc(v.inv.Added, func(a, b File) bool { return a.Path == b.Path })
}

func hashFile(p string, size int64, r io.ReaderAt) (File, error) {
	h1, h256 := sha1.New(), sha256.New()
	n, err := io.Copy(io.MultiWriter(h1, h256), io.NewSectionReader(r, 0, size))
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", p, err)
	}
	return File{Path: p, Size: n, SHA1: hex.EncodeToString(h1.Sum(nil)), SHA256: hex.EncodeToString(h256.Sum(nil))}, nil
}

// goProgram reads the build information of a Go program; ok is false for
// any other file. debug/buildinfo parses the ELF file with debug/elf,
// which is not hardened against hostile input: a panic is no program.
func goProgram(r io.ReaderAt) (prog Program, ok bool) {
	defer func() {
		if recover() != nil {
			prog, ok = Program{}, false
		}
	}()
	bi, err := buildinfo.Read(r)
	if err != nil {
		return Program{}, false
	}
	prog = Program{GoVersion: bi.GoVersion, Main: Module{Path: bi.Main.Path, Version: bi.Main.Version, Sum: bi.Main.Sum}}
	if prog.Main.Path == "" {
		prog.Main.Path = bi.Path // a program built from files, not a module
	}
	for _, d := range bi.Deps {
		m := d
		if d.Replace != nil {
			m = d.Replace // what was compiled in
		}
		prog.Deps = append(prog.Deps, Module{Path: m.Path, Version: m.Version, Sum: m.Sum})
	}
	slices.SortFunc(prog.Deps, func(a, b Module) int { return strings.Compare(a.Path+"@"+a.Version, b.Path+"@"+b.Version) })
	return prog, true
}

// readInitramfs visits the regular files of a compressed newc cpio
// archive (LZ4, or gzip as nos wrote them before). Files are read into
// memory only when wanted.
func readInitramfs(ctx context.Context, r io.Reader, visit visitFunc, wants func(string, []byte) bool) error {
	zr, err := initrdz.NewReader(r)
	if err != nil {
		return err
	}
	defer zr.Close()
	return readCpio(ctx, zr, visit, wants)
}

// readCpio visits the regular files of a cpio archive; wants, when not
// nil, is asked first from a file's path and first bytes.
func readCpio(ctx context.Context, r io.Reader, visit visitFunc, wants func(string, []byte) bool) error {
	cr := cpio.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := cr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !hdr.Mode.IsRegular() || hdr.Size <= 0 || hdr.Size > maxFileSize {
			continue
		}
		p := path.Clean("/" + hdr.Name)
		head := make([]byte, min(hdr.Size, 4))
		if _, err := io.ReadFull(cr, head); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if wants != nil && !wants(p, head) {
			continue
		}
		rest, err := io.ReadAll(io.LimitReader(cr, hdr.Size-int64(len(head))))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		data := append(head, rest...)
		if int64(len(data)) != hdr.Size {
			return fmt.Errorf("%s: %w", p, io.ErrUnexpectedEOF)
		}
		if err := visit(p, hdr.Size, bytes.NewReader(data)); err != nil {
			return err
		}
	}
}

// readRootDisk unpacks the erofs root disk with fsck.erofs into a
// temporary directory, which it removes, and visits its regular files.
func readRootDisk(ctx context.Context, disk string, o ReadOptions, visit visitFunc) error {
	bin := o.FsckErofs
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("fsck.erofs"); err != nil {
			return ErrNoErofsTool
		}
	}
	tmp, err := os.MkdirTemp(o.TempDir, "nos-sbom-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "root")
	cmd := exec.CommandContext(ctx, bin, "--extract="+dir, "--no-preserve", disk)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fsck.erofs --extract: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return visitTree(ctx, dir, visit)
}

// visitTree visits the regular files under dir, named by their path
// below it; symbolic links are not followed.
func visitTree(ctx context.Context, dir string, visit visitFunc) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || fi.Size() == 0 || fi.Size() > maxFileSize {
			return err
		}
		return visit("/"+filepath.ToSlash(rel), fi.Size(), f)
	})
}
