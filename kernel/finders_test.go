package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeRoot lays out a package-like tree: boot/vmlinuz-<v> for each
// version, with boot/config-<v> and lib/modules/<v> for those in full.
func fakeRoot(t *testing.T, versions []string, full ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, v := range versions {
		writeFile(t, root, "boot/vmlinuz-"+v, fakeBzImage(""))
	}
	for _, v := range full {
		writeFile(t, root, "boot/config-"+v, []byte("CONFIG_VIRTIO=m\n"))
		writeFile(t, root, "lib/modules/"+v+"/modules.builtin", nil)
	}
	return root
}

func TestHostPicksNewest(t *testing.T) {
	root := fakeRoot(t, []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "5.10.0-30-amd64"}, "6.1.0-56-amd64", "6.1.0-9-amd64")
	boot := filepath.Join(root, "boot")
	k, err := Host{BootDir: boot, ModulesRoot: filepath.Join(root, "lib/modules")}.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := &Kernel{
		Version:    "6.1.0-56-amd64",
		Path:       filepath.Join(boot, "vmlinuz-6.1.0-56-amd64"),
		ModulesDir: filepath.Join(root, "lib/modules/6.1.0-56-amd64"),
		ConfigPath: filepath.Join(boot, "config-6.1.0-56-amd64"),
		Origin:     "host",
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("Host.Find (-want +got):\n%s", diff)
	}
}

func TestHostWithoutModules(t *testing.T) {
	root := fakeRoot(t, []string{"6.1.0-1-amd64"})
	k, err := Host{BootDir: filepath.Join(root, "boot"), ModulesRoot: filepath.Join(root, "lib/modules")}.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k.ModulesDir != "" || k.ConfigPath != "" {
		t.Errorf("ModulesDir=%q ConfigPath=%q, want both empty", k.ModulesDir, k.ConfigPath)
	}
}

func TestHostSkipsUnusable(t *testing.T) {
	root := fakeRoot(t, []string{"6.1.0-9-amd64"})
	boot := filepath.Join(root, "boot")
	writeFile(t, boot, "vmlinuz-6.2.0-1-amd64", []byte("not a kernel"))
	if err := os.Symlink("missing", filepath.Join(boot, "vmlinuz-7.0.0")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(boot, "vmlinuz-8.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := Host{BootDir: boot, ModulesRoot: filepath.Join(root, "lib/modules")}
	k, err := h.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-9-amd64" {
		t.Errorf("Version = %q, want 6.1.0-9-amd64", k.Version)
	}

	if err := os.Remove(filepath.Join(boot, "vmlinuz-6.1.0-9-amd64")); err != nil {
		t.Fatal(err)
	}
	_, err = h.Find(context.Background())
	if !errors.Is(err, ErrNoKernel) {
		t.Fatalf("err = %v, want ErrNoKernel", err)
	}
	for _, want := range []string{"vmlinuz-6.2.0-1-amd64: not a kernel image", "vmlinuz-7.0.0: no such file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestHostEmpty(t *testing.T) {
	for name, dir := range map[string]string{"empty": t.TempDir(), "missing": filepath.Join(t.TempDir(), "boot")} {
		_, err := Host{BootDir: dir}.Find(context.Background())
		if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: err = %v, want ErrNoKernel naming %s", name, err, dir)
		}
	}
}

func TestFileRejectsNonKernel(t *testing.T) {
	dir := t.TempDir()
	text := writeFile(t, dir, "vmlinuz-6.1.0-1-amd64", []byte("#!/bin/sh\necho hi\n"))
	short := writeFile(t, dir, "short", []byte("HdrS"))
	for _, path := range []string{text, short} {
		_, err := File{Path: path}.Find(context.Background())
		if err == nil || !strings.Contains(err.Error(), "not a kernel image") {
			t.Errorf("File{%s}: err = %v, want not a kernel image", path, err)
		}
	}
	for _, path := range []string{"", filepath.Join(dir, "missing"), dir} {
		if _, err := (File{Path: path}).Find(context.Background()); err == nil {
			t.Errorf("File{%q}: no error", path)
		}
	}
}

func TestFileWithCompanions(t *testing.T) {
	root := fakeRoot(t, []string{"6.1.0-56-amd64"}, "6.1.0-56-amd64")
	path := filepath.Join(root, "boot/vmlinuz-6.1.0-56-amd64")
	k, err := File{Path: path}.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := &Kernel{
		Version:    "6.1.0-56-amd64",
		Path:       path,
		ModulesDir: filepath.Join(root, "lib/modules/6.1.0-56-amd64"),
		ConfigPath: filepath.Join(root, "boot/config-6.1.0-56-amd64"),
		Origin:     "file",
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("File.Find (-want +got):\n%s", diff)
	}
}

func TestFileVersionFromHeader(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "bzImage", fakeBzImage("6.6.6-test"))
	k, err := File{Path: path}.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.6.6-test" || k.ModulesDir != "" || k.Origin != "file" {
		t.Errorf("got %+v, want version 6.6.6-test without modules", k)
	}
}

func TestFileAcceptsELF(t *testing.T) {
	path := writeFile(t, t.TempDir(), "vmlinux", makeELF())
	k, err := File{Path: path}.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "" {
		t.Errorf("Version = %q, want none", k.Version)
	}
}

// TestFileInBuiltCache: a kernel nos built, given by its path in nos's
// cache, has its configuration beside it, which says how its initramfs
// may be compressed.
func TestFileInBuiltCache(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "vmlinux", makeELF())
	k, err := File{Path: path}.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k.ConfigPath != "" {
		t.Errorf("no kernel.json beside it: ConfigPath = %q, want none", k.ConfigPath)
	}
	writeFile(t, dir, "kernel.json", []byte("{}"))
	writeFile(t, dir, "config", []byte("CONFIG_RD_LZ4=y\n"))
	if k, err = (File{Path: path}).Find(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k.ConfigPath != filepath.Join(dir, "config") || !k.UnpacksLZ4() {
		t.Errorf("ConfigPath = %q, UnpacksLZ4 %v; want %s, true", k.ConfigPath, k.UnpacksLZ4(), filepath.Join(dir, "config"))
	}
}

func TestCachePicksNewest(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64"} {
		writeFile(t, dir, v+"/boot/vmlinuz-"+v, fakeBzImage(""))
		writeFile(t, dir, v+"/lib/modules/"+v+"/modules.builtin", nil)
	}
	writeFile(t, dir, "7.0.0-1-cloud-amd64/boot/README", nil) // broken entry
	writeFile(t, dir, ".tmp-123/boot/vmlinuz-9.9.9", fakeBzImage(""))
	k, err := Cache{Dir: dir}.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v := "6.1.0-56-cloud-amd64"
	want := &Kernel{
		Version:    v,
		Path:       filepath.Join(dir, v, "boot/vmlinuz-"+v),
		ModulesDir: filepath.Join(dir, v, "lib/modules", v),
		Origin:     "cache",
	}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("Cache.Find (-want +got):\n%s", diff)
	}
}

func TestCacheEmpty(t *testing.T) {
	for _, c := range []Cache{{}, {Dir: t.TempDir()}, {Dir: filepath.Join(t.TempDir(), "x")}} {
		if _, err := c.Find(context.Background()); !errors.Is(err, ErrNoKernel) {
			t.Errorf("%+v: err = %v, want ErrNoKernel", c, err)
		}
	}
}

type finderFunc func(ctx context.Context) (*Kernel, error)

func (f finderFunc) Find(ctx context.Context) (*Kernel, error) { return f(ctx) }

func failing(reason string) Finder {
	return finderFunc(func(context.Context) (*Kernel, error) { return nil, errors.New(reason) })
}

func TestChainAllFail(t *testing.T) {
	_, err := Chain{failing("alpha is gone"), failing("beta\nbroke"), Host{BootDir: t.TempDir()}}.Find(context.Background())
	if !errors.Is(err, ErrNoKernel) {
		t.Fatalf("err = %v, want ErrNoKernel", err)
	}
	msg := err.Error()
	for _, want := range []string{"alpha is gone", "beta broke", "host: no vmlinuz-*", "nos kernel fetch", "--kernel PATH"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q spans several lines", msg)
	}
}

func TestChainFirstSuccess(t *testing.T) {
	calls := 0
	found := func(v string) Finder {
		return finderFunc(func(context.Context) (*Kernel, error) {
			calls++
			return &Kernel{Version: v}, nil
		})
	}
	k, err := Chain{failing("no"), found("a"), found("b")}.Find(context.Background())
	if err != nil || k.Version != "a" || calls != 1 {
		t.Errorf("got %+v, %v after %d calls; want version a after 1 call", k, err, calls)
	}
	if _, err := (Chain{}).Find(context.Background()); !errors.Is(err, ErrNoKernel) {
		t.Errorf("empty chain: err = %v, want ErrNoKernel", err)
	}
}

func TestChainCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (Chain{failing("x")}).Find(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
