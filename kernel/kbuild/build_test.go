package kbuild

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nosproject/nos/kernel/config"
)

// fakeMakefile stands in for the kernel's: tinyconfig writes a small
// .config, olddefconfig drops the options listed in drop.txt, and bzImage
// prints kbuild-style steps, then writes the outputs or, with FAKE_FAIL
// set, fails like a compiler error.
const fakeMakefile = `O ?= .
SRC := $(CURDIR)
tinyconfig:
	@printf 'CONFIG_64BIT=y\n# CONFIG_MODULES is not set\nCONFIG_KERNEL_XZ=y\n' > $(O)/.config
olddefconfig:
	@grep -v -F -f $(SRC)/drop.txt $(O)/.config > $(O)/.config.new; mv $(O)/.config.new $(O)/.config
bzImage:
	@if [ -f $(O)/vmlinux ]; then echo "  CC      kernel/again.o"; fi
	@i=0; while [ $$i -lt 250 ]; do echo "  CC      kernel/f$$i.o"; i=$$((i+1)); done
	@if [ -n "$$FAKE_FAIL" ]; then echo "kernel/f7.c:3:1: error: expected ';' before '}' token" >&2; echo "make[2]: *** [kernel/f7.o] Error 1" >&2; exit 2; fi
	@mkdir -p $(O)/include/config $(O)/arch/x86/boot
	@echo "6.1.0-fake-nos" > $(O)/include/config/kernel.release
	@cp $(SRC)/fake-bzImage $(O)/arch/x86/boot/bzImage
	@cp $(SRC)/fake-vmlinux $(O)/vmlinux
	@echo "Kernel: arch/x86/boot/bzImage is ready  (#1)"
`

// fakeBzImage returns bytes with a bzImage's setup header magic and version.
func fakeBzImage(version string) []byte {
	img := make([]byte, 0x400)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x20e:], 0x100)
	copy(img[0x300:], version+" (nos@nos) #1 SMP\x00")
	return img
}

func writeFile(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	path := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeTree lays out a kernel source tree with the fake Makefile and a
// Kconfig that knows every option of the fragments but those in unknown.
func fakeTree(t *testing.T, unknown ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("the kernel build tests run make, which is not installed")
	}
	dir := t.TempDir()
	writeFile(t, dir, "Makefile", []byte(fakeMakefile))
	writeFile(t, dir, "scripts/kconfig/Makefile", nil)
	writeFile(t, dir, "arch/x86/Kconfig", []byte("config X86\n\tdef_bool y\n"))
	// The files nos's source edits change, as Debian's source has them.
	for _, e := range edits {
		writeFile(t, dir, e.file, []byte("static int fill(void)\n{\n\tdo {\n"+e.old+"\treturn 0;\n}\n"))
	}
	frags, err := config.Fragments(config.Features())
	if err != nil {
		t.Fatal(err)
	}
	all, err := config.Merge(frags)
	if err != nil {
		t.Fatal(err)
	}
	var kconfig bytes.Buffer
	for _, o := range all.Options() {
		name := strings.TrimPrefix(o.Name, "CONFIG_")
		if !contains(unknown, o.Name) {
			kconfig.WriteString("config " + name + "\n\tbool\n")
		}
	}
	writeFile(t, dir, "Kconfig", kconfig.Bytes())
	writeFile(t, dir, "drop.txt", []byte("CONFIG_NOTHING_TO_DROP\n"))
	writeFile(t, dir, "fake-bzImage", fakeBzImage("6.1.0-fake-nos"))
	writeFile(t, dir, "fake-vmlinux", []byte("\x7fELF fake vmlinux"))
	return dir
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func testBuilder() builder {
	return builder{every: 100, strip: func(_ context.Context, src, dst string) error { return copyFile(src, dst) }}
}

// cacheNames lists what the cache directory holds, work directories included.
func cacheNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestBuildAndCache(t *testing.T) {
	src := fakeTree(t)
	c := Cache{Dir: filepath.Join(t.TempDir(), "kernels-built")}
	var progress bytes.Buffer
	res, err := testBuilder().build(context.Background(), c, Options{Source: src, Jobs: 1, Progress: &progress})
	if err != nil {
		t.Fatalf("build: %v\nprogress:\n%s", err, progress.String())
	}
	e := res.Entry
	if res.Cached || e.Version != "6.1.0-fake-nos" || e.Origin != OriginBuilt || !contains(e.Features, "net") || len(e.Features) != 1 {
		t.Errorf("result = %+v (cached %v)", e, res.Cached)
	}
	for _, want := range []string{"hashing the source", "configuring: tinyconfig + fragments base, net", "compiling with make -j1 bzImage",
		"kernel build: 100 steps", "kernel build: 200 steps", "kernel build: 250 steps done"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	// The .config holds tinyconfig's options, overlaid by the fragments.
	cfg, err := os.ReadFile(e.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfg, []byte("CONFIG_KERNEL_XZ=y")) {
		t.Errorf("tinyconfig's CONFIG_KERNEL_XZ=y survived the overlay:\n%s", cfg)
	}
	if !bytes.Contains(cfg, []byte("CONFIG_KERNEL_GZIP=y\n")) || !bytes.Contains(cfg, []byte("CONFIG_VIRTIO_NET=y\n")) {
		t.Errorf(".config lacks the fragments:\n%s", cfg)
	}
	if _, err := os.Stat(e.VmlinuxPath()); err != nil {
		t.Error(err)
	}
	if names := cacheNames(t, c.Dir); len(names) != 1 || names[0] != e.ID {
		t.Errorf("cache holds %q, want only %s", names, e.ID)
	}

	// The cache is a Finder for it, without modules.
	k, err := c.Find(context.Background())
	if err != nil || k.Path != filepath.Join(c.Dir, e.ID, "bzImage") || k.ModulesDir != "" || k.Origin != OriginBuilt || k.Version != e.Version {
		t.Errorf("Find = %+v, %v", k, err)
	}

	// Again: instant, from the cache, even with the features spelt otherwise.
	progress.Reset()
	t.Setenv("FAKE_FAIL", "1") // would fail if make ran
	res2, err := testBuilder().build(context.Background(), c, Options{Source: src, Features: []string{"NET", "net"}, Progress: &progress})
	if err != nil || !res2.Cached || res2.Entry.ID != e.ID {
		t.Fatalf("second build = %+v, %v; want the cached entry", res2, err)
	}
	if strings.Contains(progress.String(), "compiling") {
		t.Errorf("second build compiled:\n%s", progress.String())
	}

	// Other features are another kernel.
	t.Setenv("FAKE_FAIL", "")
	res3, err := testBuilder().build(context.Background(), c, Options{Source: src, Features: []string{}})
	if err != nil || res3.Cached || res3.Entry.ID == e.ID || len(res3.Entry.Features) != 0 {
		t.Fatalf("base-only build = %+v, %v", res3, err)
	}
	// The last one built is the default.
	if k, _ := c.Find(context.Background()); k == nil || k.Path != res3.Entry.Path() {
		t.Errorf("Find after a second build = %+v, want %s", k, res3.Entry.Path())
	}
	// Building the first again makes it the default again.
	time.Sleep(10 * time.Millisecond)
	if _, err := testBuilder().build(context.Background(), c, Options{Source: src}); err != nil {
		t.Fatal(err)
	}
	if k, _ := c.Find(context.Background()); k == nil || k.Path != e.Path() {
		t.Errorf("Find after rebuilding the first = %+v, want %s", k, e.Path())
	}
}

// Several kernels from one tarball: extracted once, compiled in one output
// directory, fewest features first; the last set named is the default and
// a set already built is not compiled again.
func TestBuildAll(t *testing.T) {
	src := fakeTree(t)
	tarball := filepath.Join(t.TempDir(), "linux-source-6.1.tar.gz")
	if out, err := exec.Command("tar", "-czf", tarball, "-C", filepath.Dir(src), filepath.Base(src)).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	c := Cache{Dir: t.TempDir()}
	o := Options{Source: tarball, Jobs: 1}
	first, err := testBuilder().build(context.Background(), c, Options{Source: tarball, Features: []string{"net", "blk"}})
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	o.Progress = &progress
	res, err := testBuilder().buildAll(context.Background(), c, o, [][]string{{"blk", "net", "cloud"}, {"net", "blk"}, {}, {"cloud", "blk", "net"}, nil})
	if err != nil {
		t.Fatalf("buildAll: %v\n%s", err, progress.String())
	}
	if len(res) != 5 {
		t.Fatalf("%d results for 5 sets", len(res))
	}
	if !res[1].Cached || res[1].Entry.ID != first.Entry.ID || res[0].Cached || res[0].Entry.ID != res[3].Entry.ID {
		t.Errorf("results: %+v", res)
	}
	for i, want := range [][]string{{"blk", "cloud", "net"}, {"blk", "net"}, nil, {"blk", "cloud", "net"}, {"net"}} {
		if got := res[i].Entry.Features; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("result %d has features %q, want %q", i, got, want)
		}
	}
	out := progress.String()
	if n := strings.Count(out, "extracting"); n != 1 {
		t.Errorf("extracted %d times:\n%s", n, out)
	}
	// Three compiled (none, net, and blk,cloud,net), in order of size, the
	// later ones in the first one's output directory.
	var order []string
	for _, l := range strings.Split(out, "\n") {
		if f, ok := strings.CutPrefix(l, "kernel build: configuring: tinyconfig + fragments "); ok {
			order = append(order, f)
		}
	}
	if strings.Join(order, "; ") != "base; base, net; base, blk, cloud, net" {
		t.Errorf("compiled %q", order)
	}
	if strings.Count(out, "250 steps done") != 1 || strings.Count(out, "251 steps done") != 2 {
		t.Errorf("the later builds did not reuse the output directory:\n%s", out)
	}
	if k, _ := c.Find(context.Background()); k == nil || k.Path != res[4].Entry.Path() {
		t.Errorf("default = %+v, want the last set's %s", k, res[4].Entry.Path())
	}
	if names := cacheNames(t, c.Dir); len(names) != 4 {
		t.Errorf("cache holds %q, want the four kernels only", names)
	}
}

func TestBuildFromTarball(t *testing.T) {
	src := fakeTree(t)
	tarball := filepath.Join(t.TempDir(), "linux-source-6.1.tar.gz")
	cmd := exec.Command("tar", "-czf", tarball, "-C", filepath.Dir(src), filepath.Base(src))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	c := Cache{Dir: t.TempDir()}
	// The default source is the newest tarball the glob matches.
	res, err := testBuilder().build(context.Background(), c, Options{SourceGlob: filepath.Join(filepath.Dir(tarball), "linux-source-*.tar.gz")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entry.Source != tarball || !strings.HasPrefix(res.Entry.SourceDigest, "sha256:") {
		t.Errorf("entry = %+v", res.Entry)
	}
	if names := cacheNames(t, c.Dir); len(names) != 1 {
		t.Errorf("cache holds %q after a build, want the entry only (no extracted source)", names)
	}
	// A tarball whose source the edits do not fit is refused.
	writeFile(t, src, edits[0].file, []byte("something else\n"))
	other := filepath.Join(t.TempDir(), "linux-source-6.2.tar.gz")
	if out, err := exec.Command("tar", "-czf", other, "-C", filepath.Dir(src), filepath.Base(src)).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	if _, err := testBuilder().build(context.Background(), Cache{Dir: t.TempDir()}, Options{Source: other}); err == nil || !strings.Contains(err.Error(), "source edit") {
		t.Errorf("a tarball the edits do not fit: want a refusal, got %v", err)
	}
}

func TestBuildFailsKeepsNothing(t *testing.T) {
	src := fakeTree(t)
	c := Cache{Dir: t.TempDir()}
	t.Setenv("FAKE_FAIL", "1")
	var progress bytes.Buffer
	_, err := testBuilder().build(context.Background(), c, Options{Source: src, Progress: &progress})
	var me *MakeError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want a *MakeError", err)
	}
	if !strings.Contains(err.Error(), "make bzImage") || !strings.Contains(err.Error(), "error: expected ';'") {
		t.Errorf("error = %q, want make's target and the compiler's first error", err)
	}
	out := progress.String()
	if !strings.Contains(out, "make bzImage failed; the last 30 lines of its output:") ||
		!strings.Contains(out, "  | kernel/f7.c:3:1: error: expected ';' before '}' token") ||
		!strings.Contains(out, "  |   CC      kernel/f249.o") || strings.Contains(out, "  |   CC      kernel/f200.o") {
		t.Errorf("progress does not show the tail of the output:\n%s", out)
	}
	if len(me.Tail) != 30 {
		t.Errorf("tail has %d lines, want 30", len(me.Tail))
	}
	if names := cacheNames(t, c.Dir); len(names) != 0 {
		t.Errorf("cache holds %q after a failed build, want nothing", names)
	}
}

func TestBuildCheckFails(t *testing.T) {
	src := fakeTree(t, "CONFIG_PVH")
	writeFile(t, src, "drop.txt", []byte("CONFIG_VIRTIO_NET=y\nCONFIG_KVM_GUEST=y\n"))
	c := Cache{Dir: t.TempDir()}
	_, err := testBuilder().build(context.Background(), c, Options{Source: src})
	var ce *config.CheckError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *config.CheckError", err)
	}
	for _, want := range []string{
		"kernel configuration check failed: 3 option(s)",
		"CONFIG_KVM_GUEST=y (dropped: not set, its dependencies are unmet)",
		"CONFIG_PVH=y (unknown to this kernel)",
		"CONFIG_VIRTIO_NET=y (dropped",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if names := cacheNames(t, c.Dir); len(names) != 0 {
		t.Errorf("cache holds %q after a failed check, want nothing", names)
	}
}

func TestBuildBadInput(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	notTree := t.TempDir()
	writeFile(t, notTree, "Makefile", []byte("all:\n"))
	notTarball := filepath.Join(t.TempDir(), "linux.tar.xz")
	writeFile(t, filepath.Dir(notTarball), "linux.tar.xz", []byte("not a tarball"))
	emptyTarball := filepath.Join(t.TempDir(), "empty.tar")
	if out, err := exec.Command("tar", "-cf", emptyTarball, "-C", t.TempDir(), ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"dir without a kernel", Options{Source: notTree}, "is not a Linux kernel source tree (no Kconfig)"},
		{"missing source", Options{Source: filepath.Join(notTree, "nope")}, "no such file or directory"},
		{"not a tarball", Options{Source: notTarball}, "extracting " + notTarball},
		{"tarball without a kernel", Options{Source: emptyTarball}, "does not hold a Linux kernel source tree"},
		{"no default source", Options{SourceGlob: filepath.Join(notTree, "linux-source-*.tar.xz")}, "install linux-source"},
		{"unknown feature", Options{Source: fakeTree(t), Features: []string{"net", "gpu"}}, `unknown kernel feature "gpu"`},
	}
	for _, tt := range tests {
		_, err := testBuilder().build(context.Background(), c, tt.o)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	if names := cacheNames(t, c.Dir); len(names) != 0 {
		t.Errorf("cache holds %q after bad input, want nothing", names)
	}
	var me *MissingError
	if _, err := testBuilder().build(context.Background(), c, Options{SourceGlob: "/nonexistent/linux-source-*.tar.xz"}); !errors.As(err, &me) || me.Packages[0] != SourcePackage {
		t.Errorf("no default source: err = %v, want a *MissingError naming %s", err, SourcePackage)
	}
}

func TestCheckTools(t *testing.T) {
	reqs := []requirement{
		{name: "sh", pkg: "dash"},
		{name: "nos-no-such-tool", pkg: "nos-tools"},
		{name: "nos-no-such-tool-either", pkg: "nos-tools"},
		{name: "/nonexistent/gelf.h", header: true, pkg: "libelf-dev"},
		{name: "nos-no-such-unxz", pkg: "xz-utils", tarOnly: true},
	}
	err := checkTools(reqs, false)
	var me *MissingError
	if !errors.As(err, &me) {
		t.Fatalf("err = %v, want a *MissingError", err)
	}
	if me.What != "nos-no-such-tool, nos-no-such-tool-either, /nonexistent/gelf.h" || strings.Join(me.Packages, " ") != "libelf-dev nos-tools" {
		t.Errorf("missing = %+v", me)
	}
	if !strings.Contains(err.Error(), "apt-get install --no-install-recommends libelf-dev nos-tools") {
		t.Errorf("message = %q", err)
	}
	if err := checkTools(reqs, true); !errors.As(err, &me) || !contains(me.Packages, "xz-utils") {
		t.Errorf("tarball: err = %v, want xz-utils too", err)
	}
	if err := checkTools(reqs[:1], true); err != nil {
		t.Errorf("all present: %v", err)
	}
}

func TestSourceDigest(t *testing.T) {
	a := fakeTree(t)
	d1, err := Source{Path: a}.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, a, ".git/HEAD", []byte("ref: x\n"))
	if d2, _ := (Source{Path: a}).Digest(context.Background()); d2 != d1 {
		t.Error("the digest of a tree depends on .git")
	}
	writeFile(t, a, "kernel/fork.c", []byte("int x;\n"))
	d3, _ := Source{Path: a}.Digest(context.Background())
	if d3 == d1 {
		t.Error("the digest of a tree does not change with a new file")
	}
	if err := os.Chmod(filepath.Join(a, "kernel/fork.c"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d4, _ := (Source{Path: a}).Digest(context.Background()); d4 == d3 {
		t.Error("the digest of a tree does not change with the executable bit")
	}
}

func TestProgressHeartbeat(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "Makefile", []byte("bzImage:\n\t@echo '  CC      init/main.o'\n\t@sleep 0.5\n\t@echo '  LD      vmlinux'\n"))
	var progress lockedBuffer
	m := &maker{src: dir, out: dir, jobs: 1, progress: &progress, every: 100, heartbeat: 100 * time.Millisecond}
	if err := m.run(context.Background(), true, "bzImage"); err != nil {
		t.Fatal(err)
	}
	out := progress.String()
	if !strings.Contains(out, "kernel build: 1 steps, ") || !strings.Contains(out, "still at CC init/main.o") || !strings.Contains(out, "kernel build: 2 steps done") {
		t.Errorf("progress during a quiet step:\n%s", out)
	}
}

func TestMakeCanceled(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "Makefile", []byte("bzImage:\n\t@sleep 30\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := (&maker{src: dir, out: dir, jobs: 1, progress: &lockedBuffer{}}).run(ctx, true, "bzImage")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Errorf("canceled make: err = %v after %v", err, time.Since(start))
	}
}

// lockedBuffer is a bytes.Buffer safe for the heartbeat goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestMissingSourceAndToolsTogether(t *testing.T) {
	b := testBuilder()
	b.reqs = []requirement{{name: "nos-no-such-bison", pkg: "bison"}, {name: "nos-no-such-xz", pkg: "xz-utils", tarOnly: true}}
	_, err := b.build(context.Background(), Cache{Dir: t.TempDir()}, Options{SourceGlob: "/nonexistent/linux-source-*.tar.xz"})
	var me *MissingError
	if !errors.As(err, &me) || strings.Join(me.Packages, " ") != "bison linux-source xz-utils" {
		t.Fatalf("err = %v, want one *MissingError naming bison, linux-source and xz-utils", err)
	}
	if !strings.Contains(me.What, "kernel source tarball") || !strings.Contains(me.What, "nos-no-such-bison") {
		t.Errorf("What = %q", me.What)
	}
}
