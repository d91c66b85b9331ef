package assemble

import (
	"context"

	"github.com/nosproject/nos/image"
)

// staticSource is a statically linked executable, copied into the
// initramfs as it is.
type staticSource struct {
	path string
}

var _ Source = (*staticSource)(nil)

// detectStatic takes a file that is a static x86-64 program, and refuses
// a file that is no program nos can run.
func detectStatic(o Options, p *probe) (Source, error) {
	path, kind, err := p.program()
	if path == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if kind != staticELF {
		return nil, nil
	}
	return &staticSource{path: path}, nil
}

func (s *staticSource) Layout() Layout { return InInitramfs }
func (s *staticSource) Name() string   { return defaultName(s.path) }

func (s *staticSource) Stage(ctx context.Context, st *staging, cfg *image.Config) error {
	return st.addProgram(cfg, s.path, s.Name())
}
