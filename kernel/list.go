package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// CompareVersions orders kernel releases such as "6.1.0-56-cloud-amd64":
// runs of digits compare numerically, everything else bytewise. It returns
// -1, 0 or +1.
func CompareVersions(a, b string) int { return compareVersions(a, b) }

// List returns every usable kernel in the cache, newest first. A missing
// cache directory holds no kernels.
func (c Cache) List(ctx context.Context) ([]*Kernel, error) {
	if c.Dir == "" {
		return nil, nil
	}
	versions, err := listVersions(c.Dir, "", true)
	if errors.Is(err, ErrNoKernel) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var ks []*Kernel
	for _, v := range versions {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if k, err := cachedKernel(c.Dir, v); err == nil {
			ks = append(ks, k)
		}
	}
	return ks, nil
}

// Remove deletes the fetched kernel version from the cache.
func (c Cache) Remove(version string) error {
	if c.Dir == "" || !validVersion(version) {
		return fmt.Errorf("cache: invalid kernel version %q", version)
	}
	dir := filepath.Join(c.Dir, version)
	if !isDir(dir) {
		return fmt.Errorf("cache: no kernel %s in %s: %w", version, c.Dir, os.ErrNotExist)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("cache: removing kernel %s: %w", version, err)
	}
	return nil
}

// List returns every usable vmlinuz-* of the host, newest first. A missing
// boot directory holds no kernels.
func (h Host) List(ctx context.Context) ([]*Kernel, error) {
	boot, mods := h.BootDir, h.ModulesRoot
	if boot == "" {
		boot = "/boot"
	}
	if mods == "" {
		mods = "/lib/modules"
	}
	versions, err := listVersions(boot, "vmlinuz-", false)
	if errors.Is(err, ErrNoKernel) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	var ks []*Kernel
	for _, v := range versions {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := filepath.Join(boot, "vmlinuz-"+v)
		if checkImage(path) != nil {
			continue
		}
		k := &Kernel{Version: v, Path: path, Origin: "host"}
		k.companions(boot, mods)
		ks = append(ks, k)
	}
	return ks, nil
}

// ImageVersion returns the kernel release recorded in a bzImage's setup
// header, or "" when the file is not a bzImage or records none.
func ImageVersion(path string) string { return bzImageVersion(path) }

// CheckImage returns nil when the file at path is a bootable kernel image:
// a bzImage or an ELF vmlinux.
func CheckImage(path string) error { return checkImage(path) }
