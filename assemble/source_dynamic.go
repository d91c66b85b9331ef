package assemble

import (
	"context"
	"fmt"
	"strings"

	"github.com/nosproject/nos/assemble/elfdeps"
	"github.com/nosproject/nos/image"
)

// dynamicSource is a dynamically linked program, which goes on a root
// disk with its interpreter and libraries, each where the guest's loader
// looks for it.
type dynamicSource struct {
	path string
}

var _ Source = (*dynamicSource)(nil)

func detectDynamic(o Options, p *probe) (Source, error) {
	path, kind, err := p.program()
	if path == "" || err != nil || kind != dynamicELF {
		return nil, nil
	}
	return &dynamicSource{path: path}, nil
}

func (s *dynamicSource) Layout() Layout { return OnRootDisk }
func (s *dynamicSource) Name() string   { return defaultName(s.path) }

func (s *dynamicSource) Stage(ctx context.Context, st *staging, cfg *image.Config) error {
	res, err := elfdeps.Resolve(s.path, elfdeps.Options{})
	if err != nil {
		return fmt.Errorf("%w: %w", err, ErrBadSource)
	}
	if err := st.tree.addResolved(res, nil); err != nil {
		return err
	}
	// Shared objects given with --add (Python's extension modules, NSS or
	// nginx modules) are loaded with dlopen: their libraries come too.
	if objs := addedObjects(st.adds); len(objs) > 0 {
		more, err := elfdeps.ResolveObjects(res, objs, elfdeps.Options{})
		if err != nil {
			return fmt.Errorf("%w: %w", err, ErrBadSource)
		}
		if err := st.tree.addResolved(more, res); err != nil {
			return err
		}
		res = more
	}
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = []string{res.Program}
	}
	if len(res.LibraryDirs) > 0 && !hasEnv(cfg.Env, "LD_LIBRARY_PATH") {
		cfg.Env = append([]string{"LD_LIBRARY_PATH=" + strings.Join(res.LibraryDirs, ":")}, cfg.Env...)
	}
	cfg.Packages = st.hostFileRefs(ctx, res)
	return nil
}
