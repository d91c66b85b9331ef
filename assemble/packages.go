package assemble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/nosproject/nos/assemble/elfdeps"
	"github.com/nosproject/nos/image"
)

// A PackageDB tells which distribution package host files came from. The
// build records it in the image config (image.Config.Packages), so that
// the image's bill of materials needs no build host later.
type PackageDB interface {
	// Owners returns the package of each of paths it knows, keyed by the
	// path; paths it does not know are left out.
	Owners(ctx context.Context, paths []string) (map[string]image.PackageRef, error)
}

// HostPackages is the build host's package database: dpkg's on a Debian
// host, nil when the host has no dpkg.
func HostPackages() PackageDB {
	s, err1 := exec.LookPath("dpkg")
	q, err2 := exec.LookPath("dpkg-query")
	if err1 != nil || err2 != nil {
		return nil
	}
	return Dpkg{Dpkg: s, Query: q}
}

// Dpkg asks Debian's dpkg, in two batched calls: `dpkg -S` for the
// owners of the paths, `dpkg-query -W` for the owners' versions.
type Dpkg struct {
	Dpkg, Query string // the programs' paths
}

var _ PackageDB = Dpkg{}

func (d Dpkg) Owners(ctx context.Context, paths []string) (map[string]image.PackageRef, error) {
	// dpkg -S takes shell patterns: a path with pattern characters would
	// match others, so it is not asked about.
	var ask []string
	for _, p := range paths {
		if strings.HasPrefix(p, "/") && !strings.ContainsAny(p, "*?[\\\n") {
			ask = append(ask, p)
		}
	}
	if len(ask) == 0 {
		return nil, nil
	}
	out, err := runStatus1(ctx, d.Dpkg, append([]string{"-S", "--"}, ask...)...)
	if err != nil {
		return nil, fmt.Errorf("dpkg -S: %w", err)
	}
	owners := parseDpkgSearch(out)
	var names []string
	for _, pkg := range owners {
		if !slices.Contains(names, pkg) {
			names = append(names, pkg)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	out, err = runStatus1(ctx, d.Query, append([]string{"-W", "-f", "${binary:Package}\t${Package}\t${Version}\t${Architecture}\n", "--"}, names...)...)
	if err != nil {
		return nil, fmt.Errorf("dpkg-query -W: %w", err)
	}
	versions := parseDpkgQuery(out)
	refs := map[string]image.PackageRef{}
	for p, pkg := range owners {
		if v, ok := versions[pkg]; ok {
			v.Path = p
			refs[p] = v
		}
	}
	return refs, nil
}

// runStatus1 runs a dpkg program, which exits 1 when some of what it was
// asked about is unknown and still prints the rest.
func runStatus1(ctx context.Context, bin string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	err := cmd.Run()
	var xe *exec.ExitError
	if errors.As(err, &xe) && xe.ExitCode() == 1 {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, tail(stderr.String(), 3))
	}
	return stdout.Bytes(), nil
}

// parseDpkgSearch reads `dpkg -S` output, "pkg[:arch][, pkg2]: /path"
// lines, into path → first owner. Diversion lines are skipped.
func parseDpkgSearch(out []byte) map[string]string {
	owners := map[string]string{}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		if strings.HasPrefix(line, "diversion by ") {
			continue
		}
		i := strings.Index(line, ": /")
		if i <= 0 {
			continue
		}
		pkg, _, _ := strings.Cut(line[:i], ", ")
		if _, ok := owners[line[i+2:]]; !ok && pkg != "" {
			owners[line[i+2:]] = strings.TrimSpace(pkg)
		}
	}
	return owners
}

// parseDpkgQuery reads the dpkg-query lines Owners asks for into the
// packages, keyed by the name dpkg -S gave (binary:Package) and by the
// plain name.
func parseDpkgQuery(out []byte) map[string]image.PackageRef {
	refs := map[string]image.PackageRef{}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) != 4 || f[1] == "" || f[2] == "" {
			continue // not installed: no version
		}
		r := image.PackageRef{Package: f[1], Version: f[2], Arch: f[3]}
		refs[f[0]] = r
		if _, ok := refs[f[1]]; !ok {
			refs[f[1]] = r
		}
	}
	return refs
}

// hostFileRefs lists the regular files res takes from the host, each with
// its package when db knows it. A file is asked about under each path it
// has on the host (the one the loader opens, its real path, and the other
// side of a merged /usr: dpkg knows only the path the package shipped).
// A failing db leaves the packages unknown, with a warning.
func (st *staging) hostFileRefs(ctx context.Context, res *elfdeps.Result) []image.PackageRef {
	aliases := map[string][]string{}
	var files []string
	for _, f := range res.Files {
		if f.HostPath == "" {
			continue
		}
		files = append(files, f.GuestPath)
		aliases[f.GuestPath] = appendAliases(nil, f.HostPath)
		if f.GuestPath != f.HostPath {
			aliases[f.GuestPath] = appendAliases(aliases[f.GuestPath], f.GuestPath)
		}
	}
	for _, l := range res.Libraries {
		if _, ok := aliases[l.Real]; ok {
			aliases[l.Real] = appendAliases(aliases[l.Real], l.Path)
		}
	}
	refs := make([]image.PackageRef, len(files))
	for i, f := range files {
		refs[i] = image.PackageRef{Path: f}
	}
	if st.packages == nil {
		return refs
	}
	var ask []string
	for _, f := range files {
		ask = append(ask, aliases[f]...)
	}
	owners, err := st.packages.Owners(ctx, ask)
	if err != nil {
		st.warnf("the packages of the program's libraries are unknown: %v", err)
		return refs
	}
	for i, f := range files {
		for _, a := range aliases[f] {
			if o, ok := owners[a]; ok {
				refs[i] = image.PackageRef{Path: f, Package: o.Package, Version: o.Version, Arch: o.Arch}
				break
			}
		}
	}
	return refs
}

// appendAliases adds p and its other name across a merged /usr
// (/usr/lib/x ↔ /lib/x) to as, without duplicates.
func appendAliases(as []string, p string) []string {
	add := func(s string) {
		if !slices.Contains(as, s) {
			as = append(as, s)
		}
	}
	add(p)
	for _, top := range []string{"/lib/", "/lib64/", "/bin/", "/sbin/", "/libx32/", "/lib32/"} {
		if rest, ok := strings.CutPrefix(p, "/usr"+top); ok {
			add(top + rest)
		} else if strings.HasPrefix(p, top) {
			add("/usr" + p)
		}
	}
	return as
}
