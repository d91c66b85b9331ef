package kernel

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeModules writes a modules tree: each key of mods is a module file
// relative to the tree, and its value the module's .modinfo fields.
func fakeModules(t *testing.T, builtin []string, mods map[string][]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, fields := range mods {
		writeFile(t, dir, rel, compress(t, rel, makeModule(fields...)))
	}
	if builtin != nil {
		writeFile(t, dir, "modules.builtin", []byte(strings.Join(builtin, "\n")+"\n"))
	}
	return dir
}

// summary renders modules as "name(relpath)" for comparison.
func summary(mods []Module) []string {
	var s []string
	for _, m := range mods {
		s = append(s, m.Name+"("+m.RelPath+")")
	}
	return s
}

func TestModulesOrder(t *testing.T) {
	dir := fakeModules(t, nil, map[string][]string{
		"kernel/a.ko":        {"name=a", "depends=b,c"},
		"kernel/sub/b.ko":    {"name=b", "depends=c"},
		"kernel/c.ko":        {"name=c", "depends="},
		"kernel/d.ko":        {"name=d"},
		"kernel/unused.ko":   {"name=unused", "depends=a"},
		"kernel/e/e-dash.ko": {"depends=d"}, // no name=: from the file name
	})
	got, err := Modules(dir, []string{"e_dash", "a", "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"c(kernel/c.ko)", "b(kernel/sub/b.ko)", "a(kernel/a.ko)", "d(kernel/d.ko)", "e_dash(kernel/e/e-dash.ko)"}
	if diff := cmp.Diff(want, summary(got)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	a := got[2]
	if a.Path != filepath.Join(dir, "kernel/a.ko") || !cmp.Equal(a.Depends, []string{"b", "c"}) {
		t.Errorf("module a = %+v", a)
	}
	if _, err := os.Stat(a.Path); err != nil {
		t.Error(err)
	}
}

func TestModulesBuiltin(t *testing.T) {
	dir := fakeModules(t, []string{"kernel/drivers/virtio/virtio.ko", "kernel/drivers/char/hw_random/rng-core.ko"},
		map[string][]string{
			"kernel/virtio_ring.ko": {"name=virtio_ring"},
			"kernel/virtio-rng.ko":  {"name=virtio_rng", "depends=virtio,virtio_ring,rng_core"},
		})
	got, err := Modules(dir, []string{"virtio", "virtio-rng", "rng-core"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_ring(kernel/virtio_ring.ko)", "virtio_rng(kernel/virtio-rng.ko)"}
	if diff := cmp.Diff(want, summary(got)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	got, err = Modules(dir, []string{"virtio"})
	if err != nil || len(got) != 0 {
		t.Errorf("built-in only: got %v, %v; want nothing", summary(got), err)
	}
}

func TestModulesCycle(t *testing.T) {
	dir := fakeModules(t, nil, map[string][]string{
		"x.ko":    {"name=x", "depends=y"},
		"y.ko":    {"name=y", "depends=z"},
		"z.ko":    {"name=z", "depends=x"},
		"self.ko": {"name=self", "depends=self"},
		"top.ko":  {"name=top", "depends=x"},
	})
	tests := map[string]string{"top": "x -> y -> z -> x", "self": "self -> self"}
	for want, cycle := range tests {
		_, err := Modules(dir, []string{want})
		if err == nil || !strings.Contains(err.Error(), "cycle: "+cycle) {
			t.Errorf("Modules(%s): err = %v, want cycle %s", want, err, cycle)
		}
	}
}

func TestModulesMissing(t *testing.T) {
	dir := fakeModules(t, []string{"kernel/builtin.ko"}, map[string][]string{
		"a.ko": {"name=a", "depends=builtin,gone"},
	})
	tests := map[string][]string{
		"nothere": {"module nothere not found", "not built in"},
		"a":       {"module gone (needed by a) not found"},
	}
	for want, msgs := range tests {
		_, err := Modules(dir, []string{want})
		for _, msg := range msgs {
			if err == nil || !strings.Contains(err.Error(), msg) {
				t.Errorf("Modules(%s): err = %v, want %q", want, err, msg)
			}
		}
	}
	if _, err := Modules("", []string{"a"}); err == nil {
		t.Error("no modules dir: no error")
	}
	if got, err := Modules("", nil); err != nil || got != nil {
		t.Errorf("nothing wanted: got %v, %v", got, err)
	}
}

func TestModulesCompressed(t *testing.T) {
	dir := fakeModules(t, nil, map[string][]string{
		"kernel/net.ko.xz":   {"name=net", "depends=ring,gz"},
		"kernel/ring.ko.zst": {"name=ring"},
		"kernel/gz.ko.gz":    {"name=gz", "depends=ring"},
	})
	got, err := Modules(dir, []string{"net"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ring(kernel/ring.ko.zst)", "gz(kernel/gz.ko.gz)", "net(kernel/net.ko.xz)"}
	if diff := cmp.Diff(want, summary(got)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestModulesModinfoNameWins(t *testing.T) {
	dir := fakeModules(t, nil, map[string][]string{
		"kernel/odd-file.ko": {"name=real_name"},
		"kernel/alias.ko":    {"name=other"},
		"kernel/user.ko":     {"name=user", "depends=real_name"},
	})
	got, err := Modules(dir, []string{"user"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"real_name(kernel/odd-file.ko)", "user(kernel/user.ko)"}
	if diff := cmp.Diff(want, summary(got)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	for _, name := range []string{"odd_file", "alias"} {
		if _, err := Modules(dir, []string{name}); err == nil {
			t.Errorf("Modules(%s): found a module whose .modinfo names it otherwise", name)
		}
	}
}

func TestModulesBadFile(t *testing.T) {
	dir := fakeModules(t, nil, map[string][]string{"good.ko": {"name=good"}})
	writeFile(t, dir, "bad.ko", []byte("junk"))
	writeFile(t, dir, "worse.ko.xz", []byte("junk"))
	if got, err := Modules(dir, []string{"good"}); err != nil || len(got) != 1 {
		t.Errorf("an unrelated bad file broke the lookup: %v, %v", summary(got), err)
	}
	for _, name := range []string{"bad", "worse"} {
		_, err := Modules(dir, []string{name})
		if err == nil || !strings.Contains(err.Error(), name+".ko") {
			t.Errorf("Modules(%s): err = %v, want one naming the file", name, err)
		}
	}
	_, err := Modules(filepath.Join(dir, "missing"), []string{"good"})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: err = %v, want ErrNotExist", err)
	}
}
