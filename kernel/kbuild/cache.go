package kbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
)

// Origins of cached kernels, as kernel.Kernel.Origin reports them.
const (
	OriginBuilt    = "built"
	OriginImported = "imported"
)

// Names of the files of a cache entry.
const (
	metaName    = "kernel.json"
	bzImageName = "bzImage"
	vmlinuxName = "vmlinux"
	configName  = "config"
	lockName    = ".lock"
	workPrefix  = ".build-"
)

// Entry is a kernel in the cache.
type Entry struct {
	// ID is the entry's key: 64 hex digits digesting a build's inputs, or
	// an imported image's content.
	ID string `json:"id"`
	// Version is the kernel release, e.g. "6.1.192-nos"; "" if unknown.
	Version string `json:"version,omitempty"`
	// Origin is OriginBuilt or OriginImported.
	Origin string `json:"origin"`
	// Features are the configuration fragments built in besides the base.
	Features []string `json:"features,omitempty"`
	// Source is the kernel source built, or the file imported.
	Source       string `json:"source,omitempty"`
	SourceDigest string `json:"sourceDigest,omitempty"`
	// ConfigHash digests the merged fragments of a build.
	ConfigHash string `json:"configHash,omitempty"`
	Compiler   string `json:"compiler,omitempty"`
	// Image, Vmlinux and Config name the entry's files: the boot image
	// (a bzImage, or an ELF for an imported vmlinux), the ELF vmlinux
	// with its PVH entry point when kept, and the kernel's .config.
	Image   string `json:"image"`
	Vmlinux string `json:"vmlinux,omitempty"`
	Config  string `json:"config,omitempty"`
	// Created is when the entry was built or imported; BuildSeconds how
	// long the build took.
	Created      time.Time `json:"created"`
	BuildSeconds int64     `json:"buildSeconds,omitempty"`

	dir      string
	selected time.Time
}

// Dir returns the entry's directory.
func (e *Entry) Dir() string { return e.dir }

// ShortID returns the first 12 digits of the ID.
func (e *Entry) ShortID() string { return e.ID[:min(12, len(e.ID))] }

// Path returns the boot image.
func (e *Entry) Path() string { return filepath.Join(e.dir, e.Image) }

// VmlinuxPath returns the ELF vmlinux, or "" when the entry has none.
func (e *Entry) VmlinuxPath() string { return e.file(e.Vmlinux) }

// ConfigPath returns the kernel's .config, or "" when the entry has none.
func (e *Entry) ConfigPath() string { return e.file(e.Config) }

func (e *Entry) file(name string) string {
	if name == "" {
		return ""
	}
	return filepath.Join(e.dir, name)
}

// Selected returns when the entry was last built or imported, even when
// that found it already there: the most recent one is the default.
func (e *Entry) Selected() time.Time { return e.selected }

// Kernel describes the entry as a kernel nos can boot. It has no modules
// directory: the init loads no modules.
func (e *Entry) Kernel() *kernel.Kernel {
	k := &kernel.Kernel{Version: e.Version, Path: e.Path(), Vmlinux: e.VmlinuxPath(), ConfigPath: e.ConfigPath(), Origin: e.Origin}
	if e.Origin == OriginBuilt {
		k.Features = append([]string{}, e.Features...) // known, maybe none
		k.ConfigHash = e.ConfigHash
	}
	return k
}

// Cache holds the kernels nos built or imported, one directory per entry
// named by its ID. It is a kernel.Finder.
type Cache struct {
	// Dir is the cache directory, e.g. $NOS_HOME/cache/kernels-built.
	Dir string
	// Need lists the features the kernel must have (see kernel/config);
	// nil means any kernel will do. See Match.
	Need []string
}

// notFound matches kernel.ErrNoKernel without repeating its text.
type notFound struct{ msg string }

func (e *notFound) Error() string        { return e.msg }
func (e *notFound) Is(target error) bool { return target == kernel.ErrNoKernel }

// Find returns the kernel Match picks for c.Need.
func (c Cache) Find(ctx context.Context) (*kernel.Kernel, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, err := c.Match(c.Need)
	if err != nil {
		return nil, err
	}
	return e.Kernel(), nil
}

// Match picks the kernel for an image that needs the given features. With
// need nil it is the default: the entry built or imported last. Otherwise
// an imported kernel (the user's own, its features unknown) is used when
// it is the default; else the built kernels having every needed feature
// compete: one with exactly those features first, then the one with the
// fewest extra features; among equals, one configured from this nos's
// fragments (Current) before an older build, then the most recently
// selected. The
// error, when none fits, wraps kernel.ErrNoKernel and says how to build
// one.
func (c Cache) Match(need []string) (*Entry, error) {
	entries, err := c.List()
	if err != nil {
		return nil, fmt.Errorf("built kernels: %w", err)
	}
	if len(entries) == 0 {
		return nil, &notFound{msg: "built kernels: none in " + c.Dir + " (nos kernel build makes one)"}
	}
	if need == nil || entries[0].Origin == OriginImported {
		return entries[0], nil
	}
	var best *Entry
	for _, e := range entries { // most recently selected first
		if e.Origin != OriginBuilt || !hasAll(e.Features, need) {
			continue
		}
		switch {
		case best == nil, len(e.Features) < len(best.Features):
			best = e
		case len(e.Features) == len(best.Features) && e.Current() && !best.Current():
			best = e
		}
	}
	if best == nil {
		want := config.Describe(need)
		return nil, &notFound{msg: fmt.Sprintf("built kernels: none has the features %s (nos kernel build --features %s makes one)", want, want)}
	}
	return best, nil
}

// Current reports whether a built kernel was configured from the
// fragments this nos has for its features: a kernel built by an older nos
// may lack options added since (virtiofs in blk, say).
func (e *Entry) Current() bool {
	if e.Origin != OriginBuilt {
		return false
	}
	frags, err := config.Fragments(e.Features)
	if err != nil {
		return false
	}
	merged, err := config.Merge(frags)
	return err == nil && merged.Hash() == e.ConfigHash
}

// hasAll reports whether have contains every element of need.
func hasAll(have, need []string) bool {
	for _, n := range need {
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}

// ForFile returns the entry whose boot image or vmlinux has the same
// content as the file at path, so that a kernel given by path keeps what
// nos knows about it; nil when there is none.
func (c Cache) ForFile(ctx context.Context, path string) (*Entry, error) {
	entries, err := c.List()
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var digest string
	for _, e := range entries {
		for _, p := range []string{e.Path(), e.VmlinuxPath()} {
			if p == "" {
				continue
			}
			pi, err := os.Stat(p)
			if err != nil || pi.Size() != fi.Size() {
				continue
			}
			if os.SameFile(pi, fi) {
				return e, nil
			}
			if digest == "" {
				if digest, err = fileDigest(ctx, path); err != nil {
					return nil, err
				}
			}
			if d, err := fileDigest(ctx, p); err == nil && d == digest {
				return e, nil
			}
		}
	}
	return nil, nil
}

// List returns the entries, the default (most recently selected) first.
// Incomplete or unreadable entries are left out. A missing cache directory
// holds no entries.
func (c Cache) List() ([]*Entry, error) {
	des, err := os.ReadDir(c.Dir)
	if errNotExist(err) || c.Dir == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var entries []*Entry
	for _, de := range des {
		if !de.IsDir() || !validID(de.Name()) {
			continue
		}
		if e, err := c.load(de.Name()); err == nil {
			entries = append(entries, e)
		}
	}
	sort.SliceStable(entries, func(i, j int) bool {
		if !entries[i].selected.Equal(entries[j].selected) {
			return entries[i].selected.After(entries[j].selected)
		}
		return entries[i].ID < entries[j].ID
	})
	return entries, nil
}

// load reads the entry with the given full ID.
func (c Cache) load(id string) (*Entry, error) {
	dir := filepath.Join(c.Dir, id)
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if err != nil {
		return nil, err
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, metaName), err)
	}
	if e.ID != id || e.Image == "" || strings.ContainsRune(e.Image, '/') {
		return nil, fmt.Errorf("%s: inconsistent entry", dir)
	}
	e.dir = dir
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	e.selected = fi.ModTime()
	if err := kernel.CheckImage(e.Path()); err != nil {
		return nil, err
	}
	return &e, nil
}

// Get returns the entry whose ID starts with prefix; the prefix must match
// exactly one entry.
func (c Cache) Get(prefix string) (*Entry, error) {
	prefix = strings.ToLower(prefix)
	if prefix == "" || strings.Trim(prefix, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("kernel %q: not a kernel ID (hex digits, see nos kernel ls)", prefix)
	}
	entries, err := c.List()
	if err != nil {
		return nil, err
	}
	var found []*Entry
	for _, e := range entries {
		if strings.HasPrefix(e.ID, prefix) {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no built or imported kernel %s: %w", prefix, os.ErrNotExist)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("kernel ID %s is ambiguous: %d kernels start with it", prefix, len(found))
}

// Remove deletes the entry whose ID starts with prefix and returns it.
func (c Cache) Remove(prefix string) (*Entry, error) {
	e, err := c.Get(prefix)
	if err != nil {
		return nil, err
	}
	// Move it out of sight first, so that it disappears at once.
	gone, err := os.MkdirTemp(c.Dir, workPrefix)
	if err != nil {
		return nil, fmt.Errorf("removing kernel %s: %w", e.ShortID(), err)
	}
	defer os.RemoveAll(gone)
	if err := os.Rename(e.dir, filepath.Join(gone, e.ID)); err != nil {
		return nil, fmt.Errorf("removing kernel %s: %w", e.ShortID(), err)
	}
	return e, nil
}

// Select makes e the default kernel: the one built or imported last.
func (c Cache) Select(e *Entry) error {
	now := time.Now()
	if err := os.Chtimes(e.dir, now, now); err != nil {
		return fmt.Errorf("selecting kernel %s: %w", e.ShortID(), err)
	}
	e.selected = now
	return nil
}

// Import copies the kernel image at path (a bzImage or an ELF vmlinux)
// into the cache, keyed by its content, and makes it the default. The
// kernel must not need modules: the init loads none from it. It returns
// the entry and whether it was already there.
func (c Cache) Import(ctx context.Context, path string) (*Entry, bool, error) {
	k, err := kernel.File{Path: path}.Find(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("importing kernel: %w", err)
	}
	id, err := fileDigest(ctx, k.Path)
	if err != nil {
		return nil, false, fmt.Errorf("importing kernel: %w", err)
	}
	if e, err := c.load(id); err == nil {
		return e, true, c.Select(e)
	}
	w, err := c.newWork()
	if err != nil {
		return nil, false, fmt.Errorf("importing kernel: %w", err)
	}
	defer w.close()
	name := bzImageName
	if kernel.ImageVersion(k.Path) == "" && fsutil.IsELF(k.Path) {
		name = vmlinuxName
	}
	e := &Entry{ID: id, Version: k.Version, Origin: OriginImported, Source: k.Path, Image: name, Created: time.Now().UTC()}
	if err := copyFile(k.Path, filepath.Join(w.stage, name)); err != nil {
		return nil, false, fmt.Errorf("importing kernel: %w", err)
	}
	if k.ConfigPath != "" {
		if err := copyFile(k.ConfigPath, filepath.Join(w.stage, configName)); err == nil {
			e.Config = configName
		}
	}
	e, err = c.commit(w, e)
	if err != nil {
		return nil, false, fmt.Errorf("importing kernel: %w", err)
	}
	return e, false, nil
}

// work is a private directory in the cache where an entry is prepared; it
// holds a lock while in use, so that sweep leaves it alone.
type work struct {
	dir, stage string
	unlock     func()
}

// newWork makes a work directory with an empty stage in it, first
// sweeping away those of dead builds.
func (c Cache) newWork() (*work, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	c.sweep()
	dir, err := os.MkdirTemp(c.Dir, workPrefix)
	if err != nil {
		return nil, err
	}
	unlock, err := lockfile.TryLock(filepath.Join(dir, lockName))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	w := &work{dir: dir, stage: filepath.Join(dir, "stage"), unlock: unlock}
	if err := os.Mkdir(w.stage, 0o755); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *work) close() {
	os.RemoveAll(w.dir)
	w.unlock()
}

// sweep removes the work directories no live process holds: leftovers of
// builds that were killed. Young ones may be about to be locked.
func (c Cache) sweep() {
	des, err := os.ReadDir(c.Dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if !de.IsDir() || !strings.HasPrefix(de.Name(), workPrefix) {
			continue
		}
		dir := filepath.Join(c.Dir, de.Name())
		if fi, err := de.Info(); err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		if !lockfile.Held(filepath.Join(dir, lockName)) {
			os.RemoveAll(dir)
		}
	}
}

// commit writes e's metadata into the work's stage and moves the stage
// into place as entry e.ID. When another process committed the same entry
// first, that one is kept. The entry becomes the default.
func (c Cache) commit(w *work, e *Entry) (*Entry, error) {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(w.stage, metaName), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := syncDir(w.stage); err != nil {
		return nil, err
	}
	dest := filepath.Join(c.Dir, e.ID)
	if err := os.Rename(w.stage, dest); err != nil {
		if existing, lerr := c.load(e.ID); lerr == nil {
			return existing, c.Select(existing)
		}
		return nil, err
	}
	done, err := c.load(e.ID)
	if err != nil {
		return nil, err
	}
	return done, c.Select(done)
}

// syncDir flushes the files of dir to disk.
func syncDir(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range append(des, nil) {
		path := dir
		if de != nil {
			path = filepath.Join(dir, de.Name())
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func validID(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

func fileDigest(ctx context.Context, path string) (string, error) {
	h := sha256.New()
	if err := hashFile(ctx, h, path); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyFile copies src to dst (created 0644).
func copyFile(src, dst string) error { return fsutil.CopyFile(src, dst, 0o644) }
