package kbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// MissingError says what a build needs that the host lacks, and which
// Debian packages provide it.
type MissingError struct {
	// What lists the missing commands, headers or files.
	What string
	// Packages are the Debian packages to install, sorted.
	Packages []string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("building a kernel needs %s: install %s (apt-get install --no-install-recommends %s)",
		e.What, strings.Join(e.Packages, " "), strings.Join(e.Packages, " "))
}

// requirement is something the build runs or includes, and the Debian
// package that provides it.
type requirement struct {
	name    string // a command, or a header path
	header  bool
	pkg     string
	tarOnly bool // only needed to extract a tarball
}

// requirements are what a module-free x86 kernel build with nos's
// configuration needs (objtool needs libelf; nothing needs OpenSSL, since
// modules are off, nor pahole, since BTF is off).
var requirements = []requirement{
	{name: "make", pkg: "make"},
	{name: "gcc", pkg: "gcc"},
	{name: "ld", pkg: "binutils"},
	{name: "strip", pkg: "binutils"},
	{name: "/usr/include/stdio.h", header: true, pkg: "libc6-dev"},
	{name: "bc", pkg: "bc"},
	{name: "bison", pkg: "bison"},
	{name: "flex", pkg: "flex"},
	{name: "/usr/include/gelf.h", header: true, pkg: "libelf-dev"},
	{name: "gzip", pkg: "gzip"},
	{name: "tar", pkg: "tar", tarOnly: true},
	{name: "xz", pkg: "xz-utils", tarOnly: true},
}

// checkTools returns a *MissingError for the requirements the host lacks,
// or nil.
func checkTools(reqs []requirement, tarball bool) error {
	var what, pkgs []string
	for _, r := range reqs {
		if r.tarOnly && !tarball {
			continue
		}
		var ok bool
		if r.header {
			_, err := os.Stat(r.name)
			ok = err == nil
		} else {
			_, err := exec.LookPath(r.name)
			ok = err == nil
		}
		if ok {
			continue
		}
		what = append(what, r.name)
		if !slices.Contains(pkgs, r.pkg) {
			pkgs = append(pkgs, r.pkg)
		}
	}
	if len(what) == 0 {
		return nil
	}
	slices.Sort(pkgs)
	return &MissingError{What: strings.Join(what, ", "), Packages: pkgs}
}

// joinMissing combines two missing-things errors, either of which may be
// nil; it returns nil when both are.
func joinMissing(a *MissingError, b error) error {
	var mb *MissingError
	if b != nil && !errors.As(b, &mb) {
		return b
	}
	switch {
	case a == nil && mb == nil:
		return nil
	case a == nil:
		return mb
	case mb == nil:
		return a
	}
	pkgs := append(slices.Clone(a.Packages), mb.Packages...)
	slices.Sort(pkgs)
	return &MissingError{What: a.What + ", " + mb.What, Packages: slices.Compact(pkgs)}
}

// Install installs Debian packages with apt-get (refreshing the package
// lists once if the first attempt fails), showing apt's output on w. It
// needs root.
func Install(ctx context.Context, pkgs []string, w io.Writer) error {
	if len(pkgs) == 0 {
		return nil
	}
	if w == nil {
		w = io.Discard
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	install := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if _, err := runTool(ctx, "", env, "apt-get", install...); err == nil {
		return nil
	}
	fmt.Fprintln(w, "kernel build: apt-get install failed; refreshing the package lists")
	if _, err := runTool(ctx, "", env, "apt-get", "update", "-q"); err != nil {
		return fmt.Errorf("installing %s: %w", strings.Join(pkgs, " "), err)
	}
	if _, err := runTool(ctx, "", env, "apt-get", install...); err != nil {
		return fmt.Errorf("installing %s: %w", strings.Join(pkgs, " "), err)
	}
	return nil
}

// runTool runs a command to completion and returns its standard output. A
// failure names the command and the tail of its output.
func runTool(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		line := strings.Join(append([]string{name}, args...), " ")
		if tail := errTail(append(stdout.Bytes(), stderr.Bytes()...), 5); tail != "" {
			return nil, fmt.Errorf("%s: %w: %s", line, err, tail)
		}
		return nil, fmt.Errorf("%s: %w", line, err)
	}
	return stdout.Bytes(), nil
}
