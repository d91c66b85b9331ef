package assemble

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nosproject/nos/assemble/elfdeps"
	"github.com/nosproject/nos/image"
)

func TestParseDpkg(t *testing.T) {
	search := "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\n" +
		"diversion by dash from: /bin/sh\n" +
		"diversion by dash to: /bin/sh.distrib\n" +
		"nginx-core: /usr/sbin/nginx\n" +
		"libfoo1, libfoo-dev: /usr/lib/libfoo.so.1\n" +
		"garbage\n"
	if diff := cmp.Diff(map[string]string{
		"/lib/x86_64-linux-gnu/libc.so.6": "libc6:amd64",
		"/usr/sbin/nginx":                 "nginx-core",
		"/usr/lib/libfoo.so.1":            "libfoo1",
	}, parseDpkgSearch([]byte(search))); diff != "" {
		t.Errorf("dpkg -S (-want +got):\n%s", diff)
	}
	query := "libc6:amd64\tlibc6\t2.36-9+deb12u13\tamd64\nnginx-core\tnginx-core\t1.22.1-9+deb12u3\tamd64\ngone\tgone\t\tamd64\nshort\n"
	got := parseDpkgQuery([]byte(query))
	want := map[string]image.PackageRef{
		"libc6:amd64": {Package: "libc6", Version: "2.36-9+deb12u13", Arch: "amd64"},
		"libc6":       {Package: "libc6", Version: "2.36-9+deb12u13", Arch: "amd64"},
		"nginx-core":  {Package: "nginx-core", Version: "1.22.1-9+deb12u3", Arch: "amd64"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dpkg-query (-want +got):\n%s", diff)
	}
}

func TestAppendAliases(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", []string{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"}},
		{"/lib64/ld-linux-x86-64.so.2", []string{"/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2"}},
		{"/usr/sbin/nginx", []string{"/usr/sbin/nginx", "/sbin/nginx"}},
		{"/opt/app/lib.so", []string{"/opt/app/lib.so"}},
	} {
		if diff := cmp.Diff(tc.want, appendAliases(nil, tc.in)); diff != "" {
			t.Errorf("appendAliases(%s) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// fakeDB knows the files shipped under their unmerged paths, as
// bookworm's dpkg does.
type fakeDB struct {
	known map[string]image.PackageRef
	err   error
	asked []string
}

func (f *fakeDB) Owners(_ context.Context, paths []string) (map[string]image.PackageRef, error) {
	f.asked = paths
	out := map[string]image.PackageRef{}
	for _, p := range paths {
		if r, ok := f.known[p]; ok {
			r.Path = p
			out[p] = r
		}
	}
	return out, f.err
}

func TestHostFileRefs(t *testing.T) {
	res := &elfdeps.Result{
		Program: "/usr/sbin/app",
		Interp:  "/lib64/ld-linux-x86-64.so.2",
		Files: []elfdeps.File{
			{GuestPath: "/lib", Symlink: "usr/lib"},
			{GuestPath: "/lib64", Symlink: "usr/lib64"},
			{GuestPath: "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", HostPath: "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
			{GuestPath: "/usr/lib/x86_64-linux-gnu/libc.so.6", HostPath: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
			{GuestPath: "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", HostPath: "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"},
			{GuestPath: "/usr/sbin/app", HostPath: "/usr/sbin/app"},
		},
		Libraries: []elfdeps.Library{
			{Name: "libc.so.6", Path: "/lib/x86_64-linux-gnu/libc.so.6", Real: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
			{Name: "libz.so.1", Path: "/lib/x86_64-linux-gnu/libz.so.1", Real: "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"},
		},
	}
	libc := image.PackageRef{Package: "libc6", Version: "2.36-9", Arch: "amd64"}
	zlib := image.PackageRef{Package: "zlib1g", Version: "1:1.2.13", Arch: "amd64"}
	db := &fakeDB{known: map[string]image.PackageRef{
		"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": libc,
		"/lib/x86_64-linux-gnu/libc.so.6":            libc,
		"/lib/x86_64-linux-gnu/libz.so.1":            zlib, // only the link's name
	}}
	with := func(p string, r image.PackageRef) image.PackageRef { r.Path = p; return r }
	want := []image.PackageRef{
		with("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", libc),
		with("/usr/lib/x86_64-linux-gnu/libc.so.6", libc),
		with("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", zlib),
		{Path: "/usr/sbin/app"}, // unknown to the database
	}
	for _, tc := range []struct {
		name string
		db   PackageDB
		want []image.PackageRef
		warn bool
	}{
		{"dpkg", db, want, false},
		{"no database", nil, []image.PackageRef{{Path: want[0].Path}, {Path: want[1].Path}, {Path: want[2].Path}, {Path: want[3].Path}}, false},
		{"failing database", &fakeDB{err: errors.New("database locked")}, []image.PackageRef{{Path: want[0].Path}, {Path: want[1].Path}, {Path: want[2].Path}, {Path: want[3].Path}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &staging{packages: tc.db}
			got := st.hostFileRefs(context.Background(), res)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("refs (-want +got):\n%s", diff)
			}
			if (len(st.warnings) > 0) != tc.warn {
				t.Errorf("warnings %q, want some: %v", st.warnings, tc.warn)
			}
		})
	}
}

// TestDpkgOwners asks the host's dpkg about its libc.
func TestDpkgOwners(t *testing.T) {
	db := HostPackages()
	if db == nil {
		t.Fatal("no dpkg on this host: the build records Debian packages with it; run the tests on Debian (.ci/run)")
	}
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "libc6").Output()
	if err != nil {
		t.Fatalf("dpkg-query -W libc6: %v (a Debian host has libc6)", err)
	}
	got, err := db.Owners(context.Background(), []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/no/such/file"})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for p, r := range got {
		if r.Package != "libc6" || r.Version != strings.TrimSpace(string(out)) || r.Path != p {
			t.Errorf("%s: %+v, want libc6 %s", p, r, out)
		}
		found = true
	}
	if !found {
		t.Errorf("dpkg knows no libc.so.6: %v", got)
	}
}
