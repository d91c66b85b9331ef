package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCacheListAndRemove(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64"} {
		writeFile(t, dir, v+"/boot/vmlinuz-"+v, fakeBzImage(""))
	}
	writeFile(t, dir, "6.1.0-1-broken/boot/vmlinuz-6.1.0-1-broken", []byte("junk"))
	writeFile(t, dir, ".tmp-123/boot/vmlinuz-6.1.0-99", fakeBzImage(""))
	c := Cache{Dir: dir}
	ks, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range ks {
		got = append(got, k.Version+"/"+k.Origin)
	}
	if diff := cmp.Diff([]string{"6.1.0-56-cloud-amd64/cache", "6.1.0-9-cloud-amd64/cache"}, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := c.Remove("6.1.0-9-cloud-amd64"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "6.1.0-9-cloud-amd64")); !os.IsNotExist(err) {
		t.Error("Remove left the kernel")
	}
	if err := c.Remove("6.1.0-9-cloud-amd64"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second Remove: %v", err)
	}
	for _, bad := range []string{"", "..", "../x", ".tmp-123"} {
		if err := c.Remove(bad); err == nil {
			t.Errorf("Remove(%q) succeeded", bad)
		}
	}
	if ks, err := (Cache{Dir: filepath.Join(dir, "missing")}).List(context.Background()); err != nil || ks != nil {
		t.Errorf("missing cache: %v, %v", ks, err)
	}
}

func TestHostList(t *testing.T) {
	root := fakeRoot(t, []string{"6.1.0-9-amd64", "6.1.0-56-amd64"}, "6.1.0-56-amd64")
	writeFile(t, root, "boot/vmlinuz-6.1.0-1-bad", []byte("junk"))
	ks, err := Host{BootDir: filepath.Join(root, "boot"), ModulesRoot: filepath.Join(root, "lib/modules")}.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 || ks[0].Version != "6.1.0-56-amd64" || ks[0].ModulesDir == "" || ks[1].Version != "6.1.0-9-amd64" || ks[1].Origin != "host" {
		t.Errorf("List = %+v", ks)
	}
	if ks, err := (Host{BootDir: filepath.Join(root, "nope")}).List(context.Background()); err != nil || ks != nil {
		t.Errorf("missing boot dir: %v, %v", ks, err)
	}
}
