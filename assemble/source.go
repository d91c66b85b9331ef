package assemble

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/nosproject/nos/assemble/elfdeps"
	"github.com/nosproject/nos/image"
)

// A Source is one kind of input an image is built from: a Go package, a
// static or dynamically linked program, a root directory, a container
// image. Each kind is a type in its own source_*.go file, found by its
// entry in sources. Stage takes the package's staging area, so only this
// package implements Source.
type Source interface {
	// Layout says where the source's files go, which decides the kernel
	// features the image cannot do without (see Layout.Features).
	Layout() Layout
	// Stage puts the source's files for the guest in place (st.archive for
	// the initramfs layout, st.tree for a root disk) and completes the
	// image config with what the source implies: entrypoint, environment,
	// working directory, user, ports.
	Stage(ctx context.Context, st *staging, cfg *image.Config) error
	// Name is the image's default name; it is known once staged.
	Name() string
}

// A detector returns the Source for o, nil if o is not of its kind, or
// an error if o is of its kind but unusable.
type detector func(o Options, p *probe) (Source, error)

// sources lists the detectors in the order they are tried. Adding a kind
// of source is adding a file with its type and a line here.
var sources = []detector{
	detectOCI,
	detectRootfs,
	detectStatic,
	detectDynamic,
	detectGo,
}

// detect tells what o builds.
func detect(o Options) (Source, error) {
	n := 0
	for _, s := range []string{o.Source, o.Rootfs, o.FromOCI} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("nothing to build: give a Go main package, a program, --rootfs DIR or --from-oci REF: %w", ErrBadSource)
	case n > 1:
		return nil, fmt.Errorf("give one of SOURCE, --rootfs and --from-oci: %w", ErrBadSource)
	}
	p := &probe{source: o.Source}
	for _, d := range sources {
		src, err := d(o, p)
		if err != nil || src != nil {
			return src, err
		}
	}
	return nil, fmt.Errorf("%s: not a Go package, a program, a root directory or a container image: %w", o.Source, ErrBadSource)
}

// probe looks at o.Source once for every detector: whether it is a file
// (a path, or a bare name found on PATH) and, if so, what kind of ELF
// program it is.
type probe struct {
	source string
	done   bool
	path   string // the file, "" if Source names none
	kind   elfKind
	err    error // why the file is no program nos can run
}

// program returns the file o.Source names and its ELF kind, or path "" if
// it names no regular file.
func (p *probe) program() (path string, kind elfKind, err error) {
	if p.done {
		return p.path, p.kind, p.err
	}
	p.done = true
	if p.source == "" {
		return "", 0, nil
	}
	f := p.source
	if _, err := os.Stat(f); err != nil && !strings.Contains(f, "/") {
		// A bare name (python3.11 too) that is not a path here: a program
		// on PATH, else a Go package.
		if found, lerr := elfdeps.LookPath(f); lerr == nil {
			f = found
		}
	}
	if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
		return "", 0, nil
	}
	p.path = f
	p.kind, p.err = readELFKind(f)
	return p.path, p.kind, p.err
}

// onRootDisk is a one-program source whose files go on a root disk
// (Options.RootDisk): staging.addProgram puts the program in the tree.
type onRootDisk struct{ Source }

func (onRootDisk) Layout() Layout { return OnRootDisk }

// Layout is where an image's application files go.
type Layout int

const (
	// InInitramfs: one file (a Go program, a static executable) in the
	// initramfs, with the init.
	InInitramfs Layout = iota
	// OnRootDisk: a tree of files on a read-only erofs root disk, which
	// the init mounts and switches into. The files stay on the disk: the
	// guest's page cache holds only what the application reads, where an
	// initramfs would be copied whole into guest memory.
	OnRootDisk
)

// Features are the kernel features the layout needs.
func (l Layout) Features() []string {
	if l == OnRootDisk {
		return []string{"blk"}
	}
	return nil
}

// why explains to the user why the layout needs its features.
func (l Layout) why() string {
	if l == OnRootDisk {
		return "this image's files go on a root disk"
	}
	return "this image"
}
