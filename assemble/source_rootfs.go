package assemble

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nosproject/nos/image"
)

// rootfsSource is a prepared root directory (--rootfs), copied onto a
// root disk as it is.
type rootfsSource struct {
	dir string
}

var _ Source = (*rootfsSource)(nil)

func detectRootfs(o Options, _ *probe) (Source, error) {
	if o.Rootfs == "" {
		return nil, nil
	}
	fi, err := os.Stat(o.Rootfs)
	if err != nil {
		return nil, fmt.Errorf("--rootfs: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("--rootfs %s is not a directory: %w", o.Rootfs, ErrBadSource)
	}
	if len(o.Entrypoint) == 0 {
		return nil, fmt.Errorf("--rootfs needs --entrypoint: the command to run in the tree: %w", ErrBadSource)
	}
	return &rootfsSource{dir: o.Rootfs}, nil
}

func (s *rootfsSource) Layout() Layout { return OnRootDisk }

func (s *rootfsSource) Name() string {
	abs, _ := filepath.Abs(s.dir)
	return defaultName(abs)
}

func (s *rootfsSource) Stage(ctx context.Context, st *staging, cfg *image.Config) error {
	if err := st.tree.addTree("/", s.dir); err != nil {
		return fmt.Errorf("--rootfs %s: %w", s.dir, err)
	}
	return nil
}
