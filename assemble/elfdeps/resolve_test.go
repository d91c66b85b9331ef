package elfdeps

import (
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestSyntheticELFReadableByDebugELF(t *testing.T) {
	for _, s := range []elfSpec{
		{Needed: []string{"liba.so.1", "libb.so.2"}, Soname: "libx.so.1", RunPath: "$ORIGIN/../lib:/opt/lib"},
		{Type: elf.ET_EXEC, Base: 0x400000, Entry: 0x401000, Interp: testInterp, Needed: []string{"libc.so.6"}, RPath: "/opt/r"},
		{Needed: []string{"libz.so"}, RPath: "/r", RunPath: "/rp", Flags1: uint64(elf.DF_1_NODEFLIB)},
	} {
		b := mkELF(s)
		ef, err := elf.NewFile(strings.NewReader(string(b)))
		if err != nil {
			t.Fatalf("debug/elf cannot read %+v: %v", s, err)
		}
		libs, err := ef.ImportedLibraries()
		if err != nil || !slices.Equal(libs, s.Needed) {
			t.Errorf("ImportedLibraries = %q, %v; want %q", libs, err, s.Needed)
		}
		for tag, want := range map[elf.DynTag]string{elf.DT_SONAME: s.Soname, elf.DT_RPATH: s.RPath, elf.DT_RUNPATH: s.RunPath} {
			got, err := ef.DynString(tag)
			if err != nil || strings.Join(got, "") != want {
				t.Errorf("DynString(%v) = %q, %v; want %q", tag, got, err, want)
			}
		}

		info, err := parseELF(strings.NewReader(string(b)), int64(len(b)))
		if err != nil {
			t.Fatalf("parseELF: %v", err)
		}
		wantRPath := s.RPath
		if s.RunPath != "" {
			wantRPath = "" // ld.so ignores DT_RPATH next to DT_RUNPATH
		}
		if !slices.Equal(info.Needed, s.Needed) || info.Soname != s.Soname || info.RPath != wantRPath ||
			info.RunPath != s.RunPath || info.Interp != s.Interp || info.Flags1 != s.Flags1 {
			t.Errorf("parseELF = %+v; spec %+v", info, s)
		}
	}
}

func TestResolveDebianTree(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.elf("/usr/bin/app", prog("libc.so.6"))
	res := f.mustResolve("/bin/app", Options{})
	if res.Program != "/bin/app" || res.Interp != testInterp {
		t.Errorf("Program %q, Interp %q", res.Program, res.Interp)
	}
	wantFiles(t, res, append(debianFiles, "/bin -> usr/bin", "/usr/bin/app")...)
	if got := libPaths(res); !slices.Equal(got, []string{"/lib/x86_64-linux-gnu/libc.so.6"}) {
		t.Errorf("libraries %q", got)
	}
	if l := res.Libraries[0]; l.Real != multiarch+"/libc.so.6" || l.Soname != "libc.so.6" || l.NeededBy != "/bin/app" || l.Name != "libc.so.6" {
		t.Errorf("library %+v", l)
	}
	if res.LibraryDirs != nil {
		t.Errorf("LibraryDirs %q", res.LibraryDirs)
	}
	for _, fl := range res.Files {
		want := fs.FileMode(0o644)
		switch {
		case fl.Symlink != "":
			want = fs.ModeSymlink | 0o777
		case strings.HasSuffix(fl.GuestPath, "/app"), strings.Contains(fl.GuestPath, "ld-linux"), strings.HasSuffix(fl.GuestPath, "/libc.so.6"):
			want = 0o755
		}
		if fl.Mode != want {
			t.Errorf("%s: mode %v, want %v", fl.GuestPath, fl.Mode, want)
		}
	}
	roundTrip(t, res)

	// Relative program paths are relative to the fake root's "/".
	if res, err := f.resolve("usr/bin/app", Options{}); err != nil || res.Program != "/usr/bin/app" {
		t.Errorf("relative program: %v, %+v", err, res)
	}
	// ".." is resolved physically: /bin/.. is /usr.
	if res, err := f.resolve("/bin/../bin/app", Options{}); err != nil || res.Program != "/usr/bin/app" {
		t.Errorf("program with ..: %v, %+v", err, res)
	}
}

// TestResolveHostCopies resolves real host binaries copied into a fake
// Debian tree.
func TestResolveHostCopies(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.copyHost(multiarch+"/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")
	f.copyHost(multiarch+"/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2")
	f.copyHost("/usr/bin/true", "/usr/bin/true")
	res := f.mustResolve("/usr/bin/true", Options{})
	if res.Interp != testInterp {
		t.Errorf("Interp %q", res.Interp)
	}
	wantFiles(t, res, append(debianFiles, "/usr/bin/true")...)
	roundTrip(t, res)
}

func TestStaticProgram(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.elf("/opt/app/static", elfSpec{Type: elf.ET_EXEC, Base: 0x400000, Entry: 0x401000, Static: true})
	f.elf("/opt/app/static-pie", elfSpec{Type: elf.ET_DYN, Entry: 0x1000}) // PT_DYNAMIC, no PT_INTERP
	f.symlink("/usr/bin/st", "/opt/app/static")
	for p, want := range map[string][]string{
		"/opt/app/static":     {"/opt/app/static"},
		"/opt/app/static-pie": {"/opt/app/static-pie"},
		"/bin/st":             {"/bin -> usr/bin", "/usr/bin/st -> /opt/app/static", "/opt/app/static"},
	} {
		res := f.mustResolve(p, Options{})
		if res.Interp != "" || res.Program != p || len(res.Libraries) != 0 {
			t.Errorf("%s: %+v", p, res)
		}
		wantFiles(t, res, want...)
	}
}

func TestRPathRunPathPrecedence(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	for _, d := range []string{"/opt/rpath", "/opt/runpath", "/opt/extra", multiarch} {
		f.elf(d+"/libx.so", lib("libx.so"))
	}
	f.elf("/opt/runpath/libonly-runpath.so", lib("", "libdeep.so"))
	f.elf("/opt/runpath/libdeep.so", lib(""))
	f.elf("/opt/rpath/librp.so", lib("", "libdeep2.so"))
	f.elf("/opt/rpath/libdeep2.so", lib(""))
	f.elf("/opt/rpath/libhasrunpath.so", elfSpec{RunPath: "/opt/nowhere", Needed: []string{"libdeep2.so"}})

	cases := []struct {
		name   string
		spec   elfSpec
		opts   Options
		want   []string // library paths in load order
		errSub string
	}{
		{"default", prog("libx.so"), Options{}, []string{"/lib/x86_64-linux-gnu/libx.so"}, ""},
		{"rpath", elfSpec{Interp: testInterp, Entry: 1, Needed: []string{"libx.so"}, RPath: "/opt/rpath"}, Options{}, []string{"/opt/rpath/libx.so"}, ""},
		{"runpath", elfSpec{Interp: testInterp, Entry: 1, Needed: []string{"libx.so"}, RunPath: "/opt/runpath"}, Options{}, []string{"/opt/runpath/libx.so"}, ""},
		{"runpath disables rpath", elfSpec{Interp: testInterp, Entry: 1, Needed: []string{"libx.so"}, RPath: "/opt/rpath", RunPath: "/opt/runpath"}, Options{}, []string{"/opt/runpath/libx.so"}, ""},
		{"extra before runpath", elfSpec{Interp: testInterp, Entry: 1, Needed: []string{"libx.so"}, RunPath: "/opt/runpath"}, Options{ExtraLibraryDirs: []string{"/opt/extra/"}}, []string{"/opt/extra/libx.so"}, ""},
		{"rpath before extra", elfSpec{Interp: testInterp, Entry: 1, Needed: []string{"libx.so"}, RPath: "/opt/rpath"}, Options{ExtraLibraryDirs: []string{"/opt/extra"}}, []string{"/opt/rpath/libx.so"}, ""},
		{"extra before default", prog("libx.so"), Options{ExtraLibraryDirs: []string{"/opt/extra"}}, []string{"/opt/extra/libx.so"}, ""},
		{"runpath is not inherited", elfSpec{Interp: testInterp, Entry: 1, Needed: []string{"libonly-runpath.so"}, RunPath: "/opt/runpath"}, Options{},
			nil, "/opt/runpath/libonly-runpath.so (needed by /opt/p) needs libdeep.so, which is not in RUNPATH/RPATH, ld.so.conf or the default library directories; install it or pass --add"},
		{"rpath is inherited", elfSpec{Interp: testInterp, Entry: 1, Needed: []string{"librp.so"}, RPath: "/opt/rpath"}, Options{},
			[]string{"/opt/rpath/librp.so", "/opt/rpath/libdeep2.so"}, ""},
		{"runpath stops rpath inheritance", elfSpec{Interp: testInterp, Entry: 1, Needed: []string{"libhasrunpath.so"}, RPath: "/opt/rpath"}, Options{},
			nil, "/opt/rpath/libhasrunpath.so (needed by /opt/p) needs libdeep2.so, which is not in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_ = os.Remove(f.host("/opt/p"))
			f.elf("/opt/p", c.spec)
			res, err := f.resolve("/opt/p", c.opts)
			if c.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSub) || !errors.Is(err, ErrLibraryNotFound) || !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("err = %v, want %q", err, c.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, f.dir, res)
			if got := libPaths(res); !slices.Equal(got, c.want) {
				t.Errorf("libraries %q, want %q", got, c.want)
			}
		})
	}
}

func TestLibraryDirs(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.write("/etc/ld.so.conf", []byte("/opt/conf\n/usr/lib/x86_64-linux-gnu\n"), 0o644)
	f.elf("/opt/conf/libconf.so", lib("libconf.so"))
	f.elf("/opt/extra/libextra.so", lib("libextra.so"))
	f.elf("/opt/unused/libunused.so", lib(""))
	f.elf("/usr/lib64/lib64.so", lib("lib64.so"))
	f.elf("/opt/rp/librp.so", lib(""))
	f.elf("/opt/p", elfSpec{Interp: testInterp, Entry: 1, RunPath: "/opt/rp",
		Needed: []string{"lib64.so", "libconf.so", "libextra.so", "librp.so", "libc.so.6"}})
	res := f.mustResolve("/opt/p", Options{ExtraLibraryDirs: []string{"/opt/unused", "/opt/extra"}})
	want := []string{"/opt/extra", "/opt/conf", "/lib64"} // /lib64 comes before /usr/lib64
	if !slices.Equal(res.LibraryDirs, want) {
		t.Errorf("LibraryDirs %q, want %q", res.LibraryDirs, want)
	}
	roundTrip(t, res)
}

func TestOriginAndTokens(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	// The program's $ORIGIN is its real directory, even when run through
	// a symbolic link.
	f.elf("/opt/app/bin/app", elfSpec{Interp: testInterp, Entry: 1, RunPath: "$ORIGIN/../lib:/opt/$PLATFORM/${LIB}",
		Needed: []string{"libq.so", "libtok.so", "libx.so"}})
	f.symlink("/usr/local/bin/app", "../../../opt/app/bin/app")
	f.elf("/opt/app/lib/libq.so", elfSpec{RPath: "${ORIGIN}/sub", Needed: []string{"libr.so"}})
	f.elf("/opt/app/lib/sub/libr.so", lib("libr.so"))
	f.elf("/opt/x86_64/lib/x86_64-linux-gnu/libtok.so", lib(""))
	// A library's $ORIGIN is the directory it was opened from, without
	// resolving symbolic links (glibc does not).
	f.elf("/opt/x/phys/libx.so", elfSpec{RunPath: "$ORIGIN/dep", Needed: []string{"libdep.so"}})
	f.symlink("/opt/app/lib/libx.so", "../../x/phys/libx.so")
	f.elf("/opt/app/lib/dep/libdep.so", lib(""))
	f.elf("/opt/x/phys/dep/libdep.so", lib("")) // what a resolving $ORIGIN would find

	res := f.mustResolve("/usr/local/bin/app", Options{})
	want := []string{"/opt/app/bin/../lib/libq.so", "/opt/x86_64/lib/x86_64-linux-gnu/libtok.so",
		"/opt/app/bin/../lib/libx.so", "/opt/app/bin/../lib/sub/libr.so", "/opt/app/bin/../lib/dep/libdep.so"}
	if got := libPaths(res); !slices.Equal(got, want) {
		t.Errorf("libraries\n%q\nwant\n%q", got, want)
	}
	wantFiles(t, res, "/usr/local/bin/app -> ../../../opt/app/bin/app", "/opt/app/bin/app",
		"/opt/app/lib/libq.so", "/opt/app/lib/sub/libr.so", "/opt/x86_64/lib/x86_64-linux-gnu/libtok.so",
		"/opt/app/lib/libx.so -> ../../x/phys/libx.so", "/opt/x/phys/libx.so", "/opt/app/lib/dep/libdep.so",
		"/lib64 -> usr/lib64", "/usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"/lib -> usr/lib", multiarch+"/ld-linux-x86-64.so.2")
	roundTrip(t, res)
}

func TestExpandDST(t *testing.T) {
	for in, want := range map[string]string{
		"plain":               "plain",
		"$ORIGIN":             "/o",
		"$ORIGIN/../lib":      "/o/../lib",
		"${ORIGIN}lib":        "/olib",
		"$ORIGINAL/x":         "$ORIGINAL/x",
		"$ORIGIN_x":           "$ORIGIN_x",
		"$ORIGIN-x":           "/o-x",
		"${ORIGIN":            "${ORIGIN",
		"$LIB/$PLATFORM":      "lib/x86_64-linux-gnu/x86_64",
		"${LIB}${PLATFORM}":   "lib/x86_64-linux-gnux86_64",
		"$FOO/$":              "$FOO/$",
		"$$ORIGIN":            "$/o",
		"/a/$ORIGIN/$ORIGIN":  "/a//o//o",
		"$LIBRARY:$PLATFORMS": "$LIBRARY:$PLATFORMS",
	} {
		if got := expandDST(in, "/o"); got != want {
			t.Errorf("expandDST(%q) = %q, want %q", in, got, want)
		}
	}
	if got := splitSearchPath("/a/:$ORIGIN/b::rel:$ORIGIN", "/o"); !slices.Equal(got, []string{"/a", "/o/b", "/o"}) {
		t.Errorf("splitSearchPath = %q", got)
	}
}

func TestCycles(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.elf(multiarch+"/liba.so", elfSpec{Needed: []string{"libb.so", "liba.so"}}) // no sonames
	f.elf(multiarch+"/libb.so", elfSpec{Needed: []string{"liba.so", "libc.so.6"}})
	f.elf("/opt/p", prog("liba.so"))
	res := f.mustResolve("/opt/p", Options{})
	if got := libPaths(res); !slices.Equal(got, []string{"/lib/x86_64-linux-gnu/liba.so", "/lib/x86_64-linux-gnu/libb.so", "/lib/x86_64-linux-gnu/libc.so.6"}) {
		t.Errorf("libraries %q", got)
	}

	// A library found again under another path is loaded once.
	f.elf("/opt/loop/libself.so", elfSpec{RunPath: "/opt/loop/alias", Needed: []string{"libalias.so"}})
	f.symlink("/opt/loop/alias/libalias.so", "../libself.so")
	f.elf("/opt/p2", elfSpec{Interp: testInterp, Entry: 1, RunPath: "/opt/loop", Needed: []string{"libself.so"}})
	res = f.mustResolve("/opt/p2", Options{})
	if got := libPaths(res); !slices.Equal(got, []string{"/opt/loop/libself.so"}) {
		t.Errorf("libraries %q", got)
	}
	if !slices.Contains(fileList(res), "/opt/loop/alias/libalias.so -> ../libself.so") {
		t.Errorf("the alias path ld.so opens is missing: %q", fileList(res))
	}
}

func TestSonameMatchesLoadedObjects(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	// The interpreter is matched by its soname; it is in no search
	// directory.
	f.elf("/opt/rtld/ld-test.so", elfSpec{Soname: "ld-test.so.1", Entry: 0x1000})
	f.elf("/opt/lib/libuses-ld.so", elfSpec{Needed: []string{"ld-test.so.1", "libfirst.so.1"}})
	f.elf("/opt/lib/libfirst.so.1.0", lib("libfirst.so.1"))
	f.symlink("/opt/lib/libfirst.so", "libfirst.so.1.0")
	f.elf("/opt/p", elfSpec{Interp: "/opt/rtld/ld-test.so", Entry: 1, RunPath: "/opt/lib", Needed: []string{"libfirst.so", "libuses-ld.so"}})
	res := f.mustResolve("/opt/p", Options{})
	if got := libPaths(res); !slices.Equal(got, []string{"/opt/lib/libfirst.so", "/opt/lib/libuses-ld.so"}) {
		t.Errorf("libraries %q", got)
	}
	wantFiles(t, res, "/opt/p", "/opt/rtld/ld-test.so", "/opt/lib/libfirst.so -> libfirst.so.1.0", "/opt/lib/libfirst.so.1.0", "/opt/lib/libuses-ld.so")
}

func TestWrongArchitectureSkipped(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.write("/opt/arm/libx.so", mkELF(elfSpec{Machine: elf.EM_AARCH64, Soname: "libx.so"}), 0o644)
	f.write("/opt/i386/libx.so", mkELF32(elf.EM_386), 0o644)
	f.elf(multiarch+"/libx.so", lib("libx.so"))
	f.elf("/opt/p", elfSpec{Interp: testInterp, Entry: 1, RPath: "/opt/arm:/opt/i386", Needed: []string{"libx.so"}})
	res := f.mustResolve("/opt/p", Options{})
	if got := libPaths(res); !slices.Equal(got, []string{"/lib/x86_64-linux-gnu/libx.so"}) {
		t.Errorf("libraries %q", got)
	}

	f.elf("/opt/p2", elfSpec{Interp: testInterp, Entry: 1, RPath: "/opt/arm:/opt/i386", Needed: []string{"libx.so", "liby.so"}})
	f.write("/opt/arm/liby.so", mkELF(elfSpec{Machine: elf.EM_AARCH64}), 0o644)
	f.write("/opt/i386/liby.so", mkELF32(elf.EM_386), 0o644)
	_, err := f.resolve("/opt/p2", Options{})
	want := "/opt/p2 needs liby.so, which is not in RUNPATH/RPATH, ld.so.conf or the default library directories; install it or pass --add " +
		"(skipped /opt/arm/liby.so is an arm64 (EM_AARCH64) ELF; /opt/i386/liby.so is a 32-bit x86 (ELFCLASS32, EM_386) ELF)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrLibraryNotFound) {
		t.Errorf("err = %v\nwant %s", err, want)
	}

	// A path is not searched: the wrong architecture is an error.
	f.elf("/opt/p3", prog("/opt/arm/libx.so"))
	_, err = f.resolve("/opt/p3", Options{})
	if err == nil || !errors.Is(err, ErrWrongArch) || err.Error() != "/opt/p3 needs /opt/arm/libx.so: /opt/arm/libx.so is an arm64 (EM_AARCH64) ELF" {
		t.Errorf("err = %v", err)
	}
}

func TestSymlinkChainsAndParents(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	// libfoo.so.1 -> libfoo.so.1.2 -> /usr/lib/x86_64-linux-gnu/real/libfoo.so.1.2.3
	f.elf(multiarch+"/real/libfoo.so.1.2.3", lib("libfoo.so.1"))
	f.symlink(multiarch+"/libfoo.so.1.2", "/usr/lib/x86_64-linux-gnu/real/libfoo.so.1.2.3")
	f.symlink(multiarch+"/libfoo.so.1", "libfoo.so.1.2")
	// A symbolic link to a directory in an RPATH, with an absolute
	// target, itself inside a directory reached through a link.
	f.elf("/srv/libs/v2/libbar.so", lib(""))
	f.symlink("/srv/libs/current", "v2")
	f.symlink("/opt/vendor", "/srv/libs")
	f.elf("/opt/p", elfSpec{Interp: testInterp, Entry: 1, RPath: "/opt/vendor/current", Needed: []string{"libfoo.so.1", "libbar.so"}})
	res := f.mustResolve("/opt/p", Options{})
	wantFiles(t, res, "/lib -> usr/lib", "/lib64 -> usr/lib64", multiarch+"/ld-linux-x86-64.so.2",
		"/usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"/opt/p",
		multiarch+"/libfoo.so.1 -> libfoo.so.1.2",
		multiarch+"/libfoo.so.1.2 -> /usr/lib/x86_64-linux-gnu/real/libfoo.so.1.2.3",
		multiarch+"/real/libfoo.so.1.2.3",
		"/opt/vendor -> /srv/libs",
		"/srv/libs/current -> v2",
		"/srv/libs/v2/libbar.so")
	roundTrip(t, res)
}

func TestSymlinkLoop(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.symlink("/opt/l/liba.so", "libb.so")
	f.symlink("/opt/l/libb.so", "liba.so")
	f.elf("/opt/p", elfSpec{Interp: testInterp, Entry: 1, RPath: "/opt/l", Needed: []string{"liba.so"}})
	_, err := f.resolve("/opt/p", Options{})
	if err == nil || !errors.Is(err, syscall.ELOOP) || !strings.Contains(err.Error(), "/opt/p needs liba.so: /opt/l/liba.so: too many levels of symbolic links") {
		t.Errorf("err = %v", err)
	}
	// Links escaping the root with ".." stay inside it, as after chroot.
	f.symlink("/opt/esc/libc.so.6", "../../../../../../lib/x86_64-linux-gnu/libc.so.6")
	f.elf("/opt/p2", elfSpec{Interp: testInterp, Entry: 1, RPath: "/opt/esc", Needed: []string{"libc.so.6"}})
	res := f.mustResolve("/opt/p2", Options{})
	if res.Libraries[0].Real != multiarch+"/libc.so.6" {
		t.Errorf("%+v", res.Libraries)
	}
}

func TestNodeflib(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.write("/etc/ld.so.conf", []byte("/opt/conf /usr/lib\n"), 0o644)
	f.elf("/opt/conf/libconf.so", lib(""))
	f.elf("/usr/lib/libdef.so", lib(""))
	f.elf("/opt/p", elfSpec{Interp: testInterp, Entry: 1, Flags1: uint64(elf.DF_1_NODEFLIB), Needed: []string{"libconf.so", "libdef.so"}})
	_, err := f.resolve("/opt/p", Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "/opt/p needs libdef.so, which is not in") {
		t.Errorf("err = %v", err)
	}
}

func TestNeededPaths(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.elf("/opt/abs/libabs.so", lib(""))
	f.elf("/opt/app/librel.so", lib(""))
	f.elf("/opt/app/p", prog("/opt/abs/libabs.so", "$ORIGIN/librel.so"))
	res := f.mustResolve("/opt/app/p", Options{})
	if got := libPaths(res); !slices.Equal(got, []string{"/opt/abs/libabs.so", "/opt/app/librel.so"}) {
		t.Errorf("libraries %q", got)
	}

	f.elf("/opt/app/p2", prog("sub/lib.so"))
	if _, err := f.resolve("/opt/app/p2", Options{}); err == nil || !errors.Is(err, ErrUnsupported) {
		t.Errorf("relative needed path: %v", err)
	}
	f.elf("/opt/app/p3", prog("/opt/missing/lib.so"))
	if _, err := f.resolve("/opt/app/p3", Options{}); err == nil || !errors.Is(err, ErrLibraryNotFound) ||
		err.Error() != "/opt/app/p3 needs /opt/missing/lib.so, which does not exist" {
		t.Errorf("missing needed path: %v", err)
	}
}

func TestProgramErrors(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	good := mkELF(prog("libc.so.6"))
	f.write("/x/script", []byte("#!/bin/sh\necho hi\n"), 0o755)
	f.write("/x/text", []byte("hello"), 0o644)
	f.write("/x/empty", nil, 0o644)
	f.write("/x/arm64", mkELF(elfSpec{Machine: elf.EM_AARCH64, Entry: 1, Interp: "/lib/ld-linux-aarch64.so.1"}), 0o755)
	f.write("/x/i386", mkELF32(elf.EM_386), 0o755)
	f.write("/x/truncated", good[:40], 0o755)
	f.write("/x/truncated2", good[:240], 0o755) // in the middle of PT_INTERP
	f.elf("/x/rel", elfSpec{Type: elf.ET_REL, Static: true})
	f.elf("/x/sharedlib", lib("libfoo.so.1"))
	f.elf("/x/nointerp", elfSpec{Entry: 1, Needed: []string{"libc.so.6"}})
	f.elf("/x/missinginterp", elfSpec{Entry: 1, Interp: "/lib/ld-musl-x86_64.so.1", Needed: []string{"libc.so"}})
	f.elf("/x/relinterp", elfSpec{Entry: 1, Interp: "ld.so", Needed: []string{"libc.so"}})
	f.elf("/x/badinterp", elfSpec{Entry: 1, Interp: "/x/text"})
	f.elf("/x/armlib", prog("libarm.so"))
	f.write("/lib/libarm.so", mkELF(elfSpec{Machine: elf.EM_AARCH64}), 0o644)
	f.elf("/x/badlib", prog("libbad.so"))
	f.write("/lib/libbad.so", []byte("INPUT(-lc)\n"), 0o644)
	f.elf("/x/exelib", prog("libexe.so"))
	f.elf("/lib/libexe.so", elfSpec{Type: elf.ET_EXEC, Entry: 0x401000})

	cases := []struct {
		path string
		kind error
		msg  string
	}{
		{"/x/missing", ErrNotFound, "/x/missing does not exist"},
		{"/x", ErrNotELF, "/x is a directory, not a program"},
		{"/x/script", ErrNotELF, "/x/script is a #! script, not an ELF file"},
		{"/x/text", ErrNotELF, "/x/text is not an ELF file"},
		{"/x/empty", ErrNotELF, "/x/empty is not an ELF file"},
		{"/x/arm64", ErrWrongArch, "/x/arm64 is an arm64 (EM_AARCH64) ELF; nos images run x86_64 programs"},
		{"/x/i386", ErrWrongArch, "/x/i386 is a 32-bit x86 (ELFCLASS32, EM_386) ELF; nos images run 64-bit x86_64 programs"},
		{"/x/truncated", ErrCorrupt, "/x/truncated is a corrupt or truncated ELF file: truncated ELF header (40 bytes)"},
		{"/x/truncated2", ErrCorrupt, "/x/truncated2 is a corrupt or truncated ELF file: PT_INTERP beyond the end of the file"},
		{"/x/rel", ErrNotELF, "/x/rel is a relocatable object file, not a program"},
		{"/x/sharedlib", ErrNotELF, "/x/sharedlib is a shared library, not a program"},
		{"/x/nointerp", ErrUnsupported, "/x/nointerp needs shared libraries (libc.so.6) but has no program interpreter (PT_INTERP), so it cannot run"},
		{"/x/missinginterp", ErrNoInterpreter, "/x/missinginterp needs the program interpreter /lib/ld-musl-x86_64.so.1, which is not on this host"},
		{"/x/relinterp", ErrUnsupported, `/x/relinterp has a relative program interpreter "ld.so", which the kernel looks up from the working directory; nos needs an absolute path`},
		{"/x/badinterp", ErrNotELF, "/x/badinterp needs the program interpreter /x/text: /x/text is not an ELF file"},
		{"/x/armlib", ErrLibraryNotFound, "/x/armlib needs libarm.so, which is not in RUNPATH/RPATH, ld.so.conf or the default library directories; install it or pass --add (skipped /lib/libarm.so is an arm64 (EM_AARCH64) ELF)"},
		{"/x/badlib", ErrNotELF, "/x/badlib needs libbad.so: /lib/libbad.so is not an ELF file"},
		{"/x/exelib", ErrNotELF, "/x/exelib needs libexe.so: /lib/libexe.so is not a shared library (ET_EXEC)"},
	}
	for _, c := range cases {
		_, err := f.resolve(c.path, Options{})
		if err == nil || err.Error() != c.msg || !errors.Is(err, c.kind) {
			t.Errorf("%s: err = %v\n   want %s (%v)", c.path, err, c.msg, c.kind)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", c.path, err)
		}
	}
	if _, err := Resolve("/x", Options{Root: f.host("/x/text")}); err == nil {
		t.Error("a root that is a file is accepted")
	}
	if _, err := f.resolve("/x/script", Options{LDSoConf: "/etc/missing.conf"}); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing explicit ld.so.conf: %v", err)
	}
}

// TestUnreadableLibrary simulates EACCES, which root would not get.
func TestUnreadableLibrary(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	f.elf("/opt/p", prog("libc.so.6"))
	tr, err := newTree(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	tr.open = func(p string) (readerFile, error) {
		if strings.HasSuffix(p, "/libc.so.6") {
			return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
		}
		return os.Open(p)
	}
	_, err = (&resolver{t: tr}).run("/opt/p", Options{})
	want := "/opt/p needs libc.so.6: cannot read /lib/x86_64-linux-gnu/libc.so.6: permission denied"
	if err == nil || err.Error() != want || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("err = %v\nwant %s", err, want)
	}

	// A directory that cannot be searched is an error too, not a miss.
	tr.open = nil
	tr.lstat = func(p string) (fs.FileInfo, error) {
		if strings.HasSuffix(p, "/usr/lib/x86_64-linux-gnu/libc.so.6") {
			return nil, &fs.PathError{Op: "lstat", Path: p, Err: syscall.EACCES}
		}
		return os.Lstat(p)
	}
	_, err = (&resolver{t: tr}).run("/opt/p", Options{})
	if err == nil || !errors.Is(err, fs.ErrPermission) || !strings.HasPrefix(err.Error(), "/opt/p needs libc.so.6: /lib/x86_64-linux-gnu/libc.so.6: permission denied") {
		t.Errorf("err = %v", err)
	}
}

func TestTooManyLibraries(t *testing.T) {
	defer func(n int) { maxObjects = n }(maxObjects)
	maxObjects = 50
	f := newFakeRoot(t)
	f.debian()
	// A chain of maxObjects libraries, each needing the next.
	for i := 0; i < maxObjects; i++ {
		f.elf("/opt/l/lib"+strconv.Itoa(i)+".so", elfSpec{Needed: []string{"lib" + strconv.Itoa(i+1) + ".so"}})
	}
	f.elf("/opt/p", elfSpec{Interp: testInterp, Entry: 1, RPath: "/opt/l", Needed: []string{"lib0.so"}})
	_, err := f.resolve("/opt/p", Options{})
	if err == nil || !errors.Is(err, errTooManyLibraries) {
		t.Errorf("err = %v", err)
	}
}

func TestLookPath(t *testing.T) {
	if p, err := LookPath("./x"); err != nil || p != "./x" {
		t.Errorf("LookPath(./x) = %q, %v", p, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/nos-test-prog", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", "/nonexistent:"+dir)
	if p, err := LookPath("nos-test-prog"); err != nil || p != dir+"/nos-test-prog" {
		t.Errorf("LookPath = %q, %v", p, err)
	}
	_, err := LookPath("nos-no-such-prog")
	if err == nil || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nos-no-such-prog is not in $PATH") {
		t.Errorf("err = %v", err)
	}
	t.Chdir(dir)
	t.Setenv("PATH", ".")
	if _, err := LookPath("nos-test-prog"); err == nil || !strings.Contains(err.Error(), "relative directory in $PATH") {
		t.Errorf("err = %v", err)
	}
	if _, err := LookPath(""); err == nil {
		t.Error("empty name accepted")
	}
}
