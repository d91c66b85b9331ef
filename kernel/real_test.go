package kernel

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestRealKernelModules resolves the modules nos needs on a real kernel
// package unpacked at $NOS_TEST_KERNEL_DIR (e.g. with dpkg-deb -x
// linux-image-6.1.0-56-cloud-amd64_*.deb DIR). It is optional: it skips
// when the variable is unset.
func TestRealKernelModules(t *testing.T) {
	root := os.Getenv("NOS_TEST_KERNEL_DIR")
	if root == "" {
		t.Skip("NOS_TEST_KERNEL_DIR is not set")
	}
	k, err := Host{BootDir: filepath.Join(root, "boot"), ModulesRoot: filepath.Join(root, "lib/modules")}.Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if k.ModulesDir == "" {
		t.Fatalf("kernel %s has no modules dir", k.Version)
	}
	if fk, err := (File{Path: k.Path}).Find(context.Background()); err != nil || fk.ModulesDir != k.ModulesDir {
		t.Errorf("File.Find(%s) = %+v, %v; want modules dir %s", k.Path, fk, err, k.ModulesDir)
	}
	want := []string{"virtio_mmio", "virtio_net", "virtio_console", "virtio_rng", "virtio_blk"}
	mods, err := Modules(k.ModulesDir, want)
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := readBuiltin(k.ModulesDir)
	if err != nil {
		t.Fatal(err)
	}
	loaded := make(map[string]bool)
	for _, m := range mods {
		t.Logf("%-16s %-50s depends=%v", m.Name, m.RelPath, m.Depends)
		for _, d := range m.Depends {
			if !loaded[d] && !builtin[d] {
				t.Errorf("%s comes before its dependency %s", m.Name, d)
			}
		}
		loaded[m.Name] = true
	}
	for _, w := range want {
		if !loaded[w] && !builtin[w] {
			t.Errorf("wanted module %s is neither loaded nor built in", w)
		}
	}
}
