package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
	"github.com/nosproject/nos/kernel/kbuild"
)

// parseFeatures turns --features values into a normalised feature list:
// "none" (alone) is the empty list.
func parseFeatures(values []string) ([]string, error) {
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
	built kbuild.Cache
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
	if e != nil && e.Origin == kbuild.OriginBuilt {
		k.Origin, k.Features = e.Origin, append([]string{}, e.Features...)
		if k.Version == "" {
			k.Version = e.Version
		}
	}
	return k, nil
}

// buildingKernel is the built-kernel finder of an image that asked for
// features explicitly: when no built kernel has them, it builds one (with
// progress on the way), as `nos kernel build --features` would.
type buildingKernel struct {
	e     *env
	built kbuild.Cache
}

func (b buildingKernel) Find(ctx context.Context) (*kernel.Kernel, error) {
	k, err := b.built.Find(ctx)
	if err == nil || !errors.Is(err, kernel.ErrNoKernel) {
		return k, err
	}
	fmt.Fprintf(b.e.stderr, "no kernel built with the features %s yet: building one (several minutes, once)\n", config.Describe(b.built.Need))
	res, err := buildKernel(ctx, b.e, b.built, kbuild.Options{Features: b.built.Need, Progress: b.e.stderr}, true)
	if err != nil {
		return nil, fmt.Errorf("building a kernel with the features %s: %w", config.Describe(b.built.Need), err)
	}
	return res.Entry.Kernel(), nil
}
