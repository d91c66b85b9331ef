package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nosproject/nos/internal/buildstamp"
	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/vmm/accel"

	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
	"github.com/nosproject/nos/kernel/kbuild"
)

const (
	appPkg   = "./examples/httpserver"
	appImage = "httpserver"
	appPort  = 8080
)

// harness holds what every measurement shares: the binaries under test,
// the private nos home and the kernel.
type harness struct {
	opts   options
	root   string // repository root, where packages are resolved
	tmp    string // removed by close
	nos    string // nos binary, with nos-init beside it
	home   string // NOS_HOME of every nos command
	kernel string
	accel  string // resolved: tcg or kvm
	env    []string
}

// newHarness builds nos and nos-init and prepares an empty nos home.
func newHarness(ctx context.Context, o options) (*harness, error) {
	root, err := repoRoot(ctx)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "nos-bench-")
	if err != nil {
		return nil, fmt.Errorf("creating temporary directory: %w", err)
	}
	h := &harness{opts: o, root: root, tmp: tmp, home: filepath.Join(tmp, "home")}
	if err := h.setup(ctx); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *harness) setup(ctx context.Context) error {
	if err := os.Mkdir(h.home, 0o700); err != nil {
		return fmt.Errorf("creating nos home: %w", err)
	}
	h.env = append(envWithout("NOS_HOME", "NOS_INIT"), "NOS_HOME="+h.home)
	bin := filepath.Join(h.tmp, "bin")
	h.nos = filepath.Join(bin, "nos")
	progress("building nos, nos-monitor and nos-init into %s", bin)
	// As `make build` does: nos and nos-monitor with one build stamp (so
	// nos starts that monitor), nos-init stripped, it goes into every image.
	stamp := "-ldflags=" + buildstamp.Flag(fmt.Sprintf("bench-%d", time.Now().UnixNano()))
	if _, err := h.goBuild(ctx, h.nos, "./cmd/nos", stamp); err != nil {
		return err
	}
	if _, err := h.goBuild(ctx, filepath.Join(bin, "nos-monitor"), "./cmd/nos-monitor", stamp); err != nil {
		return err
	}
	if _, err := h.goBuild(ctx, filepath.Join(bin, "nos-init"), "./cmd/nos-init", "-ldflags=-s -w -buildid="); err != nil {
		return err
	}
	k, err := findKernel(ctx, h.opts.kernel)
	if err != nil {
		return err
	}
	h.kernel = k
	accel, _, err := accel.Choose(ctx, h.opts.accel, home.Layout{Root: h.home}.Cache())
	if err != nil {
		return fmt.Errorf("choosing the accelerator: %w", err)
	}
	h.accel = accel
	progress("kernel %s, accelerator %s", h.kernel, h.accel)
	return nil
}

func (h *harness) close() { os.RemoveAll(h.tmp) }

// repoRoot is the directory of the main module's go.mod.
func repoRoot(ctx context.Context) (string, error) {
	out, err := output(ctx, "", nil, "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(out)
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not in a Go module: run the benchmark from the nos repository (go run ./bench)")
	}
	return filepath.Dir(gomod), nil
}

// findKernel returns path when given, else what nos build gives a user
// by default: nos's own kernel with the default features; without one,
// the distribution kernel nos fetched, then the host's /boot, saying so.
func findKernel(ctx context.Context, path string) (string, error) {
	if path != "" {
		k, err := kernel.File{Path: path}.Find(ctx)
		if err != nil {
			return "", fmt.Errorf("-kernel: %w", err)
		}
		return k.Path, nil
	}
	if e, err := builtKernel(config.DefaultFeatures); err == nil {
		return e.Path(), nil
	}
	progress("no nos-built kernel with the default features (make kernel): measuring the distribution kernel")
	return distroKernel(ctx)
}

// distroKernel is the distribution kernel nos fetched, else the host's.
func distroKernel(ctx context.Context) (string, error) {
	l, err := home.Default()
	if err != nil {
		return "", err
	}
	k, err := kernel.Chain{kernel.Cache{Dir: l.FetchedKernels()}, kernel.Host{}}.Find(ctx)
	if err != nil {
		return "", fmt.Errorf("the benchmark boots a real kernel: %w (run `make deps`, or pass -kernel)", err)
	}
	return k.Path, nil
}

// goBuild builds pkg statically for linux/amd64 into out, as the e2e tests
// build nos, and returns how long it took.
func (h *harness) goBuild(ctx context.Context, out, pkg string, flags ...string) (time.Duration, error) {
	args := append(append([]string{"build", "-trimpath"}, flags...), "-o", out, pkg)
	env := append(envWithout("CGO_ENABLED", "GOOS", "GOARCH", "GOFLAGS"), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	start := time.Now()
	if _, err := output(ctx, h.root, env, "go", args...); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// runNos runs nos to completion and returns its stdout.
func (h *harness) runNos(ctx context.Context, args ...string) (string, error) {
	return output(ctx, h.root, h.env, h.nos, args...)
}

// output runs a command and returns its stdout; the error carries stderr.
func output(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// envWithout is the environment without the given variables.
func envWithout(keys ...string) []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, k := range keys {
			if strings.HasPrefix(kv, k+"=") {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return env
}

// progress tells what is going on, on stderr, so that stdout is the report.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// builtKernel returns the kernel nos build picks, in the user's nos home,
// for an image that needs the given features (see kbuild.Cache.Match).
func builtKernel(need []string) (*kbuild.Entry, error) {
	l, err := home.Default()
	if err != nil {
		return nil, err
	}
	return kbuild.Cache{Dir: l.BuiltKernels()}.Match(need)
}
