package elfdeps

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// lddLibs runs ldd (glibc's ld.so in trace mode) on program and returns
// the real paths of the libraries it loads and the interpreter it names.
// ok is false when ldd reports a missing library.
func lddLibs(tb testing.TB, program string) (libs []string, interp string, ok bool) {
	tb.Helper()
	cmd := exec.Command("ldd", program)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"} // no LD_LIBRARY_PATH, no LD_PRELOAD
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		return nil, "", false
	}
	ok = true
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, p, arrow := strings.Cut(line, " => ")
		if !arrow {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "/") {
				interp = f[0]
			}
			continue
		}
		if strings.HasPrefix(p, "not found") {
			tb.Logf("ldd %s: %s not found", program, name)
			ok = false
			continue
		}
		p = strings.Fields(p)[0]
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			tb.Fatalf("ldd %s: %s: %v", program, p, err)
		}
		libs = append(libs, real)
	}
	return libs, interp, ok
}

// compareWithLdd checks that every library ldd lists is in res, with the
// same interpreter.
func compareWithLdd(tb testing.TB, program string, res *Result) {
	tb.Helper()
	libs, interp, ok := lddLibs(tb, program)
	if !ok {
		tb.Errorf("ldd %s failed; Resolve succeeded with %q", program, libPaths(res))
		return
	}
	ours := map[string]bool{}
	for _, l := range res.Libraries {
		ours[l.Real] = true
	}
	for _, l := range libs {
		if !ours[l] {
			tb.Errorf("%s: ldd loads %s, Resolve does not (it has %q)", program, l, libReals(res))
		}
	}
	if len(ours) != len(libs) {
		tb.Logf("%s: Resolve found %d libraries, ldd %d", program, len(ours), len(libs))
	}
	if interp != "" && interp != res.Interp {
		tb.Errorf("%s: ldd names the interpreter %s, Resolve %s", program, interp, res.Interp)
	}
}

// crossCheck compares parseELF with debug/elf on a real object.
func crossCheck(tb testing.TB, p string) {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	info, err := parseELF(f, fi.Size())
	if err != nil {
		tb.Fatalf("parseELF(%s): %v", p, err)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		tb.Fatalf("debug/elf %s: %v", p, err)
	}
	needed, _ := ef.ImportedLibraries()
	if !slices.Equal(needed, info.Needed) {
		tb.Errorf("%s: DT_NEEDED %q, debug/elf says %q", p, info.Needed, needed)
	}
	soname, _ := ef.DynString(elf.DT_SONAME)
	if strings.Join(soname, "") != info.Soname {
		tb.Errorf("%s: DT_SONAME %q, debug/elf says %q", p, info.Soname, soname)
	}
	runpath, _ := ef.DynString(elf.DT_RUNPATH)
	if strings.Join(runpath, "") != info.RunPath {
		tb.Errorf("%s: DT_RUNPATH %q, debug/elf says %q", p, info.RunPath, runpath)
	}
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			_, _ = prog.ReadAt(b, 0)
			if want := strings.TrimRight(string(b), "\x00"); want != info.Interp {
				tb.Errorf("%s: PT_INTERP %q, debug/elf says %q", p, info.Interp, want)
			}
		}
	}
}

// TestHostProgram resolves a real program of the host.
func TestHostProgram(t *testing.T) {
	var program string
	for _, p := range []string{"/bin/ls", "/usr/bin/ls", "/bin/sh", "/usr/bin/env"} {
		if _, err := os.Stat(p); err == nil {
			program = p
			break
		}
	}
	if program == "" {
		t.Skip("no dynamic program on the host")
	}
	res, err := Resolve(program, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Interp == "" {
		t.Skipf("%s is static", program)
	}
	if res.Program != program {
		t.Errorf("Program %q", res.Program)
	}
	haveLibc := false
	for _, l := range res.Libraries {
		haveLibc = haveLibc || l.Soname == "libc.so.6"
	}
	if !haveLibc {
		t.Errorf("no libc.so.6 in %q", libPaths(res))
	}
	checkResult(t, "/", res)
	for _, f := range res.Files {
		if f.Symlink == "" {
			crossCheck(t, f.HostPath)
		}
	}
	if _, err := exec.LookPath("ldd"); err == nil {
		compareWithLdd(t, program, res)
	}
	roundTrip(t, res)
}

// TestHostPrograms compares Resolve with ldd on many programs of the
// host.
func TestHostPrograms(t *testing.T) {
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("no ldd")
	}
	var programs []string
	for _, dir := range []string{"/usr/bin", "/usr/sbin"} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Type().IsRegular() {
				programs = append(programs, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Strings(programs)
	limit := 150
	if testing.Short() {
		limit = 20
	}
	n := 0
	for _, p := range programs {
		if n == limit {
			break
		}
		res, err := Resolve(p, Options{})
		if err != nil || res.Interp == "" {
			continue // scripts, static programs
		}
		n++
		compareWithLdd(t, p, res)
	}
	t.Logf("compared %d programs with ldd", n)
}
