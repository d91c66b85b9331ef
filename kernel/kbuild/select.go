package kbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
)

// Selector chooses the kernel an image boots, given the features the
// image needs: the kernel named with --kernel; else, when the features
// were asked for explicitly, a kernel built with them, built now if there
// is none; else the default chain (see Default).
type Selector struct {
	// Built holds the kernels nos built or imported; its Need is ignored.
	Built Cache
	// FetchedDir is where nos fetched kernels (a kernel.Cache).
	FetchedDir string
	// BootDir replaces /boot as the place of the host's kernels.
	BootDir string
	// Named is the kernel given by the user (--kernel), "" for none: a
	// file, or the ID (or unique ID prefix) of a kernel in Built.
	Named string
	// Explicit says the features were asked for (--features): the kernel
	// must then have them.
	Explicit bool
	// Build builds a kernel with the features, for an explicit request no
	// built kernel fits; nil leaves the request unfulfilled.
	Build func(ctx context.Context, features []string) (*kernel.Kernel, error)
	// Progress receives a line before a kernel is built; nil discards it.
	Progress io.Writer
}

// For returns the finder of the kernel for an image needing the features.
func (s Selector) For(needs []string) kernel.Finder {
	built := s.Built
	built.Need = needs
	switch {
	case s.Named != "":
		var explicit []string
		if s.Explicit {
			explicit = needs
		}
		return namedKernel{arg: s.Named, built: built, need: explicit}
	case s.Explicit:
		return kernel.Chain{buildingKernel{built: built, build: s.Build, progress: s.Progress}}
	default:
		return s.Default(needs)
	}
}

// Default prefers a kernel nos built with the features needed (or the one
// it imported last), then a kernel nos fetched into its cache (made for
// VMs, with every feature as modules), then the host's own.
func (s Selector) Default(needs []string) kernel.Finder {
	built := s.Built
	built.Need = needs
	return kernel.Chain{
		built,
		kernel.Cache{Dir: s.FetchedDir},
		kernel.Host{BootDir: s.BootDir},
	}
}

// ParseFeatures turns --features values into a normalised feature list:
// "none" (alone) is the empty list.
func ParseFeatures(values []string) ([]string, error) {
	var fs []string
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "none" {
				if len(values) > 1 || strings.Contains(v, ",") {
					return nil, fmt.Errorf("--features: 'none' cannot be combined with other features")
				}
				continue
			}
			fs = append(fs, f)
		}
	}
	fs, err := config.NormalizeFeatures(fs)
	if err != nil {
		return nil, fmt.Errorf("--features: %w", err)
	}
	if fs == nil {
		fs = []string{}
	}
	return fs, nil
}

// namedKernel finds the kernel given with --kernel: a file, or the ID (or
// unique ID prefix) of a kernel nos built or imported. A file that is one
// of nos's built kernels keeps the features it was built with.
type namedKernel struct {
	arg   string
	built Cache
	// need is what the image asked for explicitly, nil when it did not:
	// the kernel must then have it.
	need []string
}

func (n namedKernel) Find(ctx context.Context) (*kernel.Kernel, error) {
	k, err := n.find(ctx)
	if err != nil {
		return nil, err
	}
	if n.need != nil && k.Features != nil {
		var lack []string
		for _, f := range n.need {
			if !slices.Contains(k.Features, f) {
				lack = append(lack, f)
			}
		}
		if len(lack) > 0 {
			return nil, fmt.Errorf("--kernel %s: the kernel lacks the features %s that --features asks for (it has: %s); build one with `nos kernel build --features %s`",
				n.arg, strings.Join(lack, ","), config.Describe(k.Features), strings.Join(n.need, ","))
		}
	}
	return k, nil
}

func (n namedKernel) find(ctx context.Context) (*kernel.Kernel, error) {
	if _, err := os.Stat(n.arg); err != nil {
		if !errors.Is(err, os.ErrNotExist) || strings.ContainsRune(n.arg, '/') {
			return nil, fmt.Errorf("--kernel %s: %w", n.arg, err)
		}
		// Not a file: a kernel ID, as nos kernel ls shows them.
		e, gerr := n.built.Get(n.arg)
		if gerr != nil {
			return nil, fmt.Errorf("--kernel %s: no such file, and %w", n.arg, gerr)
		}
		return e.Kernel(), nil
	}
	k, err := kernel.File{Path: n.arg}.Find(ctx)
	if err != nil {
		return nil, err
	}
	e, err := n.built.ForFile(ctx, k.Path)
	if err != nil {
		return nil, fmt.Errorf("--kernel %s: %w", n.arg, err)
	}
	if e != nil && e.Origin == OriginBuilt {
		k.Origin, k.Features, k.ConfigHash = e.Origin, append([]string{}, e.Features...), e.ConfigHash
		if k.Version == "" {
			k.Version = e.Version
		}
	}
	return k, nil
}

// buildingKernel is the built-kernel finder of an image that asked for
// features explicitly: when no built kernel has them, it builds one, as
// `nos kernel build --features` would.
type buildingKernel struct {
	built    Cache
	build    func(ctx context.Context, features []string) (*kernel.Kernel, error)
	progress io.Writer
}

func (b buildingKernel) Find(ctx context.Context) (*kernel.Kernel, error) {
	k, err := b.built.Find(ctx)
	if err == nil || !errors.Is(err, kernel.ErrNoKernel) || b.build == nil {
		return k, err
	}
	if b.progress != nil {
		fmt.Fprintf(b.progress, "no kernel built with the features %s yet: building one (several minutes, once)\n", config.Describe(b.built.Need))
	}
	k, err = b.build(ctx, b.built.Need)
	if err != nil {
		return nil, fmt.Errorf("building a kernel with the features %s: %w", config.Describe(b.built.Need), err)
	}
	return k, nil
}
