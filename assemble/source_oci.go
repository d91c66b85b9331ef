package assemble

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/oci"
)

// ociSource is a container image (--from-oci): its layers are extracted
// onto a root disk and its config becomes the image's defaults.
type ociSource struct {
	ref string
}

var _ Source = (*ociSource)(nil)

func detectOCI(o Options, _ *probe) (Source, error) {
	if o.FromOCI == "" {
		return nil, nil
	}
	return &ociSource{ref: o.FromOCI}, nil
}

func (s *ociSource) Layout() Layout { return OnRootDisk }

// Name is the last path element of the reference without tag or digest.
func (s *ociSource) Name() string {
	ref := strings.TrimRight(s.ref, "/")
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	ref, _, _ = strings.Cut(ref, "@")
	ref, _, _ = strings.Cut(ref, ":")
	ref = strings.TrimSuffix(strings.TrimSuffix(ref, ".tar"), ".oci")
	return defaultName(ref)
}

func (s *ociSource) Stage(ctx context.Context, st *staging, cfg *image.Config) error {
	c, fromRegistry, err := s.extract(ctx, st)
	if err != nil {
		return err
	}
	cfg.Source = &image.Source{Type: "oci", Digest: c.Digest}
	if fromRegistry {
		cfg.Source.Ref = s.ref
	}
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = c.Entrypoint
		if len(cfg.Args) == 0 {
			cfg.Args = c.Cmd
		}
		if len(cfg.Entrypoint) == 0 { // a command alone, as docker runs it
			cfg.Entrypoint, cfg.Args = cfg.Args, nil
		}
	}
	cfg.Env = image.MergeEnv(c.Env, cfg.Env)
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = c.WorkingDir
	}
	if st.user == "" {
		st.user = c.User
	}
	for _, p := range c.ExposedPorts {
		if !slices.Contains(cfg.ExposedPorts, p) {
			cfg.ExposedPorts = append(cfg.ExposedPorts, p)
		}
	}
	return nil
}

// extract applies the container image's layers to the tree, keeps what
// the extractor warns about and returns the image's configuration and
// whether it came from a registry.
func (s *ociSource) extract(ctx context.Context, st *staging) (oci.Config, bool, error) {
	im, err := oci.Open(ctx, s.ref, oci.WithTempDir(st.tmp))
	if err != nil {
		return oci.Config{}, false, fmt.Errorf("%w: %w", err, ErrBadSource)
	}
	defer im.Close()
	c, err := im.Config()
	if err != nil {
		return c, false, err
	}
	t, err := im.Extract(ctx, st.tree.dir, oci.Limits{})
	if err != nil {
		return c, false, fmt.Errorf("%w: %w", err, ErrBadSource)
	}
	for _, w := range t.Warnings {
		st.warnf("%s: %s", s.ref, w)
	}
	return c, im.FromRegistry(), nil
}
