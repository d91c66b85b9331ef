package assemble

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nosproject/nos/guestapi"
)

func TestResolveUser(t *testing.T) {
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n# comment\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nredis:x:999:998::/var/lib/redis:/usr/sbin/nologin\n")
	group := []byte("root:x:0:\nwww-data:x:33:\nredis:x:998:\nsrv:x:500:www-data,other\nlog:x:4:redis,www-data\n")
	for _, tc := range []struct {
		spec string
		want *guestapi.User
		err  string
	}{
		{"", nil, ""},
		{"root", nil, ""},
		{"0:0", nil, ""},
		{"www-data", &guestapi.User{UID: 33, GID: 33, Groups: []uint32{4, 500}}, ""},
		{"redis", &guestapi.User{UID: 999, GID: 998, Groups: []uint32{4}}, ""},
		{"33", &guestapi.User{UID: 33, GID: 33, Groups: []uint32{4, 500}}, ""},
		{"1234", &guestapi.User{UID: 1234}, ""}, // unlisted: group 0, as docker
		{"1234:55", &guestapi.User{UID: 1234, GID: 55}, ""},
		{"www-data:redis", &guestapi.User{UID: 33, GID: 998, Groups: []uint32{4, 500}}, ""},
		{"nosuch", nil, "not in the image's /etc/passwd"},
		{"redis:nogroup", nil, "not in the image's /etc/group"},
		{":1", nil, "want USER[:GROUP]"},
		{"1:", nil, "want USER[:GROUP]"},
		{"99999999999", nil, "not in the image's /etc/passwd"},
	} {
		got, err := resolveUser(tc.spec, passwd, group)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadSource) {
				t.Errorf("resolveUser(%q) = %+v, %v; want error %q", tc.spec, got, err, tc.err)
			}
			continue
		}
		if err != nil || (got == nil) != (tc.want == nil) || got != nil && (got.UID != tc.want.UID || got.GID != tc.want.GID || !slices.Equal(got.Groups, tc.want.Groups)) {
			t.Errorf("resolveUser(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
}

// TestStageStaysInside checks that symbolic links in a tree (as a
// container image may hold) never lead nos's own writes out of it.
func TestStageStaysInside(t *testing.T) {
	outside := t.TempDir()
	st, err := newStage(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	// The tree's /etc and /lib point outside, as absolute or relative
	// links; /usr/bin is a link chain to the parent.
	if err := os.Symlink(outside, filepath.Join(st.dir, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../"+outside, filepath.Join(st.dir, "lib")); err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(t.TempDir(), "file")
	os.WriteFile(host, []byte("x"), 0o644)
	for _, g := range []string{"/lib/x", "/lib/sub/x"} {
		if err := st.addFile(g, host); err == nil {
			t.Errorf("addFile(%s) through a link out of the tree succeeded", g)
		}
	}
	if err := st.addSymlink("/lib/evil", "/"); err == nil {
		t.Error("addSymlink through a link out of the tree succeeded")
	}
	// addBase must refuse an /etc that is not a directory in the tree
	// rather than write through it.
	if err := st.addBase(); err == nil {
		t.Error("addBase with /etc leading out of the tree succeeded")
	}
	if des, _ := os.ReadDir(outside); len(des) != 0 {
		t.Fatalf("something was written outside the tree: %v", des)
	}
}

func TestStageTreeAndAdd(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "srv/www"), 0o755)
	os.WriteFile(filepath.Join(src, "srv/www/index.html"), []byte("hi"), 0o640)
	os.WriteFile(filepath.Join(src, "tool"), []byte("#!"), 0o755)
	os.Chmod(filepath.Join(src, "tool"), 0o755|os.ModeSetuid)
	os.Symlink("www/index.html", filepath.Join(src, "srv/link"))
	st, err := newStage(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if err := st.addTree("/", src); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "app.conf")
	os.WriteFile(conf, []byte("conf"), 0o600)
	addAdd := func(spec string) error {
		a, err := parseAdd(spec)
		if err != nil {
			return err
		}
		return st.addAdd(a)
	}
	if err := addAdd(conf + ":/etc/app/app.conf"); err != nil {
		t.Fatal(err)
	}
	if err := addAdd("/no/such/file:/x"); err == nil || !strings.Contains(err.Error(), "/no/such/file") {
		t.Errorf("--add of a missing file: %v", err)
	}
	if err := addAdd(conf + ":relative"); err == nil {
		t.Error("--add to a relative guest path accepted")
	}
	if err := st.addBase(); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{
		"srv/www/index.html": 0o640, "tool": 0o755 | os.ModeSetuid, "etc/app/app.conf": 0o600,
		"etc/resolv.conf": 0o644, "etc/hosts": 0o644, "etc/passwd": 0o644,
	} {
		fi, err := os.Lstat(filepath.Join(st.dir, p))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, %v; want mode %v", p, fi.Mode(), err, mode)
		}
	}
	for _, d := range treeDirs {
		if fi, err := os.Stat(filepath.Join(st.dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s missing: %v", d, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(st.dir, "srv/link")); err != nil || l != "www/index.html" {
		t.Errorf("symlink = %q, %v", l, err)
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		o    Options
		want Source
		err  string
	}{
		{Options{}, nil, "nothing to build"},
		{Options{Source: "./x", FromOCI: "y"}, nil, "give one of"},
		{Options{FromOCI: "reg.example/x:1"}, &ociSource{ref: "reg.example/x:1"}, ""},
		{Options{Rootfs: dir}, nil, "needs --entrypoint"},
		{Options{Rootfs: dir, Entrypoint: []string{"/bin/x"}}, &rootfsSource{dir: dir}, ""},
		{Options{Rootfs: "/no/such/dir", Entrypoint: []string{"/bin/x"}}, nil, "no such file"},
		{Options{Source: "/bin/true"}, &dynamicSource{path: "/bin/true"}, ""},
		{Options{Source: "./examples/hello"}, &goSource{pkg: "./examples/hello"}, ""},
	} {
		got, err := detect(tc.o)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("detect(%+v) = %+v, %v; want error %q", tc.o, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("detect(%+v) = %#v, %v; want %#v", tc.o, got, err, tc.want)
		}
	}
	// A bare name is a program on PATH.
	if got, err := detect(Options{Source: "true"}); err != nil || reflect.TypeOf(got) != reflect.TypeOf(&dynamicSource{}) {
		t.Errorf("detect(true) = %#v, %v; want the dynamic program found on PATH", got, err)
	}
}

func TestParseEntrypoint(t *testing.T) {
	for in, want := range map[string][]string{
		"":                       nil,
		"/bin/app -v":            {"/bin/app", "-v"},
		`["/bin/sh","-c","a b"]`: {"/bin/sh", "-c", "a b"},
		`  ["/x"] `:              {"/x"},
	} {
		if got, err := ParseEntrypoint(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseEntrypoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`[`, `[]`, `["a",1]`} {
		if _, err := ParseEntrypoint(bad); err == nil {
			t.Errorf("ParseEntrypoint(%q) accepted", bad)
		}
	}
}

func TestOCIName(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000/nos/test:1":          "test",
		"docker.io/library/redis@sha256:abc": "redis",
		"./images/app.tar":                   "app",
		"/tmp/layout/":                       "layout",
	} {
		if got := (&ociSource{ref: in}).Name(); got != want {
			t.Errorf("ociSource{%q}.Name() = %q, want %q", in, got, want)
		}
	}
}

// FuzzResolveUser feeds hostile /etc/passwd and /etc/group contents (they
// come from container images): no panic, and a result only for a valid spec.
func FuzzResolveUser(f *testing.F) {
	f.Add("www-data", "www-data:x:33:33::/:/bin/false\n", "srv:x:5:www-data\n")
	f.Add("1:2", "", "")
	f.Add("a:b", "a:x:1\n", "b:x:")
	f.Fuzz(func(t *testing.T, spec, passwd, group string) {
		u, err := resolveUser(spec, []byte(passwd), []byte(group))
		if err == nil && u != nil && spec == "" {
			t.Fatalf("empty spec gave %+v", u)
		}
	})
}
