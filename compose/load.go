package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// DefaultFiles are the names a Compose file is looked for under, in order,
// as docker compose does.
var DefaultFiles = []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}

// ErrNoFile: no Compose file was given and none is in the directory.
var ErrNoFile = errors.New("no compose file")

// LoadOptions say which Compose file to read and how.
type LoadOptions struct {
	// Dir is where a default file is looked for ("" is the current
	// directory). Relative paths in the file resolve against the file's
	// directory.
	Dir string
	// Files are the files to read (-f), merged in order; none: the first
	// of DefaultFiles in Dir.
	Files []string
	// Name is the project name (-p); "" takes COMPOSE_PROJECT_NAME, the
	// file's top-level name, else the directory's name, normalized.
	Name string
	// Env is the environment the file is interpolated with (os.Environ()),
	// besides the project directory's .env file.
	Env []string
	// Profiles are the profiles to enable (--profile).
	Profiles []string
}

// FindFile returns the first of DefaultFiles in dir.
func FindFile(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	for _, n := range DefaultFiles {
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return filepath.Abs(p)
		}
	}
	abs, _ := filepath.Abs(dir)
	return "", fmt.Errorf("%w in %s (looked for %s): give one with -f: %w", ErrNoFile, abs, DefaultFiles[0], ErrBadInput)
}

// Load reads the Compose file(s) o names into a project: interpolated,
// merged, extended, normalized and validated by compose-go, whose errors
// name the file, line and key.
func Load(ctx context.Context, o LoadOptions) (*types.Project, error) {
	files := o.Files
	if len(files) == 0 {
		f, err := FindFile(o.Dir)
		if err != nil {
			return nil, err
		}
		files = []string{f}
	}
	opts := []cli.ProjectOptionsFn{cli.WithEnv(o.Env), cli.WithDotEnv, cli.WithProfiles(o.Profiles)}
	if o.Name != "" {
		if err := checkProjectName(o.Name); err != nil {
			return nil, err
		}
		opts = append(opts, cli.WithName(o.Name))
	}
	po, err := cli.NewProjectOptions(files, opts...)
	if err != nil {
		return nil, badInput{err}
	}
	p, err := po.LoadProject(ctx)
	if err != nil {
		return nil, badInput{err}
	}
	return p, nil
}

// LoadBytes loads one Compose file's content, as Load does a file in dir,
// with project name name.
func LoadBytes(ctx context.Context, content []byte, dir, name string, env map[string]string) (*types.Project, error) {
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml"), Content: content}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(name, true)
		o.ResolvePaths = true
		o.SkipInclude = true // no other files: the content is all there is
	})
	if err != nil {
		return nil, badInput{err}
	}
	return p, nil
}

// checkProjectName refuses a -p docker compose would refuse.
func checkProjectName(name string) error {
	if loader.NormalizeProjectName(name) != name || name == "" {
		return fmt.Errorf("project name %q: use lowercase letters, digits, '-' and '_', starting with a letter or digit: %w", name, ErrBadInput)
	}
	return nil
}

// badInput is compose-go's error as it is (it names the file, line and
// key), marked as ErrBadInput.
type badInput struct{ err error }

func (b badInput) Error() string   { return b.err.Error() }
func (b badInput) Unwrap() []error { return []error{b.err, ErrBadInput} }
