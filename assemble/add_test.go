package assemble

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nosproject/nos/image"
)

func TestParseAdd(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec  string
		host  string // "" for an error
		guest string
	}{
		{"/etc/app.conf", "/etc/app.conf", "/etc/app.conf"},
		{"/etc/app.conf:/srv/app.conf", "/etc/app.conf", "/srv/app.conf"},
		{"./conf", filepath.Join(wd, "conf"), filepath.Join(wd, "conf")},
		{"conf/x.so:/usr/lib/x.so", filepath.Join(wd, "conf/x.so"), "/usr/lib/x.so"},
		{"./d/../conf:/etc//app/", filepath.Join(wd, "conf"), "/etc/app"},
		{"", "", ""},
		{":/x", "", ""},
		{"conf:relative", "", ""},
		{"conf:", "", ""},
	} {
		got, err := parseAdd(tc.spec)
		if tc.host == "" {
			if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "HOST_PATH[:ABSOLUTE_GUEST_PATH]") {
				t.Errorf("parseAdd(%q) = %+v, %v; want a usage error", tc.spec, got, err)
			}
			continue
		}
		if err != nil || got.Host != tc.host || got.Guest != tc.guest {
			t.Errorf("parseAdd(%q) = %+v, %v; want host %s, guest %s", tc.spec, got, err, tc.host, tc.guest)
		}
	}
}

// TestAddRelative: --add ./file, with no guest path, goes to the file's
// absolute path for an initramfs image and for a tree image alike.
func TestAddRelative(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.WriteFile("app.conf", []byte("conf"), 0o644)
	os.MkdirAll("data/sub", 0o755)
	os.WriteFile("data/sub/x", []byte("x"), 0o644)
	init := writeFile(t, t.TempDir(), "nos-init", minimalELF(false))
	o := Options{Adds: []string{"./app.conf", "data"}}
	want := []string{filepath.Join(dir, "app.conf"), filepath.Join(dir, "data/sub/x")}

	t.Run("initramfs", func(t *testing.T) {
		sg, err := newStaging(init, t.TempDir(), InInitramfs, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sg.finishInitramfs(&image.Config{}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range sg.archive.Entries() {
			if strings.HasPrefix(e.Path, dir+"/") && e.Mode.IsRegular() {
				got = append(got, e.Path)
			}
		}
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("added files (-want +got):\n%s", diff)
		}
	})
	t.Run("tree", func(t *testing.T) {
		sg, err := newStaging(init, t.TempDir(), OnRootDisk, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sg.close()
		if err := sg.finishTree(&image.Config{Entrypoint: []string{"/bin/app"}}); err != nil {
			t.Fatal(err)
		}
		for _, p := range want {
			if _, err := os.Stat(filepath.Join(sg.tree.dir, p)); err != nil {
				t.Errorf("%s not in the tree: %v", p, err)
			}
		}
	})
}

func TestAddedObjects(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.MkdirAll("mods", 0o755)
	os.WriteFile("mods/ngx_x.so", nil, 0o644)
	os.WriteFile("mods/README", nil, 0o644)
	os.WriteFile("libfoo.so.1", nil, 0o644)
	adds, err := parseAdds([]string{"mods:/usr/lib/nginx/modules", "./libfoo.so.1:/usr/lib/libfoo.so.1"})
	if err != nil {
		t.Fatal(err)
	}
	got := addedObjects(adds)
	want := []string{filepath.Join(dir, "mods/ngx_x.so"), filepath.Join(dir, "libfoo.so.1")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("addedObjects (-want +got):\n%s", diff)
	}
}
