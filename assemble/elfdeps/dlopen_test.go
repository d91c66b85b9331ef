package elfdeps

import (
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// newFiles returns the entries of fileList(res) that are not in base.
func newFiles(base, res *Result) []string {
	have := map[string]bool{}
	for _, f := range fileList(base) {
		have[f] = true
	}
	var out []string
	for _, f := range fileList(res) {
		if !have[f] {
			out = append(out, f)
		}
	}
	return out
}

// resolveObjects runs ResolveObjects in the fake root.
func (f *fakeRoot) resolveObjects(base *Result, objs []string, opts Options) (*Result, error) {
	opts.Root = f.dir
	return ResolveObjects(base, objs, opts)
}

// dlopenTree is a Debian tree with a program that loads modules.
func dlopenTree(t *testing.T) (*fakeRoot, *Result) {
	t.Helper()
	f := newFakeRoot(t)
	f.debian()
	f.elf("/usr/bin/app", prog("libc.so.6"))
	return f, f.mustResolve("/usr/bin/app", Options{})
}

func TestResolveObjects(t *testing.T) {
	f, base := dlopenTree(t)
	baseFiles := fileList(base)

	// Found through the module's own DT_RUNPATH with $ORIGIN, through a
	// symbolic link chain; the module's directory is reached through the
	// /lib link.
	f.elf("/usr/lib/app/modules/mod_a.so", elfSpec{Needed: []string{"libpriv.so.1", "libc.so.6"}, RunPath: "$ORIGIN/../private"})
	f.elf("/usr/lib/app/private/libpriv.so.1.2.3", lib("libpriv.so.1", "libdeep.so.2"))
	f.symlink("/usr/lib/app/private/libpriv.so.1", "libpriv.so.1.2.3")
	// The RUNPATH of mod_a does not apply to what libpriv needs: found in
	// a default directory instead of the private one.
	f.elf("/usr/lib/app/private/libdeep.so.2", lib("libdeep.so.2"))
	f.elf(multiarch+"/libdeep.so.2", lib("libdeep.so.2"))
	// Found in a default directory.
	f.elf("/usr/lib/app/modules/mod_b.so", lib("", "libextra.so.3"))
	f.elf(multiarch+"/libextra.so.3", lib("libextra.so.3", "libc.so.6"))
	// Needs only what the program has loaded already.
	f.elf("/usr/lib/app/modules/mod_c.so", lib("", "libc.so.6", "ld-linux-x86-64.so.2"))
	// Skipped: not ELF, another architecture, not loadable by dlopen.
	f.write("/usr/lib/app/modules/README", []byte("modules\n"), 0o644)
	f.write("/usr/lib/app/modules/run.sh", []byte("#!/bin/sh\n"), 0o755)
	f.write("/usr/lib/app/modules/empty.so", nil, 0o644)
	f.write("/usr/lib/app/modules/arm.so", mkELF(elfSpec{Machine: elf.EM_AARCH64, Needed: []string{"libnope.so"}}), 0o644)
	f.write("/usr/lib/app/modules/i386.so", mkELF32(elf.EM_386), 0o644)
	f.elf("/usr/lib/app/modules/obj.o", elfSpec{Type: elf.ET_REL, Static: true})
	f.elf("/usr/lib/app/modules/pie", elfSpec{Entry: 0x1040, Interp: testInterp, Needed: []string{"libnope.so"}, Flags1: uint64(elf.DF_1_PIE)})
	f.elf("/usr/lib/app/modules/exe", elfSpec{Type: elf.ET_EXEC, Base: 0x400000, Entry: 0x401000, Interp: testInterp, Needed: []string{"libnope.so"}})
	f.symlink("/usr/lib/app/modules/dangling.so", "gone.so")
	f.symlink("/usr/lib/app/modules/mod_a_link.so", "mod_a.so")

	var objs []string
	ents, err := os.ReadDir(f.host("/usr/lib/app/modules"))
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, "/lib/app/modules", "/lib/app") // directories
	for _, e := range ents {
		objs = append(objs, "/lib/app/modules/"+e.Name())
	}
	res, err := f.resolveObjects(base, objs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The caller copies the objects: libpriv's path goes through the
	// directory of mod_a.
	withObj := *res
	withObj.Files = append([]File{{GuestPath: "/usr/lib/app/modules/mod_a.so", HostPath: f.host("/usr/lib/app/modules/mod_a.so"), Mode: 0o644}}, res.Files...)
	sort.Slice(withObj.Files, func(i, j int) bool { return withObj.Files[i].GuestPath < withObj.Files[j].GuestPath })
	checkResult(t, f.dir, &withObj)
	if got := newFiles(base, res); !slices.Equal(got, []string{
		"/usr/lib/app/private/libpriv.so.1 -> libpriv.so.1.2.3",
		"/usr/lib/app/private/libpriv.so.1.2.3",
		multiarch + "/libdeep.so.2",
		multiarch + "/libextra.so.3",
	}) {
		t.Errorf("new Files %q", got)
	}
	if !slices.Equal(fileList(base), baseFiles) {
		t.Errorf("base modified: %q", fileList(base))
	}
	if res.Program != base.Program || res.Interp != base.Interp {
		t.Errorf("Program %q, Interp %q", res.Program, res.Interp)
	}
	want := []Library{
		base.Libraries[0],
		{Name: "libpriv.so.1", Path: "/lib/app/modules/../private/libpriv.so.1", Real: "/usr/lib/app/private/libpriv.so.1.2.3", Soname: "libpriv.so.1", NeededBy: "/lib/app/modules/mod_a.so"},
		{Name: "libdeep.so.2", Path: "/lib/x86_64-linux-gnu/libdeep.so.2", Real: multiarch + "/libdeep.so.2", Soname: "libdeep.so.2", NeededBy: "/lib/app/modules/../private/libpriv.so.1"},
		{Name: "libextra.so.3", Path: "/lib/x86_64-linux-gnu/libextra.so.3", Real: multiarch + "/libextra.so.3", Soname: "libextra.so.3", NeededBy: "/lib/app/modules/mod_b.so"},
	}
	if !slices.Equal(res.Libraries, want) {
		t.Errorf("Libraries\n  %+v\nwant\n  %+v", res.Libraries, want)
	}
	if res.LibraryDirs != nil {
		t.Errorf("LibraryDirs %q", res.LibraryDirs)
	}

	// Only objects in base: nothing new.
	res, err = f.resolveObjects(base, []string{"/usr/lib/app/modules/mod_c.so", multiarch + "/libc.so.6"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fileList(res), baseFiles) || !slices.Equal(res.Libraries, base.Libraries) {
		t.Errorf("Files %q, Libraries %+v", fileList(res), res.Libraries)
	}
}

// TestResolveObjectsIndependent checks that each object is resolved as
// if it were the only one loaded: two modules whose RUNPATHs find the
// same soname in different directories get both files.
func TestResolveObjectsIndependent(t *testing.T) {
	f, base := dlopenTree(t)
	f.elf("/opt/a/mod.so", elfSpec{Needed: []string{"libcommon.so.1"}, RunPath: "$ORIGIN"})
	f.elf("/opt/a/libcommon.so.1", lib("libcommon.so.1"))
	f.elf("/opt/b/mod.so", elfSpec{Needed: []string{"libcommon.so.1"}, RunPath: "${ORIGIN}/lib"})
	f.elf("/opt/b/lib/libcommon.so.1", lib("libcommon.so.1"))
	res, err := f.resolveObjects(base, []string{"/opt/a/mod.so", "/opt/b/mod.so"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, f.dir, res)
	if got := newFiles(base, res); !slices.Equal(got, []string{"/opt/a/libcommon.so.1", "/opt/b/lib/libcommon.so.1"}) {
		t.Errorf("new Files %q", got)
	}
}

func TestResolveObjectsRPath(t *testing.T) {
	f := newFakeRoot(t)
	f.debian()
	p := prog("libc.so.6")
	p.RPath = "/opt/app/lib"
	f.elf("/opt/app/bin/app", p)
	f.elf("/opt/app/lib/libhelper.so", lib("libhelper.so"))
	f.elf("/opt/app/lib/libonly.so", lib("libonly.so"))
	f.elf("/opt/app/mods/rpath.so", elfSpec{Needed: []string{"libhelper.so"}, RPath: "/nonexistent"})
	f.elf("/opt/app/mods/plain.so", lib("", "libhelper.so"))
	f.elf("/opt/app/mods/runpath.so", elfSpec{Needed: []string{"libonly.so"}, RunPath: "/nonexistent"})
	base := f.mustResolve("/opt/app/bin/app", Options{})

	// Without DT_RUNPATH, the program's DT_RPATH applies.
	res, err := f.resolveObjects(base, []string{"/opt/app/mods/rpath.so", "/opt/app/mods/plain.so"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, f.dir, res)
	if got := newFiles(base, res); !slices.Equal(got, []string{"/opt/app/lib/libhelper.so"}) {
		t.Errorf("new Files %q", got)
	}

	// With DT_RUNPATH, it does not.
	_, err = f.resolveObjects(base, []string{"/opt/app/mods/runpath.so"}, Options{})
	if !errors.Is(err, ErrLibraryNotFound) || !strings.Contains(err.Error(), "/opt/app/mods/runpath.so (loaded with dlopen by /opt/app/bin/app) needs libonly.so, which is not in") {
		t.Errorf("err = %v", err)
	}
}

func TestResolveObjectsErrors(t *testing.T) {
	f, base := dlopenTree(t)
	f.elf("/opt/m/missing.so", lib("", "libc.so.6", "libmissing.so.7"))
	f.elf("/opt/m/deep.so", elfSpec{Needed: []string{"libmid.so"}, RunPath: "$ORIGIN"})
	f.elf("/opt/m/libmid.so", lib("libmid.so", "libgone.so.1"))
	good := mkELF(lib("libx.so"))
	f.write("/opt/m/truncated.so", good[:100], 0o644)

	cases := []struct {
		obj  string
		kind error
		msg  string
	}{
		{"/opt/m/missing.so", ErrLibraryNotFound, "/opt/m/missing.so (loaded with dlopen by /usr/bin/app) needs libmissing.so.7, which is not in RUNPATH/RPATH, ld.so.conf or the default library directories; install it or pass --add"},
		{"/opt/m/deep.so", ErrLibraryNotFound, "/opt/m/libmid.so (needed by /opt/m/deep.so, loaded with dlopen by /usr/bin/app) needs libgone.so.1, which is not in"},
		{"/opt/m/nothere.so", ErrNotFound, "/opt/m/nothere.so does not exist"},
		{"/opt/m/truncated.so", ErrCorrupt, "/opt/m/truncated.so is a corrupt or truncated ELF file"},
	}
	for _, c := range cases {
		res, err := f.resolveObjects(base, []string{"/opt/m", c.obj}, Options{})
		if err == nil {
			t.Errorf("%s: no error, new Files %q", c.obj, newFiles(base, res))
			continue
		}
		if !errors.Is(err, c.kind) || !strings.HasPrefix(err.Error(), c.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v (kind %v)\nwant %s...", c.obj, err, c.kind, c.msg)
		}
	}

	// base must come from Resolve with the same options.
	if _, err := ResolveObjects(nil, nil, Options{Root: f.dir}); err == nil {
		t.Error("nil base accepted")
	}
	other := *base
	other.Libraries = nil
	if _, err := f.resolveObjects(&other, []string{"/opt/m/deep.so"}, Options{}); err == nil || !strings.Contains(err.Error(), "other libraries") {
		t.Errorf("mismatched base: %v", err)
	}
}

// TestResolveObjectsHostPython resolves the host's python3 and its
// extension modules, which dlopen loads: _ssl needs libssl.so.3 and
// libcrypto.so.3, which python3 itself does not.
func TestResolveObjectsHostPython(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s is missing: install the Debian package python3 (apt-get install python3): %v", python, err)
	}
	out, err := exec.Command(python, "-c", `import sysconfig;print(sysconfig.get_path("platstdlib"))`).Output()
	if err != nil {
		t.Fatalf("%s cannot tell its standard library directory (is the python3 package installed?): %v", python, err)
	}
	dynload := filepath.Join(strings.TrimSpace(string(out)), "lib-dynload")
	objs, err := filepath.Glob(filepath.Join(dynload, "*.so"))
	if err != nil || len(objs) == 0 {
		t.Fatalf("no *.so in %s (%v): install the Debian package python3", dynload, err)
	}
	base, err := Resolve(python, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ResolveObjects(base, objs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, "/", res)
	added := map[string]bool{}
	for _, f := range newFiles(base, res) {
		added[filepath.Base(strings.Fields(f)[0])] = true
	}
	for _, l := range []string{"libssl.so.3", "libcrypto.so.3"} {
		if !added[l] {
			t.Errorf("%s not among the new Files %q", l, newFiles(base, res))
		}
	}
	old := map[string]bool{}
	for _, f := range base.Files {
		old[f.GuestPath] = true
	}
	for _, f := range res.Files {
		if old[f.GuestPath] || f.Symlink != "" {
			continue
		}
		if fi, err := os.Stat(f.HostPath); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: HostPath %s: %v", f.GuestPath, f.HostPath, err)
		}
		crossCheck(t, f.HostPath)
	}
	for _, o := range objs {
		real, _ := filepath.EvalSymlinks(o)
		if slices.ContainsFunc(res.Files, func(f File) bool { return f.GuestPath == o || f.GuestPath == real }) {
			t.Errorf("object %s is in Files", o)
		}
	}
	t.Logf("%d objects: %d new files, %d libraries in all", len(objs), len(newFiles(base, res)), len(res.Libraries))

	if _, err := exec.LookPath("ldd"); err != nil {
		return
	}
	ssl, _ := filepath.Glob(filepath.Join(dynload, "_ssl*.so"))
	if len(ssl) == 0 {
		t.Fatalf("no _ssl*.so in %s", dynload)
	}
	libs, _, ok := lddLibs(t, ssl[0])
	if !ok {
		t.Fatalf("ldd %s failed", ssl[0])
	}
	ours := map[string]bool{}
	for _, l := range res.Libraries {
		ours[l.Real] = true
	}
	interpReal, _ := filepath.EvalSymlinks(res.Interp)
	for _, l := range libs {
		if !ours[l] && l != interpReal {
			t.Errorf("ldd %s loads %s, ResolveObjects does not (it has %q)", ssl[0], l, libReals(res))
		}
	}
}
