package assemble

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goPackage is what `go list` says about the package to build.
type goPackage struct {
	Dir        string
	ImportPath string
	Name       string
	CgoFiles   []string
	Error      *struct{ Err string }
}

// goEnv is the environment every nos Go build uses: static, linux/amd64.
func goEnv(cgo string) []string {
	return append(os.Environ(), "CGO_ENABLED="+cgo, "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
}

// listPackage resolves pkg (a directory, ./cmd/x or an import path) in dir.
func listPackage(ctx context.Context, dir, pkg string) (*goPackage, error) {
	// With CGO_ENABLED=1 so that cgo files show up and can be reported.
	cmd := exec.CommandContext(ctx, "go", "list", "-e", "-json", "--", pkg)
	cmd.Dir = dir
	cmd.Env = goEnv("1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %s: %w", pkg, firstLine(stderr.String(), err.Error()), ErrBadSource)
	}
	var p goPackage
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("go list %s: %w", pkg, err)
	}
	if p.Error != nil {
		return nil, fmt.Errorf("%s: %s: %w", pkg, firstLine(p.Error.Err, ""), ErrBadSource)
	}
	if p.Name != "main" {
		return nil, fmt.Errorf("%s is package %s, not a main package: nos builds programs (package main with func main): %w", pkg, p.Name, ErrNotMain)
	}
	return &p, nil
}

// goBuild compiles the package statically into out. The flags make the
// output a function of the source and the toolchain only: -trimpath drops
// local paths, an empty build id replaces the one derived from file
// metadata, and no VCS stamp is embedded.
func goBuild(ctx context.Context, dir string, p *goPackage, out string) error {
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, p.ImportPath}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = goEnv("0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if len(p.CgoFiles) > 0 {
			return fmt.Errorf("%s needs cgo (import \"C\" in %s); nos builds with CGO_ENABLED=0 so the program runs without a libc: remove the cgo dependency or use a pure-Go alternative: %w", p.ImportPath, strings.Join(p.CgoFiles, ", "), ErrNeedsCgo)
		}
		if dep := cgoDependency(ctx, dir, p.ImportPath); dep != "" {
			return fmt.Errorf("%s needs cgo through %s; nos builds with CGO_ENABLED=0 so the program runs without a libc: %w", p.ImportPath, dep, ErrNeedsCgo)
		}
		return fmt.Errorf("go build %s: %s: %w", p.ImportPath, tail(stderr.String(), 10), ErrBadSource)
	}
	return nil
}

// cgoDependency names a non-standard dependency that only builds with cgo,
// to explain a failed CGO_ENABLED=0 build.
func cgoDependency(ctx context.Context, dir, pkg string) string {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{if and (not .Standard) .CgoFiles}}{{.ImportPath}}{{end}}", "--", pkg)
	cmd.Dir = dir
	cmd.Env = goEnv("1")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return firstLine(string(out), "")
}

func firstLine(s, fallback string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return fallback
	}
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// defaultName derives an image name from a package or file name.
func defaultName(path string) string {
	base := strings.ToLower(filepath.Base(path))
	var b strings.Builder
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-' || r == '_' || r == '.':
			if b.Len() > 0 {
				b.WriteRune(r)
			}
		}
	}
	name := strings.TrimRight(b.String(), "-_.")
	if name == "" {
		return "app"
	}
	return name
}
