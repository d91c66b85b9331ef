package assemble

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/nosproject/nos/image"
)

// configFromOptions starts the image config from what the options say.
func configFromOptions(o Options) (image.Config, error) {
	cfg := image.Config{
		Args:          o.Args,
		Env:           o.Env,
		WorkingDir:    o.WorkDir,
		MemoryMiB:     o.MemoryMiB,
		CPUs:          o.CPUs,
		KernelCmdline: DefaultCmdline,
		InitAPI:       image.InitAPI,
		Provenance:    image.ProvenanceV1,
		NoExec:        o.NoExec,
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = image.DefaultMemoryMiB
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = image.DefaultCPUs
	}
	cfg.Entrypoint = o.Entrypoint
	for _, c := range o.Caps {
		norm, err := image.ParseCap(c)
		if err != nil {
			return cfg, fmt.Errorf("--cap-add %s: %w: %w", c, err, ErrBadSource)
		}
		if !slices.Contains(cfg.Caps, norm) {
			cfg.Caps = append(cfg.Caps, norm)
		}
	}
	for _, a := range o.KernelArgs {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '"' }) {
			return cfg, fmt.Errorf("--kernel-arg %q: want one argument without spaces or quotes, e.g. loglevel=7: %w", a, ErrBadSource)
		}
		if k, _, _ := strings.Cut(a, "="); k == "init" || k == "rdinit" {
			return cfg, fmt.Errorf("--kernel-arg %q: nos-init must be the first process; give the program as SOURCE instead: %w", a, ErrBadSource)
		}
		cfg.KernelCmdline += " " + a
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return cfg, fmt.Errorf("--env %q: want KEY=VALUE: %w", kv, ErrBadSource)
		}
	}
	for _, p := range o.Ports {
		norm, err := image.ParsePort(p)
		if err != nil {
			return cfg, err
		}
		cfg.ExposedPorts = append(cfg.ExposedPorts, norm)
	}
	return cfg, nil
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// ParseEntrypoint reads --entrypoint: a JSON array of strings, or words
// separated by spaces.
func ParseEntrypoint(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil || len(argv) == 0 {
			return nil, fmt.Errorf("--entrypoint %s: want a JSON array of strings, e.g. [\"/bin/app\",\"-v\"], or words: %w", s, ErrBadSource)
		}
		return argv, nil
	}
	return strings.Fields(s), nil
}
