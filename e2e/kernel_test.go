package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nosproject/nos/internal/home"

	"github.com/nosproject/nos/kernel/config"
	"github.com/nosproject/nos/kernel/kbuild"
)

var (
	builtOnce  sync.Once
	builtEntry *kbuild.Entry
	builtErr   error
)

// builtKernel returns the nos-built kernel the kernel tests boot: the cache
// entry directory $NOS_TEST_BUILT_KERNEL names, else the default kernel of
// the built-kernel cache in the default nos home (`make kernel` puts one
// there). It must have networking. Without one the test fails: building a
// kernel takes minutes, so the tests do not do it themselves.
func builtKernel(t *testing.T) *kbuild.Entry {
	t.Helper()
	builtOnce.Do(func() { builtEntry, builtErr = findBuiltKernel() })
	if builtErr != nil {
		t.Fatalf("the kernel tests boot a kernel built by nos: %v; run `make kernel` (nos kernel build), or set NOS_TEST_BUILT_KERNEL to a built kernel's directory", builtErr)
	}
	return builtEntry
}

func findBuiltKernel() (*kbuild.Entry, error) {
	if dir := os.Getenv("NOS_TEST_BUILT_KERNEL"); dir != "" {
		dir, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		e, err := kbuild.Cache{Dir: filepath.Dir(dir)}.Get(filepath.Base(dir))
		if err != nil {
			return nil, fmt.Errorf("NOS_TEST_BUILT_KERNEL=%s: %w", dir, err)
		}
		return e, nil
	}
	l, err := home.Default()
	if err != nil {
		return nil, err
	}
	// The kernel nos build picks for images that need networking.
	c := kbuild.Cache{Dir: l.BuiltKernels()}
	e, err := c.Match([]string{"net"})
	if err != nil {
		return nil, err
	}
	if e.Origin != kbuild.OriginBuilt {
		return nil, fmt.Errorf("the default kernel in %s is an imported one", c.Dir)
	}
	return e, nil
}

// withBuiltKernel copies the built kernel into e's nos home, where it
// becomes the default kernel, and returns it.
func (e *nosEnv) withBuiltKernel() *kbuild.Entry {
	e.t.Helper()
	k := builtKernel(e.t)
	dest := filepath.Join(home.Layout{Root: e.home}.BuiltKernels(), k.ID)
	if err := copyDir(k.Dir(), dest); err != nil {
		e.t.Fatalf("copying the built kernel: %v", err)
	}
	return k
}

func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	des, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		in, err := os.Open(filepath.Join(src, de.Name()))
		if err != nil {
			return err
		}
		out, err := os.Create(filepath.Join(dst, de.Name()))
		if err == nil {
			_, err = io.Copy(out, in)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		in.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// imageKernel returns the kernel an image records in its config.
func (e *nosEnv) imageKernel(ref string) (version, origin string, modules []string) {
	e.t.Helper()
	r := e.nos("inspect", ref)
	var out []struct {
		Config struct {
			Kernel  struct{ Version, Origin string }
			Modules []string
		}
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out) != 1 {
		e.t.Fatalf("inspect %s: %v", ref, r)
	}
	c := out[0].Config
	return c.Kernel.Version, c.Kernel.Origin, c.Modules
}

func TestBuiltKernelBootsAndServes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := e.withBuiltKernel()

	// It is the default: nos kernel ls marks it, nos build uses it.
	r := e.nos("kernel", "ls")
	if r.code != 0 || !regexpLine(r.stdout, `^\*\s+`+k.ShortID()+`\s+`+regexp.QuoteMeta(k.Version)+`\s+built\s+net`) {
		t.Fatalf("kernel ls does not show the built kernel %s as the default: %v", k.ShortID(), r)
	}
	// hello with --kernel-arg: the boot messages quiet hides come back.
	for _, b := range [][]string{{"-t", "hello", "--kernel-arg", "loglevel=7", "./examples/hello"}, {"-t", "httpserver", "--port", "8080", "./examples/httpserver"}} {
		if r := e.nos(append([]string{"build"}, b...)...); r.code != 0 || !strings.Contains(r.stderr, "kernel "+k.Version) {
			t.Fatalf("nos build %v with the built kernel: %v", b, r)
		}
	}
	version, origin, modules := e.imageKernel("hello")
	if version != k.Version || origin != kbuild.OriginBuilt || len(modules) != 0 {
		t.Fatalf("image kernel = %s from %s with modules %v; want %s, built, no modules", version, origin, modules, k.Version)
	}

	r = e.run("--name", "hello-built", "hello", "x")
	if r.code != 0 || r.stdout != "Hello, world!\nargs: [x]\n" {
		t.Fatalf("hello on the built kernel: %v", r)
	}
	if c := e.nos("logs", "--console", "hello-built"); !strings.Contains(c.stdout, "Linux version "+k.Version) {
		t.Fatalf("the console log does not show the built kernel booting: %v", c)
	}
	e.nos("rm", "hello-built")

	// Too little memory: the kernel panics, and nos says so, never success.
	// At nos's least, 24 MiB, hello loads (into 13 MiB) but does not fit
	// ("System is deadlocked on memory" while the initramfs unpacks).
	r = e.run("--name", "hello-panic", "-m", "24m", "hello")
	if r.code != 125 || !strings.Contains(r.stderr, "Kernel panic") {
		t.Fatalf("a guest kernel panic: want exit 125 and the panic line, got %v", r)
	}
	if ps := e.nos("ps", "-a"); !strings.Contains(ps.stdout, "Crashed (kernel panic)") {
		t.Fatalf("ps -a does not explain the panic: %v", ps)
	}
	e.nos("rm", "hello-panic")

	port := freePort(t)
	s := e.start("-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "-e", "GREETING=hi from nos's kernel", "httpserver")
	if body := waitHTTP(t, s, fmt.Sprintf("http://127.0.0.1:%d/", port), 2*time.Minute); !strings.Contains(body, "hi from nos's kernel") {
		t.Fatalf("unexpected body %q", body)
	}
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := s.wait(t, time.Minute); code != 0 {
		_, errs := s.output()
		t.Fatalf("want a graceful stop with exit 0, got %d, stderr:\n%s", code, errs)
	}
}

func TestKernelImportLsRm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := builtKernel(t)

	r := e.nos("kernel", "import", k.Path())
	fields := strings.Fields(r.stdout)
	if r.code != 0 || len(fields) != 3 || fields[1] != k.Version {
		t.Fatalf("kernel import: %v", r)
	}
	id := fields[0]
	r = e.nos("kernel", "ls")
	if r.code != 0 || !regexpLine(r.stdout, `^\*\s+`+id+`\s+`+regexp.QuoteMeta(k.Version)+`\s+imported\s`) {
		t.Fatalf("kernel ls does not show the imported kernel as the default: %v", r)
	}
	if r := e.nos("kernel", "import", k.Path()); r.code != 0 || !strings.Contains(r.stderr, "imported already") {
		t.Errorf("second import: %v", r)
	}
	if r := e.nos("kernel", "import", filepath.Join(repoRoot, "README.md")); r.code != 1 || !strings.Contains(r.stderr, "not a kernel image") {
		t.Errorf("importing a non-kernel: %v", r)
	}
	if r := e.nos("kernel", "rm", id); r.code != 0 || strings.TrimSpace(r.stdout) != id {
		t.Fatalf("kernel rm: %v", r)
	}
	if r := e.nos("kernel", "ls"); strings.Contains(r.stdout, id) {
		t.Errorf("kernel ls still shows %s after rm: %v", id, r)
	}
	if r := e.nos("kernel", "rm", id); r.code != 1 || !strings.Contains(r.stderr, "no kernel") {
		t.Errorf("second rm: %v", r)
	}
}

func TestKernelBuildBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	notTree := t.TempDir()
	if err := os.WriteFile(filepath.Join(notTree, "Makefile"), []byte("all:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "linux.tar.xz")
	if err := os.WriteFile(garbage, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--source", notTree}, "is not a Linux kernel source tree (no Kconfig)"},
		{[]string{"--source", filepath.Join(notTree, "missing")}, "no such file or directory"},
		{[]string{"--source", garbage}, "extracting " + garbage},
		{[]string{"--features", "net,gpu"}, `unknown kernel feature "gpu" (known: blk, cloud, net, vsock)`},
		{[]string{"--jobs", "-2"}, "--jobs -2"},
	}
	for _, c := range cases {
		r := e.nos(append([]string{"kernel", "build", "--no-install"}, c.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) || !strings.HasPrefix(lastLine(r.stderr), "nos: ") {
			t.Errorf("kernel build %v: want exit 1 and an error with %q, got %v", c.args, c.want, r)
		}
	}
	des, _ := os.ReadDir(home.Layout{Root: e.home}.BuiltKernels())
	if len(des) != 0 {
		t.Errorf("the built-kernel cache holds %d entries after bad input, want none", len(des))
	}
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// regexpLine reports whether some line of s matches the pattern.
func regexpLine(s, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

// TestKernelWithoutNetwork boots an image on a nos kernel built with
// --features none (make test-deps builds it): no NIC, no network setup,
// and what needs a network is refused up front. It also checks that nos
// build picks, among the built kernels, the one with the features the
// image declares.
func TestKernelWithoutNetwork(t *testing.T) {
	t.Parallel()
	l, err := home.Default()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := kbuild.Cache{Dir: l.BuiltKernels()}.List()
	if err != nil {
		t.Fatal(err)
	}
	var k *kbuild.Entry
	for _, en := range entries {
		if en.Origin == kbuild.OriginBuilt && len(en.Features) == 0 {
			k = en
		}
	}
	if k == nil {
		t.Fatal("the test boots a kernel built with `nos kernel build --features none`; run `make test-deps`")
	}
	e := newEnv(t)
	// The kernel without networking is the most recent one; still, an
	// image with the default features (net) must get the net kernel.
	netk := e.withBuiltKernel()
	time.Sleep(20 * time.Millisecond)
	dest := filepath.Join(home.Layout{Root: e.home}.BuiltKernels(), k.ID)
	if err := copyDir(k.Dir(), dest); err != nil {
		t.Fatal(err)
	}
	kernelDigest := func(ref string) (string, []string) {
		t.Helper()
		r := e.nos("inspect", "--format", "{{json .Config.Kernel}}", ref)
		var ki struct {
			Digest   string   `json:"digest"`
			Features []string `json:"features"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ki) != nil {
			t.Fatalf("inspect %s: %v", ref, r)
		}
		return ki.Digest, ki.Features
	}
	if r := e.nos("build", "-t", "hello-net", "./examples/hello"); r.code != 0 {
		t.Fatalf("build with the default features: %v", r)
	}
	if d, f := kernelDigest("hello-net"); d != bootDigest(t, netk) || !slices.Equal(f, netk.Features) {
		t.Errorf("default build got kernel %s %v, want the net kernel %s %v", d, f, bootDigest(t, netk), netk.Features)
	}
	if r := e.nos("build", "--features", "none", "-t", "hello-nonet", "./examples/hello"); r.code != 0 {
		t.Fatalf("build on the kernel without networking: %v", r)
	}
	if d, f := kernelDigest("hello-nonet"); d != bootDigest(t, k) || len(f) != 0 {
		t.Errorf("--features none got kernel %s %v, want %s without features", d, f, bootDigest(t, k))
	}
	r := e.run("--rm", "hello-nonet", "a")
	if r.code != 0 || r.stdout != "Hello, world!\nargs: [a]\n" {
		t.Fatalf("hello on a kernel without networking: %v", r)
	}
	if r := e.run("-p", "8080:80", "hello-nonet"); r.code == 0 || !strings.Contains(r.stderr, "without networking") {
		t.Fatalf("-p on a kernel without networking must be refused: %v", r)
	}
	if r := e.nos("build", "--features", "none", "--port", "80", "-t", "x", "./examples/hello"); r.code == 0 || !strings.Contains(r.stderr, "no networking") {
		t.Fatalf("--port with --features none must be refused: %v", r)
	}
	// --kernel by ID keeps the kernel's features; a kernel lacking what
	// --features asks for is refused.
	if r := e.nos("build", "--kernel", k.ID[:12], "--port", "80", "-t", "x", "./examples/hello"); r.code == 0 || !strings.Contains(r.stderr, "no networking") {
		t.Fatalf("--port on --kernel ID of the kernel without networking must be refused: %v", r)
	}
	if r := e.nos("build", "--kernel", k.Path(), "--features", "net", "-t", "x", "./examples/hello"); r.code == 0 || !strings.Contains(r.stderr, "lacks the features net") {
		t.Fatalf("--features net with a kernel without networking must be refused: %v", r)
	}
	if r := e.nos("build", "--features", "none,net", "-t", "x", "./examples/hello"); r.code == 0 || !strings.Contains(r.stderr, "cannot be combined") {
		t.Fatalf("--features none,net must be refused: %v", r)
	}
	if r := e.nos("images", "-q"); r.code != 0 || len(strings.Fields(r.stdout)) != 2 {
		t.Errorf("refused builds changed the store: %v", r)
	}
}

// bootDigest is the digest of the kernel an image built with e boots: its
// PVH vmlinux when it has one.
func bootDigest(t *testing.T, e *kbuild.Entry) string {
	if p := e.VmlinuxPath(); p != "" {
		return fileDigest(t, p)
	}
	return fileDigest(t, e.Path())
}

// fileDigest is the OCI digest of a file's content.
func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

// TestBuiltKernelConfigs checks the configuration of every kernel make
// test-deps built from this nos's fragments, as the kernel build wrote it:
// each option its fragments set has its value, and modules are off.
func TestBuiltKernelConfigs(t *testing.T) {
	l, err := home.Default()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := kbuild.Cache{Dir: l.BuiltKernels()}.List()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, en := range entries {
		if en.Origin != kbuild.OriginBuilt || en.ConfigPath() == "" {
			continue
		}
		feats := strings.Join(en.Features, ",")
		frags, err := config.Fragments(en.Features)
		if err != nil {
			t.Fatal(err)
		}
		want, err := config.Merge(frags)
		if err != nil {
			t.Fatal(err)
		}
		if en.ConfigHash != want.Hash() {
			continue // built from the fragments of an earlier nos: kept, not ours to check
		}
		seen[feats] = true
		b, err := os.ReadFile(en.ConfigPath())
		if err != nil {
			t.Fatal(err)
		}
		got, err := config.ParseBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := config.Check(want, got, nil); err != nil {
			t.Errorf("kernel %s (features %q): %v", en.ShortID(), feats, err)
		}
		if v, ok := got.Get("CONFIG_MODULES"); ok && v != config.Off {
			t.Errorf("kernel %s (features %q) has CONFIG_MODULES=%s", en.ShortID(), feats, v)
		}
	}
	for _, f := range []string{"", "net", "blk,net"} {
		if !seen[f] {
			t.Errorf("no kernel built with the features %q: make test-deps builds them", f)
		}
	}
}
