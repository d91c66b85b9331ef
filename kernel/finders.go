package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// notFound is an error that matches ErrNoKernel without repeating its text.
type notFound struct{ msg string }

func (e *notFound) Error() string        { return e.msg }
func (e *notFound) Is(target error) bool { return target == ErrNoKernel }

func notFoundf(format string, args ...any) error {
	return &notFound{msg: fmt.Sprintf(format, args...)}
}

// File is a Finder for a kernel image given explicitly (--kernel PATH).
// When the image is named vmlinuz-<version> (or is a bzImage recording its
// version) and <dir>/../lib/modules/<version> exists, the kernel's
// ModulesDir and ConfigPath are filled in.
type File struct {
	// Path is the kernel image: a bzImage or an ELF vmlinux.
	Path string
}

// Find checks that f.Path is a kernel image and describes it.
func (f File) Find(ctx context.Context) (*Kernel, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.Path == "" {
		return nil, errors.New("kernel file: no path given")
	}
	abs, err := filepath.Abs(f.Path)
	if err != nil {
		return nil, fmt.Errorf("kernel file: %w", err)
	}
	if err := checkImage(abs); err != nil {
		return nil, fmt.Errorf("kernel file: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("kernel file: %w", err)
	}
	k := &Kernel{Path: abs, Origin: "file"}
	k.Version = versionFromName(filepath.Base(abs))
	if k.Version == "" {
		k.Version = versionFromName(filepath.Base(resolved))
	}
	if k.Version == "" {
		k.Version = bzImageVersion(resolved)
	}
	dir := filepath.Dir(resolved)
	k.companions(dir, filepath.Join(dir, "..", "lib", "modules"))
	if k.ConfigPath == "" && isFile(filepath.Join(dir, "kernel.json")) && isFile(filepath.Join(dir, "config")) {
		// A kernel nos built, named by its path in nos's cache: its
		// configuration lies beside it.
		k.ConfigPath = filepath.Join(dir, "config")
	}
	return k, nil
}

// versionFromName returns <version> for a file named vmlinuz-<version>.
func versionFromName(name string) string {
	v, ok := strings.CutPrefix(name, "vmlinuz-")
	if !ok || !validVersion(v) {
		return ""
	}
	return v
}

// Host is a Finder for the newest kernel installed on the host.
type Host struct {
	// BootDir holds vmlinuz-<version> files; "/boot" when empty.
	BootDir string
	// ModulesRoot holds <version> module trees; "/lib/modules" when empty.
	ModulesRoot string
}

// Find returns the newest readable vmlinuz-* in the boot directory.
func (h Host) Find(ctx context.Context) (*Kernel, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	boot, mods := h.BootDir, h.ModulesRoot
	if boot == "" {
		boot = "/boot"
	}
	if mods == "" {
		mods = "/lib/modules"
	}
	k, err := findInBoot(boot, mods)
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	k.Origin = "host"
	return k, nil
}

// findInBoot returns the newest usable vmlinuz-<version> in bootDir, with
// its companions from bootDir and modulesRoot.
func findInBoot(bootDir, modulesRoot string) (*Kernel, error) {
	versions, err := listVersions(bootDir, "vmlinuz-", false)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, notFoundf("no vmlinuz-* in %s", bootDir)
	}
	var skipped []string
	for _, v := range versions {
		path := filepath.Join(bootDir, "vmlinuz-"+v)
		if err := checkImage(path); err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		k := &Kernel{Version: v, Path: path}
		k.companions(bootDir, modulesRoot)
		return k, nil
	}
	return nil, notFoundf("no usable vmlinuz-* in %s (%s)", bootDir, strings.Join(skipped, "; "))
}

// listVersions returns the versions named by the entries prefix<version>
// of dir, newest first. It lists directories when dirs is set, other
// entries otherwise. A missing dir is a notFound error.
func listVersions(dir, prefix string, dirs bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFoundf("%s does not exist", dir)
	}
	if err != nil {
		return nil, err
	}
	var versions []string
	for _, e := range entries {
		v, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !validVersion(v) || e.IsDir() != dirs {
			continue
		}
		versions = append(versions, v)
	}
	sortNewestFirst(versions)
	return versions, nil
}

// sortNewestFirst sorts kernel versions, newest first, deterministically.
func sortNewestFirst(versions []string) {
	sort.Slice(versions, func(i, j int) bool {
		if c := compareVersions(versions[i], versions[j]); c != 0 {
			return c > 0
		}
		return versions[i] > versions[j]
	})
}

// Cache is a Finder for kernels in nos's own cache, laid out by Fetch as
// Dir/<version>/boot/vmlinuz-<version> and Dir/<version>/lib/modules/<version>.
type Cache struct {
	// Dir is the cache directory.
	Dir string
}

// Find returns the newest usable kernel in the cache.
func (c Cache) Find(ctx context.Context) (*Kernel, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.Dir == "" {
		return nil, notFoundf("cache: no cache directory")
	}
	versions, err := listVersions(c.Dir, "", true)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if len(versions) == 0 {
		return nil, notFoundf("cache: %s is empty", c.Dir)
	}
	var skipped []string
	for _, v := range versions {
		k, err := cachedKernel(c.Dir, v)
		if err == nil {
			return k, nil
		}
		skipped = append(skipped, err.Error())
	}
	return nil, notFoundf("cache: no usable kernel in %s (%s)", c.Dir, strings.Join(skipped, "; "))
}

// cachedKernel describes the kernel unpacked in cacheDir/version.
func cachedKernel(cacheDir, version string) (*Kernel, error) {
	root := filepath.Join(cacheDir, version)
	k, err := findInBoot(filepath.Join(root, "boot"), filepath.Join(root, "lib", "modules"))
	if err != nil {
		return nil, err
	}
	k.Origin = "cache"
	return k, nil
}
