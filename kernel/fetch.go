package kernel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DefaultPackage is the Debian package Fetch downloads when none is named.
const DefaultPackage = "linux-image-cloud-amd64"

// runner runs the command name with args in dir and returns its standard
// output. Tests replace it to avoid apt.
type runner func(ctx context.Context, dir, name string, args ...string) ([]byte, error)

// Fetch downloads the Debian kernel package pkg (DefaultPackage when "")
// with apt-get, unpacks it with dpkg-deb into cacheDir/<version>, and
// returns the kernel found there. A metapackage is first resolved to the
// versioned linux-image-<version> package it depends on. When
// cacheDir/<version> already exists, nothing is downloaded.
func Fetch(ctx context.Context, cacheDir, pkg string) (*Kernel, error) {
	return fetcher{run: execRun}.fetch(ctx, cacheDir, pkg)
}

type fetcher struct {
	run runner
}

func (f fetcher) fetch(ctx context.Context, cacheDir, pkg string) (*Kernel, error) {
	if cacheDir == "" {
		return nil, errors.New("kernel fetch: no cache directory")
	}
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("kernel fetch: %w", err)
	}
	if pkg == "" {
		pkg = DefaultPackage
	}
	versioned, err := f.resolve(ctx, pkg)
	if err != nil {
		return nil, fmt.Errorf("kernel fetch: %w", err)
	}
	version := packageVersion(versioned)
	if version == "" {
		return nil, fmt.Errorf("kernel fetch: cannot tell the kernel version of package %q", versioned)
	}
	dest := filepath.Join(cacheDir, version)
	if _, err := os.Stat(dest); err == nil {
		return fetched(cacheDir, version)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("kernel fetch: %w", err)
	}
	if err := f.download(ctx, cacheDir, versioned, dest); err != nil {
		return nil, fmt.Errorf("kernel fetch %s: %w", versioned, err)
	}
	return fetched(cacheDir, version)
}

// fetched returns the kernel unpacked in cacheDir/version.
func fetched(cacheDir, version string) (*Kernel, error) {
	k, err := cachedKernel(cacheDir, version)
	if err != nil {
		return nil, fmt.Errorf("kernel fetch: %w", err)
	}
	return k, nil
}

// resolve returns the versioned linux-image package for pkg.
func (f fetcher) resolve(ctx context.Context, pkg string) (string, error) {
	if packageVersion(pkg) != "" {
		return pkg, nil
	}
	out, err := f.run(ctx, "", "apt-cache", "depends", pkg)
	if err != nil {
		return "", err
	}
	dep := parseDepends(out)
	if dep == "" {
		return "", fmt.Errorf("apt-cache depends %s: no linux-image-* dependency (is it a kernel metapackage? try apt-get update)", pkg)
	}
	return dep, nil
}

// parseDepends returns the first linux-image-* package in the Depends
// lines of `apt-cache depends` output, or "".
func parseDepends(out []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimLeft(strings.TrimSpace(sc.Text()), "|")
		rest, ok := strings.CutPrefix(line, "Depends:")
		if !ok {
			continue
		}
		dep := strings.Trim(strings.TrimSpace(rest), "<>")
		if strings.HasPrefix(dep, "linux-image-") {
			return dep
		}
	}
	return ""
}

// packageVersion returns the kernel release packaged by a versioned
// package such as linux-image-6.1.0-56-cloud-amd64, or "" for others
// (metapackages like linux-image-cloud-amd64).
func packageVersion(pkg string) string {
	v, ok := strings.CutPrefix(pkg, "linux-image-")
	if !ok || v == "" || !isDigit(v[0]) {
		return ""
	}
	v = strings.TrimSuffix(v, "-unsigned")
	if !validVersion(v) {
		return ""
	}
	return v
}

// download fetches pkg's .deb into a temporary directory of cacheDir and
// unpacks it into dest, atomically: dest appears complete or not at all.
func (f fetcher) download(ctx context.Context, cacheDir, pkg, dest string) error {
	dl, err := os.MkdirTemp(cacheDir, ".download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dl)
	if _, err := f.run(ctx, dl, "apt-get", "download", pkg); err != nil {
		return err
	}
	debs, err := filepath.Glob(filepath.Join(dl, "*.deb"))
	if err != nil {
		return err
	}
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download left %d .deb files, want 1", len(debs))
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if _, err := f.run(ctx, dl, "dpkg-deb", "-x", debs[0], tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		if _, statErr := os.Stat(dest); statErr == nil {
			return nil // fetched concurrently by someone else
		}
		return err
	}
	return nil
}

// execRun runs a command, returning its output, or an error naming the
// command with the tail of its standard error.
func execRun(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s is needed but was not found in PATH (install it, or pass --kernel PATH): %w", name, err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		cmdline := strings.Join(append([]string{name}, args...), " ")
		if tail := tailLines(stderr.String(), 3); tail != "" {
			return nil, fmt.Errorf("%s: %w: %s", cmdline, err, tail)
		}
		return nil, fmt.Errorf("%s: %w", cmdline, err)
	}
	return stdout.Bytes(), nil
}

// tailLines returns the last n non-empty lines of s joined on one line.
func tailLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
