package elfdeps

import (
	"slices"
	"strings"
	"testing"
)

func TestLDSoConf(t *testing.T) {
	f := newFakeRoot(t)
	f.write("/etc/ld.so.conf", []byte(strings.Join([]string{
		"# comment line",
		"include ld.so.conf.d/*.conf   # relative to /etc",
		"/usr/local/lib # trailing comment",
		"  /opt/spaced/  ",
		"hwcap 1 nosegneg",
		"relative/dir",
		"include /etc/self.conf",
		"INCLUDE /etc/other/*.conf",
		"/usr/local/lib",
	}, "\n")), 0o644)
	f.write("/etc/ld.so.conf.d/b.conf", []byte("/opt/b1:/opt/b2,/opt/b3 /opt/b4\t/opt/b5\n/opt/libc5=libc5\n"), 0o644)
	f.write("/etc/ld.so.conf.d/a.conf", []byte("/opt/a\ninclude ../ld.so.conf\n"), 0o644) // a cycle
	f.write("/etc/ld.so.conf.d/c.conf.disabled", []byte("/opt/disabled\n"), 0o644)
	f.write("/etc/ld.so.conf.d/nested/d.conf", []byte("/opt/nested\n"), 0o644)
	f.write("/etc/self.conf", []byte("include self.conf\n/opt/self\n"), 0o644)
	f.write("/etc/other/x.conf", []byte("include sub/*.conf\n/opt/other\n"), 0o644)
	f.write("/etc/other/sub/y.conf", []byte("/opt/other-sub\n"), 0o644)
	f.symlink("/etc/ld.so.conf.d/link.conf", "/etc/linked/real.conf") // absolute, inside the root
	f.write("/etc/linked/real.conf", []byte("/opt/linked\n"), 0o644)

	tr, err := newTree(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readLDSoConf(tr, "/etc/ld.so.conf", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/opt/a", "/opt/b1", "/opt/b2", "/opt/b3", "/opt/b4", "/opt/b5", "/opt/libc5", "/opt/linked",
		"/usr/local/lib", "/opt/spaced", "/opt/self", "/opt/other-sub", "/opt/other"}
	if !slices.Equal(got, want) {
		t.Errorf("dirs\n%q\nwant\n%q", got, want)
	}

	if dirs, err := readLDSoConf(tr, "/etc/none.conf", false); err != nil || dirs != nil {
		t.Errorf("missing optional conf: %q, %v", dirs, err)
	}
	if _, err := readLDSoConf(tr, "/etc/none.conf", true); err == nil {
		t.Error("missing required conf: no error")
	}
	f.write("/etc/bad.conf", []byte("include /etc/[\n"), 0o644)
	if _, err := readLDSoConf(tr, "/etc/bad.conf", true); err == nil {
		t.Error("bad glob: no error")
	}
}

// TestLDSoConfResolve checks that the configured directories are searched
// after RUNPATH and before the defaults, and reported as LibraryDirs.
func TestLDSoConfResolve(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.write("/etc/ld.so.conf", []byte("include /etc/ld.so.conf.d/*.conf\n"), 0o644)
	f.write("/etc/ld.so.conf.d/local.conf", []byte("/usr/local/lib\n"), 0o644)
	f.write("/etc/alt.conf", []byte("/opt/alt\n"), 0o644)
	f.elf("/usr/local/lib/libx.so.1", lib("libx.so.1"))
	f.elf("/opt/alt/libx.so.1", lib("libx.so.1"))
	f.elf(multiarch+"/libx.so.1", lib("libx.so.1"))
	f.elf("/opt/p", prog("libx.so.1"))
	res := f.mustResolve("/opt/p", Options{})
	if got := libPaths(res); !slices.Equal(got, []string{"/usr/local/lib/libx.so.1"}) {
		t.Errorf("libraries %q", got)
	}
	if !slices.Equal(res.LibraryDirs, []string{"/usr/local/lib"}) {
		t.Errorf("LibraryDirs %q", res.LibraryDirs)
	}
	roundTrip(t, res)

	res = f.mustResolve("/opt/p", Options{LDSoConf: "/etc/alt.conf"})
	if got := libPaths(res); !slices.Equal(got, []string{"/opt/alt/libx.so.1"}) {
		t.Errorf("libraries with LDSoConf: %q", got)
	}
}
