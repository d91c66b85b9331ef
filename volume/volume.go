// Package volume keeps named volumes: sparse ext4 disk images under
// $NOS_HOME/volumes that outlive the instances using them, as docker's
// named volumes do. A volume is made by e2fsprogs' mke2fs, attached to a
// VM as a virtio block device by the instance's monitor, and mounted by
// the guest init.
//
//	volumes/
//	  .lock                 held while volumes are created or removed
//	  <name>/disk.ext4      the file system, sparse
//	  <name>/volume.json    size, creation time, whether the last use ended cleanly
//	  <name>/attach.lock    flock held by the monitor using it: exclusive read-write, shared read-only
//	  <name>/holder         the instance holding it read-write
//
// A volume being made is built under a temporary name and renamed when
// formatted, so a killed create never leaves a volume a run would use.
package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/nosproject/nos/internal/check"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/internal/units"
)

// Errors callers test with errors.Is.
var (
	ErrNotFound = errors.New("no such volume")
	ErrExists   = errors.New("volume already exists")
	ErrInUse    = errors.New("volume in use")
	ErrBadInput = errors.New("invalid volume")
)

// DefaultSize is the size of a volume made without --size, as `nos run -v`
// makes them: sparse, so it costs only what is written.
const DefaultSize = 10 << 30

// MinSize is the smallest volume mke2fs makes a useful ext4 on.
const MinSize = 8 << 20

// Files in a volume's directory.
const (
	diskFile   = "disk.ext4"
	metaFile   = "volume.json"
	attachLock = "attach.lock"
	holderFile = "holder"
)

// Volume is one named volume.
type Volume struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"` // apparent size of the disk, bytes
	Created time.Time `json:"created"`
	// Fresh is set until the volume is first attached: the guest then
	// copies the image's files at the mount point into it (copy-up).
	Fresh bool `json:"fresh"`
	// Clean is false while a read-write attachment is live and after one
	// that did not end with the guest unmounting the file system.
	Clean bool `json:"clean"`
	// LastCleanUnmount is when the guest last unmounted it cleanly.
	LastCleanUnmount time.Time `json:"lastCleanUnmount,omitempty"`
	// Dir is the volume's directory.
	Dir string `json:"-"`
}

// Disk is the path of the volume's file system image.
func (v *Volume) Disk() string { return filepath.Join(v.Dir, diskFile) }

// Store is the directory of named volumes.
type Store struct {
	Dir string
}

// DiskOf is where the disk of volume name is (or would be).
func (s *Store) DiskOf(name string) string { return filepath.Join(s.Dir, name, diskFile) }

// Open returns the volume store in dir, creating it when missing.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the volumes directory: %w", err)
	}
	return &Store{Dir: dir}, nil
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// ValidName reports whether name may name a volume: docker's rule,
// letters, digits, '_', '.', '-', starting with a letter or digit.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// ParseSize parses a volume size: a number with k, m, g or t (optional b
// or ib, case-insensitive); a plain number is bytes.
func ParseSize(s string) (int64, error) {
	b, why := units.Parse(s, 1)
	if why == "" && b > 1<<50 {
		why = "larger than 1 PiB"
	}
	if why != "" {
		return 0, fmt.Errorf("size %q: %s; want a size such as 512m or 10g: %w", s, why, ErrBadInput)
	}
	n := int64(b)
	if n < MinSize {
		return 0, fmt.Errorf("size %q: a volume needs at least %d MiB: %w", s, MinSize>>20, ErrBadInput)
	}
	return n, nil
}

// CreateOptions say how to make a volume.
type CreateOptions struct {
	Size int64 // 0: DefaultSize
	// From, when set, is a directory or a tar archive whose files the
	// volume starts with.
	From string
	// UID and GID own the volume's root directory.
	UID, GID uint32
}

// Create makes the volume name: a sparse file formatted ext4 by mke2fs
// under a temporary name, renamed into place when done.
func (s *Store) Create(ctx context.Context, name string, o CreateOptions) (*Volume, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("volume name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit: %w", name, ErrBadInput)
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.Size < MinSize {
		return nil, fmt.Errorf("size %d: a volume needs at least %d MiB: %w", o.Size, MinSize>>20, ErrBadInput)
	}
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		return nil, fmt.Errorf("mke2fs not found: install e2fsprogs (sudo apt-get install e2fsprogs): %w", err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	dst := filepath.Join(s.Dir, name)
	if _, err := os.Stat(dst); err == nil {
		return nil, fmt.Errorf("volume %q: %w (nos volume rm %s, or choose another name)", name, ErrExists, name)
	}
	tmp, err := os.MkdirTemp(s.Dir, ".tmp-"+name+"-")
	if err != nil {
		return nil, s.noSpace(name, o.From != "", err, "")
	}
	defer os.RemoveAll(tmp) // gone once renamed
	from, cleanup, err := populateFrom(ctx, o.From, tmp)
	if err != nil {
		return nil, s.noSpace(name, o.From != "", err, "")
	}
	defer cleanup()
	disk := filepath.Join(tmp, diskFile)
	f, err := os.OpenFile(disk, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, s.noSpace(name, o.From != "", err, "")
	}
	err = f.Truncate(o.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, s.noSpace(name, o.From != "", fmt.Errorf("volume %s: %w", name, err), "")
	}
	// lazy_journal_init: the journal of a new sparse file reads as zeros
	// already, so mke2fs need not write them (a 10 GiB volume then takes
	// 4 MB on the host rather than 68 MB).
	// Fixed UUID and hash seed would make volumes reproducible, but two
	// volumes with one UUID confuse tools that look file systems up by
	// it; each volume gets its own.
	args := []string{"-q", "-F", "-t", "ext4", "-L", label(name), "-E", fmt.Sprintf("root_owner=%d:%d,lazy_journal_init=1", o.UID, o.GID), "-m", "0"}
	if from != "" {
		args = append(args, "-d", from)
	}
	args = append(args, disk)
	if out, err := exec.CommandContext(ctx, mke2fs, args...).CombinedOutput(); err != nil {
		return nil, s.noSpace(name, o.From != "", fmt.Errorf("mke2fs: %v: %s", err, strings.TrimSpace(string(out))), string(out))
	}
	v := &Volume{Name: name, Size: o.Size, Created: time.Now().UTC(), Fresh: from == "", Clean: true, Dir: dst}
	if err := writeMeta(filepath.Join(tmp, metaFile), v); err != nil {
		return nil, s.noSpace(name, o.From != "", err, "")
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	return v, nil
}

// label is the ext4 label (at most 16 bytes).
func label(name string) string {
	if len(name) > 16 {
		return name[:16]
	}
	return name
}

// populateFrom returns a directory mke2fs -d copies: from itself, or a tar
// archive unpacked by tar into a directory under tmp.
func populateFrom(ctx context.Context, from, tmp string) (string, func(), error) {
	none := func() {}
	if from == "" {
		return "", none, nil
	}
	if !filepath.IsAbs(from) {
		abs, err := filepath.Abs(from)
		if err != nil {
			return "", none, err
		}
		from = abs
	}
	fi, err := os.Stat(from)
	if err != nil {
		return "", none, fmt.Errorf("--from %s: %w", from, err)
	}
	if fi.IsDir() {
		return from, none, nil
	}
	dir := filepath.Join(tmp, "from")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", none, err
	}
	// GNU tar refuses members with absolute names or "..", and keeps
	// owners when run as root, as the volume should.
	out, err := exec.CommandContext(ctx, "tar", "-xf", from, "-C", dir).CombinedOutput()
	if err != nil {
		return "", none, fmt.Errorf("--from %s: not a directory or a tar archive tar can read: %v: %s: %w", from, err, strings.TrimSpace(string(out)), ErrBadInput)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// lock serialises creating and removing volumes.
func (s *Store) lock(ctx context.Context) (func(), error) {
	return lockfile.Lock(ctx, filepath.Join(s.Dir, ".lock"), false)
}

// Get reads the volume name.
func (s *Store) Get(name string) (*Volume, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("volume %q: %w", name, ErrNotFound)
	}
	dir := filepath.Join(s.Dir, name)
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("volume %q: %w (see `nos volume ls`)", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	v := &Volume{}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("volume %s: %s: %w", name, metaFile, err)
	}
	v.Dir = dir
	if fi, err := os.Stat(v.Disk()); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("volume %s: its disk %s is missing or not a file: %w", name, v.Disk(), ErrBadInput)
	}
	return v, nil
}

// List reads every volume, by name.
func (s *Store) List() ([]*Volume, error) {
	des, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, de := range des {
		if !de.IsDir() || !ValidName(de.Name()) {
			continue // .tmp-* are creates in progress or killed
		}
		v, err := s.Get(de.Name())
		if err != nil {
			continue
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a volume that no monitor holds. Whether instances still
// name it is the caller's question (package instance knows them).
func (s *Store) Remove(ctx context.Context, name string) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	v, err := s.Get(name)
	if err != nil {
		return err
	}
	release, err := lockfile.TryLock(filepath.Join(v.Dir, attachLock))
	if err != nil {
		return fmt.Errorf("volume %s is attached to instance %s: stop it first: %w", name, v.Holder(), ErrInUse)
	}
	defer release()
	// The metadata goes first: a crash halfway leaves no volume Get reads.
	if err := os.Remove(filepath.Join(v.Dir, metaFile)); err != nil {
		return err
	}
	return os.RemoveAll(v.Dir)
}

// PruneLeftovers removes what killed creates left (.tmp-* directories no
// create holds: creates hold the store lock).
func (s *Store) PruneLeftovers(ctx context.Context) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	des, err := os.ReadDir(s.Dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(s.Dir, de.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// Holder is the instance holding the volume read-write, as it wrote
// itself down ("" when none said).
func (v *Volume) Holder() string {
	b, _ := os.ReadFile(filepath.Join(v.Dir, holderFile))
	return strings.TrimSpace(string(b))
}

// Attached reports whether a monitor holds the volume now.
func (v *Volume) Attached() bool { return lockfile.Held(filepath.Join(v.Dir, attachLock)) }

// DiskUsage is the space the sparse disk takes on the host, bytes.
func (v *Volume) DiskUsage() int64 {
	var st syscall.Stat_t
	if syscall.Stat(v.Disk(), &st) != nil {
		return 0
	}
	return st.Blocks * 512
}

// update changes the volume's metadata.
func (v *Volume) update(fn func(*Volume)) error {
	b, err := os.ReadFile(filepath.Join(v.Dir, metaFile))
	if err != nil {
		return err
	}
	cur := &Volume{}
	if err := json.Unmarshal(b, cur); err != nil {
		return err
	}
	fn(cur)
	cur.Dir = v.Dir
	if err := writeMeta(filepath.Join(v.Dir, metaFile), cur); err != nil {
		return err
	}
	*v = *cur
	return nil
}

// writeMeta replaces path atomically.
func writeMeta(path string, v *Volume) error { return fsutil.WriteJSON(path, v) }

// Check reads every volume under the store's lock: its metadata must
// parse and its disk be a regular file; .tmp-* directories are creates
// that were killed. With repair it removes the leftovers and the torn
// volumes no monitor holds (a volume whose metadata or disk is gone has
// no data nos can attach).
func (s *Store) Check(ctx context.Context, repair bool) ([]check.Problem, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	des, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, err
	}
	var ps []check.Problem
	for _, de := range des {
		dir := filepath.Join(s.Dir, de.Name())
		var p check.Problem
		switch {
		case strings.HasPrefix(de.Name(), ".tmp-"):
			p = check.Problem{Kind: "volume leftover", Path: dir, Detail: "left by an interrupted volume create", Leftover: true}
		case !de.IsDir() || !ValidName(de.Name()):
			continue
		default:
			_, err := s.Get(de.Name())
			if err == nil {
				continue
			}
			p = check.Problem{Kind: "torn volume", Path: dir, Detail: err.Error()}
			if lockfile.Held(filepath.Join(dir, attachLock)) {
				p.Detail += " (attached: not repaired)"
				ps = append(ps, p)
				continue
			}
		}
		if repair {
			p.Remove(dir)
		}
		ps = append(ps, p)
	}
	return ps, nil
}
