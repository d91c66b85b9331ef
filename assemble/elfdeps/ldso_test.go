package elfdeps

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgainstLdSo builds programs and libraries with a C compiler,
// exercising DT_RPATH inheritance, DT_RUNPATH, $ORIGIN through a
// symbolic link, and a wrong-class library, and checks that Resolve
// finds what the host's ld.so loads (as ldd reports it), or fails where
// ld.so fails. It is skipped without cc and ldd.
func TestAgainstLdSo(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles C")
	}
	for _, tool := range []string{"cc", "ldd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("no", tool)
		}
	}
	d := t.TempDir()
	if ev, err := filepath.EvalSymlinks(d); err == nil {
		d = ev
	}
	cc := func(out string, args ...string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(d, out)), 0o755); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(d, "src.c")
		code := "int f_" + strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(out) + "(void) { return 0; }\n"
		if !strings.Contains(out, ".so") {
			code += "int main(void) { return 0; }\n"
		}
		if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("cc", append([]string{"-o", filepath.Join(d, out), src, "-Wl,--no-as-needed"}, args...)...)
		cmd.Dir = d
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("cc cannot build %s: %v\n%s", out, err, b)
		}
	}
	shared := []string{"-shared", "-fPIC"}
	oldTags := "-Wl,--disable-new-dtags"
	newTags := "-Wl,--enable-new-dtags"
	link := func(dir, name string) []string { return []string{"-L" + filepath.Join(d, dir), "-l" + name} }

	// RPATH inheritance: app1 -> libmid (no paths) -> libleaf, both only
	// in the program's RPATH.
	cc("rp/libleaf.so", shared...)
	cc("rp/libmid.so", append(shared, link("rp", "leaf")...)...)
	cc("bin/app1", append(link("rp", "mid"), oldTags, "-Wl,-rpath,"+d+"/rp", "-Wl,-rpath-link,"+d+"/rp")...)

	// RUNPATH is not inherited: app2 -> libmid (in app2's RUNPATH) ->
	// libleaf fails.
	cc("bin/app2", append(link("rp", "mid"), newTags, "-Wl,-rpath,"+d+"/rp", "-Wl,-rpath-link,"+d+"/rp")...)

	// $ORIGIN of a library opened through a symbolic link is the link's
	// directory: app3 -> x/liba.so -> ../phys/liba.so with RUNPATH
	// $ORIGIN/dep, and libdep only in x/dep.
	cc("x/dep/libdep.so", shared...)
	cc("phys/liba.so", append(append(shared, link("x/dep", "dep")...), newTags, "-Wl,-rpath,$ORIGIN/dep")...)
	if err := os.Symlink("../phys/liba.so", filepath.Join(d, "x/liba.so")); err != nil {
		t.Fatal(err)
	}
	cc("bin/app3", append(link("x", "a"), newTags, "-Wl,-rpath,$ORIGIN/../x", "-Wl,-rpath-link,"+d+"/x/dep")...)

	// A 32-bit library first in the RPATH is skipped, if cc can build
	// one.
	cc("w64/libw.so", shared...)
	cc("bin/app4", append(link("w64", "w"), oldTags, "-Wl,-rpath,"+d+"/w32:"+d+"/w64")...)
	build32 := exec.Command("cc", "-m32", "-shared", "-fPIC", "-nostdlib", "-o", filepath.Join(d, "w32/libw.so"), "-x", "c", "-")
	build32.Stdin = strings.NewReader("int w(void) { return 0; }\n")
	_ = os.MkdirAll(filepath.Join(d, "w32"), 0o755)
	if b, err := build32.CombinedOutput(); err != nil {
		first, _, _ := strings.Cut(string(b), "\n")
		t.Logf("no 32-bit library (cc -m32: %v: %s); app4 checks the plain case", err, first)
	}

	for _, app := range []string{"app1", "app2", "app3", "app4"} {
		p := filepath.Join(d, "bin", app)
		res, err := Resolve(p, Options{})
		_, _, lddOK := lddLibs(t, p)
		switch {
		case err != nil && lddOK:
			t.Errorf("%s: Resolve: %v; ldd succeeds", app, err)
		case err == nil && !lddOK:
			t.Errorf("%s: ldd fails; Resolve finds %q", app, libPaths(res))
		case err != nil:
			if !errors.Is(err, ErrLibraryNotFound) {
				t.Errorf("%s: %v", app, err)
			}
			t.Logf("%s: both fail: %v", app, err)
		default:
			checkResult(t, "/", res)
			compareWithLdd(t, p, res)
		}
	}
}
