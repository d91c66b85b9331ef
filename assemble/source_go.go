package assemble

import (
	"context"
	"path/filepath"
	"time"

	"github.com/nosproject/nos/image"
)

// goSource is a Go main package, compiled statically into the initramfs.
type goSource struct {
	pkg, dir string // the package as given, and where it is resolved
	name     string // set by Stage
}

var _ Source = (*goSource)(nil)

// detectGo takes any source that names no file: a directory, ./cmd/x or
// an import path; `go list` says in Stage whether it is one.
func detectGo(o Options, p *probe) (Source, error) {
	if o.Source == "" {
		return nil, nil
	}
	if path, _, _ := p.program(); path != "" {
		return nil, nil
	}
	return &goSource{pkg: o.Source, dir: o.Dir}, nil
}

func (s *goSource) Layout() Layout { return InInitramfs }
func (s *goSource) Name() string   { return s.name }

func (s *goSource) Stage(ctx context.Context, st *staging, cfg *image.Config) error {
	p, err := listPackage(ctx, s.dir, s.pkg)
	if err != nil {
		return err
	}
	s.name = defaultName(p.ImportPath)
	out := filepath.Join(st.tmp, "app")
	start := time.Now()
	if err := goBuild(ctx, s.dir, p, out); err != nil {
		return err
	}
	st.log.Debug("go build", "package", p.ImportPath, "took", time.Since(start))
	return st.addProgram(cfg, out, s.name)
}
