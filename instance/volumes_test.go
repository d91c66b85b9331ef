package instance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosproject/nos/image"
)

func TestParseVolumeAndMount(t *testing.T) {
	for in, want := range map[string]VolumeMount{
		"data:/data":         {Name: "data", Target: "/data"},
		"data:/var/lib/x:ro": {Name: "data", Target: "/var/lib/x", ReadOnly: true},
		"d.b-1_x:/d:rw":      {Name: "d.b-1_x", Target: "/d"},
	} {
		if got, err := ParseVolume(in); err != nil || got.Volume == nil || *got.Volume != want || got.Bind != nil {
			t.Errorf("ParseVolume(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]BindMount{
		"/srv:/d":           {Source: "/srv", Target: "/d"},
		"/srv/www/:/www:ro": {Source: "/srv/www", Target: "/www", ReadOnly: true},
		"/a/../srv:/d:rw":   {Source: "/srv", Target: "/d"},
	} {
		if got, err := ParseVolume(in); err != nil || got.Bind == nil || *got.Bind != want || got.Volume != nil {
			t.Errorf("ParseVolume(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "data", "data:", ":/data", "data:data", "data:/", "data:/a/../b", "data:/d:rw:ro", "data:/d:rx", "./rel:/d", "a/b:/d", "-x:/d", "rel/dir:/d", ".:/d", "~/x:/d", "/srv:rel", "/srv:/d:ro:rw"} {
		if _, err := ParseVolume(bad); !errors.Is(err, ErrBadFlag) {
			t.Errorf("ParseVolume(%q): %v, want ErrBadFlag", bad, err)
		}
	}
	for in, want := range map[string]VolumeMount{
		"type=volume,source=db,target=/db":                {Name: "db", Target: "/db"},
		"src=db,dst=/db,readonly":                         {Name: "db", Target: "/db", ReadOnly: true},
		"type=volume,source=db,target=/db,readonly=false": {Name: "db", Target: "/db"},
		"source=db,destination=/db,ro=true":               {Name: "db", Target: "/db", ReadOnly: true},
	} {
		if got, err := ParseMount(in); err != nil || got.Volume == nil || *got.Volume != want {
			t.Errorf("ParseMount(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if got, err := ParseMount("type=bind,source=/srv,target=/d,readonly"); err != nil || got.Bind == nil || *got.Bind != (BindMount{Source: "/srv", Target: "/d", ReadOnly: true}) {
		t.Errorf("ParseMount(bind) = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "type=bind,source=rel,target=/d", "type=volume,source=/srv,target=/d", "type=tmpfs,target=/d", "source=db", "target=/db", "source=db,target=/db,readonly=maybe", "source=db,target=/db,x=1"} {
		if _, err := ParseMount(bad); !errors.Is(err, ErrBadFlag) {
			t.Errorf("ParseMount(%q): %v, want ErrBadFlag", bad, err)
		}
	}
}

func TestCheckVolumes(t *testing.T) {
	blk := image.Config{Kernel: image.KernelInfo{Version: "6.1-nos", Features: []string{"blk", "net"}}}
	netOnly := image.Config{Kernel: image.KernelInfo{Version: "6.1-nos", Features: []string{"net"}}}
	distro := image.Config{Kernel: image.KernelInfo{Version: "6.1-cloud"}, Needs: []string{"blk", "net"}}
	distroTree := image.Config{Kernel: image.KernelInfo{Version: "6.1-cloud"}, RootFS: "erofs"}
	distroNoExt4 := image.Config{Kernel: image.KernelInfo{Version: "6.1-cloud"}, Modules: []string{"virtio_net"}}
	one := []VolumeMount{{Name: "a", Target: "/a"}}
	for _, c := range []struct {
		name string
		vs   []VolumeMount
		cfg  image.Config
		ok   bool
	}{
		{"blk kernel", one, blk, true},
		{"distribution kernel, image built with blk", one, distro, true},
		{"distribution kernel, tree image", one, distroTree, true},
		{"no volumes on any kernel", nil, netOnly, true},
		{"net-only kernel", one, netOnly, false},
		{"distribution kernel, image built without blk", one, distroNoExt4, false},
		{"two on one path", []VolumeMount{{Name: "a", Target: "/a"}, {Name: "b", Target: "/a"}}, blk, false},
		{"one twice", []VolumeMount{{Name: "a", Target: "/a"}, {Name: "a", Target: "/b"}}, blk, false},
		{"too many", manyVolumes(MaxVolumes + 1), blk, false},
		{"as many as allowed", manyVolumes(MaxVolumes), blk, true},
	} {
		err := checkVolumes(c.vs, nil, c.cfg, "img")
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrBadFlag)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func manyVolumes(n int) []VolumeMount {
	var vs []VolumeMount
	for i := range n {
		vs = append(vs, VolumeMount{Name: fmt.Sprintf("v%d", i), Target: fmt.Sprintf("/v%d", i)})
	}
	return vs
}

func TestCheckBinds(t *testing.T) {
	blk := image.Config{Kernel: image.KernelInfo{Version: "6.1-nos", Features: []string{"blk", "net"}}, InitAPI: image.InitAPI}
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := blk
	old.InitAPI = image.InitAPIWritableRoot
	netOnly := blk
	netOnly.Kernel.Features = []string{"net"}
	for _, c := range []struct {
		name string
		bs   []BindMount
		vs   []VolumeMount
		cfg  image.Config
	}{
		{"missing directory", []BindMount{{Source: filepath.Join(dir, "nope"), Target: "/d"}}, nil, blk},
		{"a file", []BindMount{{Source: file, Target: "/d"}}, nil, blk},
		{"an init without virtiofs", []BindMount{{Source: dir, Target: "/d"}}, nil, old},
		{"a kernel without blk", []BindMount{{Source: dir, Target: "/d"}}, nil, netOnly},
		{"on a volume's path", []BindMount{{Source: dir, Target: "/a"}}, []VolumeMount{{Name: "a", Target: "/a"}}, blk},
		{"too many with the volumes", []BindMount{{Source: dir, Target: "/d"}}, manyVolumes(MaxVolumes), blk},
	} {
		if err := checkVolumes(c.vs, c.bs, c.cfg, "img"); !errors.Is(err, ErrBadFlag) {
			t.Errorf("%s: %v, want ErrBadFlag", c.name, err)
		}
	}
}
