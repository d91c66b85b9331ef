package kbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/nosproject/nos/kernel/config"
)

// Options say what kernel to build.
type Options struct {
	// Source is a kernel source directory or tarball; "" is the newest
	// tarball matching SourceGlob (DefaultSourceGlob when "").
	Source     string
	SourceGlob string
	// Features are the fragments built in besides the base; nil means
	// config.DefaultFeatures, an empty slice none.
	Features []string
	// Jobs is make's -j; 0 is the number of CPUs.
	Jobs int
	// Progress receives a line per phase and per hundred build steps, and
	// the tail of make's output when it fails; nil discards them.
	Progress io.Writer
}

// Result is a built kernel.
type Result struct {
	Entry *Entry
	// Cached is set when the kernel was in the cache already.
	Cached bool
}

// builder holds what tests replace.
type builder struct {
	reqs      []requirement
	every     int
	heartbeat time.Duration
	// strip copies an ELF file without its symbols.
	strip func(ctx context.Context, src, dst string) error
}

// Build builds the kernel o describes into the cache c, or finds it there,
// and makes it the default. A missing tool or source is a *MissingError; a
// configuration the kernel does not accept a *config.CheckError; a failed
// compilation a *MakeError. Nothing is left in the cache when it fails.
func Build(ctx context.Context, c Cache, o Options) (*Result, error) {
	res, err := BuildAll(ctx, c, o, [][]string{o.Features})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// BuildAll builds a kernel for each feature set (nil is
// config.DefaultFeatures) from o's source, ignoring o.Features, and makes
// the last set's kernel the default. The kernels not in the cache yet are
// compiled one after another in one extracted source and one output
// directory, fewest features first: kbuild then recompiles only the
// objects whose options changed. The results are in the order of sets.
// Kernels built before a failure stay in the cache.
func BuildAll(ctx context.Context, c Cache, o Options, sets [][]string) ([]*Result, error) {
	return builder{reqs: requirements, every: 100, heartbeat: 30 * time.Second, strip: strip}.buildAll(ctx, c, o, sets)
}

func (b builder) build(ctx context.Context, c Cache, o Options) (*Result, error) {
	res, err := b.buildAll(ctx, c, o, [][]string{o.Features})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// variant is one kernel of a BuildAll: its features and merged options.
type variant struct {
	features []string
	frags    []config.Fragment
	want     *config.Config
	id       string
}

func (b builder) buildAll(ctx context.Context, c Cache, o Options, sets [][]string) ([]*Result, error) {
	p := o.Progress
	if p == nil {
		p = io.Discard
	}
	if c.Dir == "" {
		return nil, fmt.Errorf("kernel build: no cache directory")
	}
	if len(sets) == 0 {
		return nil, fmt.Errorf("kernel build: no feature set to build")
	}
	vs := make([]*variant, len(sets))
	for i, set := range sets {
		if set == nil {
			set = config.DefaultFeatures
		}
		features, err := config.NormalizeFeatures(set)
		if err != nil {
			return nil, err
		}
		frags, err := config.Fragments(features)
		if err != nil {
			return nil, err
		}
		want, err := config.Merge(frags)
		if err != nil {
			return nil, err
		}
		vs[i] = &variant{features: features, frags: frags, want: want}
	}
	// A missing source package and missing tools are reported together,
	// so that one apt-get install fixes both.
	src, err := ResolveSource(o.Source, o.SourceGlob)
	var missingSrc *MissingError
	if err != nil && !errors.As(err, &missingSrc) {
		return nil, err
	}
	if err := joinMissing(missingSrc, checkTools(b.reqs, src.Tarball || missingSrc != nil)); err != nil {
		return nil, err
	}

	fmt.Fprintf(p, "kernel build: hashing the source %s\n", src.Path)
	digest, err := src.Digest(ctx)
	if err != nil {
		return nil, err
	}
	compiler := compilerID(ctx)
	results := make([]*Result, len(vs))
	var todo []int
	for i, v := range vs {
		v.id = buildKey(digest, v.want, compiler, sourceEdits(src))
		if e, err := c.load(v.id); err == nil {
			results[i] = &Result{Entry: e, Cached: true}
		} else if !slices.ContainsFunc(todo, func(j int) bool { return vs[j].id == v.id }) {
			todo = append(todo, i)
		}
	}
	// Fewest options first: each later build then mostly adds objects.
	slices.SortStableFunc(todo, func(i, j int) int { return len(vs[i].want.Bytes()) - len(vs[j].want.Bytes()) })
	if len(todo) > 0 {
		built, err := b.compile(ctx, c, o, p, src, digest, compiler, vs, todo)
		for i, r := range built {
			results[i] = r
		}
		if err != nil {
			return nil, err
		}
	}
	for i, v := range vs { // a set named twice
		if results[i] == nil {
			e, err := c.load(v.id)
			if err != nil {
				return nil, err
			}
			results[i] = &Result{Entry: e}
		}
	}
	return results, c.Select(results[len(results)-1].Entry)
}

// compile builds the variants vs[todo...] in order in one work directory
// and returns their results by index.
func (b builder) compile(ctx context.Context, c Cache, o Options, p io.Writer, src Source, digest, compiler string, vs []*variant, todo []int) (map[int]*Result, error) {
	w, err := c.newWork()
	if err != nil {
		return nil, fmt.Errorf("kernel build: %w", err)
	}
	defer w.close()
	tree := src.Path
	if src.Tarball {
		fmt.Fprintf(p, "kernel build: extracting %s\n", src.Path)
		dir := filepath.Join(w.dir, "src")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, err
		}
		if tree, err = extract(ctx, src.Path, dir); err != nil {
			return nil, err
		}
		for _, e := range sourceEdits(src) {
			fmt.Fprintf(p, "kernel build: changing the source: %s\n", e.name)
		}
		if err := applyEdits(tree, sourceEdits(src)); err != nil {
			return nil, err
		}
	}
	out := filepath.Join(w.dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return nil, err
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	m := &maker{src: tree, out: out, jobs: jobs, env: kbuildEnv(tree), progress: p, every: b.every, heartbeat: b.heartbeat}

	done := map[int]*Result{}
	for n, i := range todo {
		v := vs[i]
		start := time.Now()
		if n > 0 {
			if err := os.Mkdir(w.stage, 0o755); err != nil {
				return done, err
			}
		}
		fmt.Fprintf(p, "kernel build: configuring: tinyconfig + fragments %s\n", strings.Join(fragNames(v.frags), ", "))
		if err := configure(ctx, m, tree, v.want); err != nil {
			return done, err
		}
		what := "several minutes"
		if n > 0 {
			what = "only what these options change"
		}
		fmt.Fprintf(p, "kernel build: compiling with make -j%d bzImage (%s)\n", jobs, what)
		if err := m.run(ctx, true, "bzImage"); err != nil {
			return done, err
		}
		e := &Entry{
			ID: v.id, Origin: OriginBuilt, Features: v.features,
			Source: src.Path, SourceDigest: digest, ConfigHash: v.want.Hash(), Compiler: compiler,
			Image: bzImageName, Config: configName, Created: time.Now().UTC(),
		}
		if err := b.collect(ctx, out, w.stage, e); err != nil {
			return done, fmt.Errorf("kernel build: collecting the results: %w", err)
		}
		e.BuildSeconds = int64(time.Since(start).Round(time.Second) / time.Second)
		e, err = c.commit(w, e)
		if err != nil {
			return done, fmt.Errorf("kernel build: storing the kernel: %w", err)
		}
		fmt.Fprintf(p, "kernel build: kernel with features %s built in %s\n", config.Describe(v.features), round(time.Since(start)))
		done[i] = &Result{Entry: e}
	}
	fmt.Fprintln(p, "kernel build: removing the build directory")
	return done, nil
}

// configure writes out/.config: tinyconfig, the fragments laid over it,
// olddefconfig to resolve dependencies; then checks that every option of
// want survived.
func configure(ctx context.Context, m *maker, tree string, want *config.Config) error {
	if err := m.run(ctx, false, "tinyconfig"); err != nil {
		return err
	}
	path := filepath.Join(m.out, ".config")
	base, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("kernel build: tinyconfig: %w", err)
	}
	if err := os.WriteFile(path, config.Overlay(base, want), 0o644); err != nil {
		return err
	}
	if err := m.run(ctx, false, "olddefconfig"); err != nil {
		return err
	}
	resolved, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("kernel build: olddefconfig: %w", err)
	}
	got, err := config.ParseBytes(resolved)
	if err != nil {
		return fmt.Errorf("kernel build: reading the resolved .config: %w", err)
	}
	known, err := config.KnownSymbols(tree)
	if err != nil {
		return fmt.Errorf("kernel build: %w", err)
	}
	if err := config.Check(want, got, known); err != nil {
		return fmt.Errorf("kernel configuration check failed: %w", err)
	}
	return nil
}

// collect copies the build's results into stage: the bzImage, a stripped
// vmlinux (bootable through its PVH entry point), the .config; and fills
// e.Version.
func (b builder) collect(ctx context.Context, out, stage string, e *Entry) error {
	release, err := os.ReadFile(filepath.Join(out, "include", "config", "kernel.release"))
	if err != nil {
		return err
	}
	e.Version = strings.TrimSpace(string(release))
	if err := copyFile(filepath.Join(out, "arch", "x86", "boot", "bzImage"), filepath.Join(stage, bzImageName)); err != nil {
		return err
	}
	if err := copyFile(filepath.Join(out, ".config"), filepath.Join(stage, configName)); err != nil {
		return err
	}
	if err := b.strip(ctx, filepath.Join(out, "vmlinux"), filepath.Join(stage, vmlinuxName)); err != nil {
		return err
	}
	e.Vmlinux = vmlinuxName
	return nil
}

// strip runs strip(1).
func strip(ctx context.Context, src, dst string) error {
	_, err := runTool(ctx, "", nil, "strip", "-o", dst, src)
	return err
}

// keyVersion changes when the way nos builds kernels changes, so that old
// entries are not mistaken for new ones.
const keyVersion = "nos kernel build v1"

// buildKey digests a build's inputs: the source, the merged fragments and
// the compiler.
func buildKey(sourceDigest string, cfg *config.Config, compiler string, es []edit) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nsource %s\ncompiler %s\nconfig\n", keyVersion, sourceDigest, compiler)
	h.Write(cfg.Bytes())
	if len(es) > 0 { // keys of unchanged sources stay what they were
		fmt.Fprintf(h, "edits\n")
		h.Write(editsKey(es))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sourceEdits are the edits a build of src makes: all of them to an
// extracted tarball, none to a directory (the user's own tree).
func sourceEdits(src Source) []edit {
	if src.Tarball {
		return edits
	}
	return nil
}

// compilerID names the C compiler a build uses: the first line of
// `gcc --version`.
func compilerID(ctx context.Context) string {
	out, err := runTool(ctx, "", nil, "gcc", "--version")
	if err != nil {
		return "unknown"
	}
	first, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.TrimSpace(string(first))
}

// kbuildEnv makes builds repeatable: a fixed user, host and build number,
// and the source's date instead of now in the kernel's version string.
func kbuildEnv(tree string) []string {
	stamp := time.Unix(0, 0).UTC()
	if fi, err := os.Stat(filepath.Join(tree, "Makefile")); err == nil {
		stamp = fi.ModTime().UTC()
	}
	return []string{
		"KBUILD_BUILD_USER=nos",
		"KBUILD_BUILD_HOST=nos",
		"KBUILD_BUILD_VERSION=1",
		"KBUILD_BUILD_TIMESTAMP=" + stamp.Format(time.UnixDate),
	}
}

func fragNames(frags []config.Fragment) []string {
	var names []string
	for _, f := range frags {
		names = append(names, f.Name)
	}
	return names
}
