package elfdeps

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// elfSpec describes a minimal ELF64 object for mkELF.
type elfSpec struct {
	Machine elf.Machine // default EM_X86_64
	Type    elf.Type    // default ET_DYN
	Entry   uint64
	Base    uint64 // virtual address of file offset 0
	Interp  string
	Needed  []string
	Soname  string
	RPath   string
	RunPath string
	Flags1  uint64
	Static  bool // no PT_DYNAMIC
}

// mkELF returns a small but well-formed little-endian ELF64 file: one
// PT_LOAD covering the file, PT_INTERP when Interp is set, PT_DYNAMIC
// with the requested entries and a .dynstr string table, and section
// headers (.interp, .dynstr, .dynamic, .shstrtab) so that debug/elf can
// read it too.
func mkELF(s elfSpec) []byte {
	if s.Machine == 0 {
		s.Machine = elf.EM_X86_64
	}
	if s.Type == 0 {
		s.Type = elf.ET_DYN
	}
	le := binary.LittleEndian
	align := func(b *bytes.Buffer, n int) {
		for b.Len()%n != 0 {
			b.WriteByte(0)
		}
	}

	// Strings.
	var dynstr bytes.Buffer
	dynstr.WriteByte(0)
	str := func(v string) uint64 {
		off := uint64(dynstr.Len())
		dynstr.WriteString(v)
		dynstr.WriteByte(0)
		return off
	}
	type dyn struct {
		tag elf.DynTag
		val uint64
	}
	var dyns []dyn
	for _, n := range s.Needed {
		dyns = append(dyns, dyn{elf.DT_NEEDED, str(n)})
	}
	if s.Soname != "" {
		dyns = append(dyns, dyn{elf.DT_SONAME, str(s.Soname)})
	}
	if s.RPath != "" {
		dyns = append(dyns, dyn{elf.DT_RPATH, str(s.RPath)})
	}
	if s.RunPath != "" {
		dyns = append(dyns, dyn{elf.DT_RUNPATH, str(s.RunPath)})
	}
	if s.Flags1 != 0 {
		dyns = append(dyns, dyn{elf.DT_FLAGS_1, s.Flags1})
	}

	nph := 1
	if s.Interp != "" {
		nph++
	}
	if !s.Static {
		nph++
	}
	var b bytes.Buffer
	b.Write(make([]byte, ehdr64Size+phdr64Size*nph))
	interpOff := b.Len()
	if s.Interp != "" {
		b.WriteString(s.Interp)
		b.WriteByte(0)
	}
	interpLen := b.Len() - interpOff
	dynstrOff := b.Len()
	b.Write(dynstr.Bytes())
	align(&b, 8)
	dynOff := b.Len()
	if !s.Static {
		dyns = append(dyns,
			dyn{elf.DT_STRTAB, s.Base + uint64(dynstrOff)},
			dyn{elf.DT_STRSZ, uint64(dynstr.Len())},
			dyn{elf.DT_NULL, 0})
		for _, d := range dyns {
			_ = binary.Write(&b, le, elf.Dyn64{Tag: int64(d.tag), Val: d.val})
		}
	}
	dynLen := b.Len() - dynOff
	loadEnd := b.Len()

	// Section headers.
	var shstr bytes.Buffer
	shstr.WriteByte(0)
	name := func(v string) uint32 {
		off := uint32(shstr.Len())
		shstr.WriteString(v)
		shstr.WriteByte(0)
		return off
	}
	sects := []elf.Section64{{}}
	if s.Interp != "" {
		sects = append(sects, elf.Section64{Name: name(".interp"), Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC),
			Addr: s.Base + uint64(interpOff), Off: uint64(interpOff), Size: uint64(interpLen), Addralign: 1})
	}
	dynstrIdx := len(sects)
	sects = append(sects, elf.Section64{Name: name(".dynstr"), Type: uint32(elf.SHT_STRTAB), Flags: uint64(elf.SHF_ALLOC),
		Addr: s.Base + uint64(dynstrOff), Off: uint64(dynstrOff), Size: uint64(dynstr.Len()), Addralign: 1})
	if !s.Static {
		sects = append(sects, elf.Section64{Name: name(".dynamic"), Type: uint32(elf.SHT_DYNAMIC), Flags: uint64(elf.SHF_ALLOC | elf.SHF_WRITE),
			Addr: s.Base + uint64(dynOff), Off: uint64(dynOff), Size: uint64(dynLen), Link: uint32(dynstrIdx), Addralign: 8, Entsize: dyn64Size})
	}
	shstrName := name(".shstrtab")
	shstrOff := b.Len()
	b.Write(shstr.Bytes())
	sects = append(sects, elf.Section64{Name: shstrName, Type: uint32(elf.SHT_STRTAB), Off: uint64(shstrOff), Size: uint64(shstr.Len()), Addralign: 1})
	align(&b, 8)
	shOff := b.Len()
	for _, sh := range sects {
		_ = binary.Write(&b, le, sh)
	}

	// Headers.
	out := b.Bytes()
	h := elf.Header64{
		Type: uint16(s.Type), Machine: uint16(s.Machine), Version: uint32(elf.EV_CURRENT),
		Entry: s.Entry, Phoff: ehdr64Size, Shoff: uint64(shOff), Ehsize: ehdr64Size,
		Phentsize: phdr64Size, Phnum: uint16(nph), Shentsize: 64, Shnum: uint16(len(sects)), Shstrndx: uint16(len(sects) - 1),
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var hb bytes.Buffer
	_ = binary.Write(&hb, le, h)
	progs := []elf.Prog64{{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: 0, Vaddr: s.Base, Paddr: s.Base,
		Filesz: uint64(loadEnd), Memsz: uint64(loadEnd), Align: 0x1000}}
	if s.Interp != "" {
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R), Off: uint64(interpOff),
			Vaddr: s.Base + uint64(interpOff), Paddr: s.Base + uint64(interpOff), Filesz: uint64(interpLen), Memsz: uint64(interpLen), Align: 1})
	}
	if !s.Static {
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_DYNAMIC), Flags: uint32(elf.PF_R | elf.PF_W), Off: uint64(dynOff),
			Vaddr: s.Base + uint64(dynOff), Paddr: s.Base + uint64(dynOff), Filesz: uint64(dynLen), Memsz: uint64(dynLen), Align: 8})
	}
	for _, p := range progs {
		_ = binary.Write(&hb, le, p)
	}
	copy(out, hb.Bytes())
	return out
}

// mkELF32 returns the 52-byte header of a 32-bit ELF for machine m.
func mkELF32(m elf.Machine) []byte {
	h := elf.Header32{Type: uint16(elf.ET_DYN), Machine: uint16(m), Version: uint32(elf.EV_CURRENT), Ehsize: 52}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, h)
	return b.Bytes()
}

// Common objects of a fake Debian tree.
const (
	testInterp = "/lib64/ld-linux-x86-64.so.2"
	multiarch  = "/usr/lib/x86_64-linux-gnu"
)

// prog returns a dynamic x86_64 program (PIE) needing the given libraries.
func prog(needed ...string) elfSpec {
	return elfSpec{Type: elf.ET_DYN, Entry: 0x1040, Interp: testInterp, Needed: needed}
}

// lib returns a shared library with the given soname and needs.
func lib(soname string, needed ...string) elfSpec {
	return elfSpec{Soname: soname, Needed: needed}
}

// fakeRoot builds a directory tree standing for a host's "/".
type fakeRoot struct {
	tb  testing.TB
	dir string
}

func newFakeRoot(tb testing.TB) *fakeRoot {
	tb.Helper()
	return &fakeRoot{tb: tb, dir: tb.TempDir()}
}

func (f *fakeRoot) host(p string) string { return filepath.Join(f.dir, p) }

func (f *fakeRoot) mkdir(p string) {
	f.tb.Helper()
	if err := os.MkdirAll(f.host(p), 0o755); err != nil {
		f.tb.Fatal(err)
	}
}

func (f *fakeRoot) write(p string, b []byte, mode fs.FileMode) {
	f.tb.Helper()
	f.mkdir(path.Dir(p))
	if err := os.WriteFile(f.host(p), b, mode); err != nil {
		f.tb.Fatal(err)
	}
	if err := os.Chmod(f.host(p), mode); err != nil {
		f.tb.Fatal(err)
	}
}

func (f *fakeRoot) elf(p string, s elfSpec) {
	f.tb.Helper()
	mode := fs.FileMode(0o644)
	if s.Entry != 0 || s.Interp != "" {
		mode = 0o755
	}
	f.write(p, mkELF(s), mode)
}

func (f *fakeRoot) symlink(p, target string) {
	f.tb.Helper()
	f.mkdir(path.Dir(p))
	if err := os.Symlink(target, f.host(p)); err != nil {
		f.tb.Fatal(err)
	}
}

func (f *fakeRoot) copyHost(p, hostPath string) {
	f.tb.Helper()
	b, err := os.ReadFile(hostPath)
	if err != nil {
		f.tb.Skip("host file unavailable:", err)
	}
	fi, err := os.Stat(hostPath)
	if err != nil {
		f.tb.Fatal(err)
	}
	f.write(p, b, fi.Mode().Perm())
}

// debian lays out a Debian 12 style merged-/usr tree with a synthetic
// ld.so and libc.
func (f *fakeRoot) debian() {
	f.tb.Helper()
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/lib64", "etc", "opt"} {
		f.mkdir(d)
	}
	for _, l := range [][2]string{{"/bin", "usr/bin"}, {"/sbin", "usr/sbin"}, {"/lib", "usr/lib"}, {"/lib64", "usr/lib64"}} {
		f.symlink(l[0], l[1])
	}
	f.elf(multiarch+"/ld-linux-x86-64.so.2", elfSpec{Soname: "ld-linux-x86-64.so.2", Entry: 0x1c000})
	f.symlink("/usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	f.elf(multiarch+"/libc.so.6", elfSpec{Soname: "libc.so.6", Needed: []string{"ld-linux-x86-64.so.2"}, Interp: testInterp, Entry: 0x27000})
}

// debianFiles are the Files every program of the debian tree gets.
var debianFiles = []string{
	"/lib -> usr/lib",
	"/lib64 -> usr/lib64",
	multiarch + "/ld-linux-x86-64.so.2",
	multiarch + "/libc.so.6",
	"/usr/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
}

// resolveIn runs Resolve in the fake root.
func (f *fakeRoot) resolve(program string, opts Options) (*Result, error) {
	opts.Root = f.dir
	return Resolve(program, opts)
}

// mustResolve resolves and checks the invariants of the result.
func (f *fakeRoot) mustResolve(program string, opts Options) *Result {
	f.tb.Helper()
	res, err := f.resolve(program, opts)
	if err != nil {
		f.tb.Fatalf("Resolve(%s): %v", program, err)
	}
	checkResult(f.tb, f.dir, res)
	return res
}

// fileList renders Files as "guest" for regular files and
// "guest -> target" for symbolic links.
func fileList(res *Result) []string {
	var out []string
	for _, f := range res.Files {
		if f.Symlink != "" {
			out = append(out, f.GuestPath+" -> "+f.Symlink)
		} else {
			out = append(out, f.GuestPath)
		}
	}
	return out
}

// wantFiles compares the Files of res with want (unordered; sorted here).
func wantFiles(tb testing.TB, res *Result, want ...string) {
	tb.Helper()
	want = append([]string(nil), want...)
	sort.Strings(want)
	got := fileList(res)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		tb.Errorf("Files:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// libPaths lists the Path of each library.
func libPaths(res *Result) []string {
	var out []string
	for _, l := range res.Libraries {
		out = append(out, l.Path)
	}
	return out
}

// libReals lists the Real of each library.
func libReals(res *Result) []string {
	var out []string
	for _, l := range res.Libraries {
		out = append(out, l.Real)
	}
	return out
}

// checkResult checks what every Result must satisfy (root is the
// fake root, or "/" for the host): Files sorted and
// unique; no File has a symbolic link File as an ancestor; regular files
// have a HostPath that is a regular file under root with no symbolic
// link in it; the tree built from Files resolves the program, the
// interpreter and every library path to the files found.
func checkResult(tb testing.TB, root string, res *Result) {
	tb.Helper()
	links := map[string]bool{}
	for i, f := range res.Files {
		if i > 0 && res.Files[i-1].GuestPath >= f.GuestPath {
			tb.Errorf("Files not sorted or duplicated at %s", f.GuestPath)
		}
		if !path.IsAbs(f.GuestPath) || path.Clean(f.GuestPath) != f.GuestPath {
			tb.Errorf("GuestPath %q not clean and absolute", f.GuestPath)
		}
		if f.Symlink != "" {
			links[f.GuestPath] = true
			if f.Mode != fs.ModeSymlink|0o777 || f.HostPath != "" {
				tb.Errorf("symlink %s: mode %v, host path %q", f.GuestPath, f.Mode, f.HostPath)
			}
			continue
		}
		if f.Mode&^fs.ModePerm != 0 {
			tb.Errorf("%s: mode %v", f.GuestPath, f.Mode)
		}
		if f.HostPath != filepath.Join(root, f.GuestPath) {
			tb.Errorf("%s: host path %s not under root %s", f.GuestPath, f.HostPath, root)
		}
		fi, err := os.Lstat(f.HostPath)
		if err != nil || !fi.Mode().IsRegular() {
			tb.Errorf("%s: host path %s is not a regular file (%v)", f.GuestPath, f.HostPath, err)
		}
		evRoot, _ := filepath.EvalSymlinks(root)
		if ev, err := filepath.EvalSymlinks(f.HostPath); err != nil || ev != filepath.Join(evRoot, f.GuestPath) {
			tb.Errorf("%s: host path %s has symbolic links (%s, %v)", f.GuestPath, f.HostPath, ev, err)
		}
	}
	for _, f := range res.Files {
		for d := path.Dir(f.GuestPath); d != "/"; d = path.Dir(d) {
			if links[d] {
				tb.Errorf("%s has the symbolic link %s as an ancestor", f.GuestPath, d)
			}
		}
	}
	dirs := res.Dirs()
	if !sort.StringsAreSorted(dirs) {
		tb.Errorf("Dirs not sorted: %q", dirs)
	}
	for _, d := range dirs {
		if links[d] {
			tb.Errorf("Dirs has the symbolic link %s", d)
		}
	}
	if tb.Failed() {
		return
	}

	// Build the guest tree and check that the paths ld.so and the kernel
	// use lead to the files found.
	guest := materialize(tb, res)
	gt := &tree{root: guest}
	expect := func(p, real string) {
		tb.Helper()
		w, err := gt.walk(p)
		if err != nil {
			tb.Errorf("in the guest tree, %s: %v", p, err)
			return
		}
		if w.Real != real {
			tb.Errorf("in the guest tree, %s leads to %s, want %s", p, w.Real, real)
		}
	}
	hostReal := func(p string) string {
		tb.Helper()
		ht := &tree{root: root}
		if root == "/" {
			ht.root = ""
		}
		w, err := ht.walk(p)
		if err != nil {
			tb.Fatalf("host %s: %v", p, err)
		}
		return w.Real
	}
	expect(res.Program, hostReal(res.Program))
	if res.Interp != "" {
		expect(res.Interp, hostReal(res.Interp))
	}
	for _, l := range res.Libraries {
		expect(l.Path, l.Real)
	}
}

// materialize creates the guest tree described by res in a new
// directory and returns it, as a caller would: Dirs as plain
// directories, then the symbolic links and copies of the regular files
// with their modes.
func materialize(tb testing.TB, res *Result) string {
	tb.Helper()
	dir := tb.TempDir()
	for _, d := range res.Dirs() {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for _, f := range res.Files {
		p := filepath.Join(dir, f.GuestPath)
		if f.Symlink != "" {
			if err := os.Symlink(f.Symlink, p); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		src, err := os.Open(f.HostPath)
		if err != nil {
			tb.Fatal(err)
		}
		dst, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, f.Mode)
		if err != nil {
			tb.Fatal(err)
		}
		_, err = io.Copy(dst, src)
		src.Close()
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.Chmod(p, f.Mode); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// roundTrip resolves the program again inside the tree built from res
// (with no ld.so.conf, and LibraryDirs standing for LD_LIBRARY_PATH) and
// checks that the same files come out: the guest is self-sufficient.
func roundTrip(tb testing.TB, res *Result) {
	tb.Helper()
	guest := materialize(tb, res)
	again, err := Resolve(res.Program, Options{Root: guest, ExtraLibraryDirs: res.LibraryDirs})
	if err != nil {
		tb.Fatalf("resolving again in the guest tree: %v", err)
	}
	have := map[string]bool{}
	for _, f := range fileList(res) {
		have[f] = true
	}
	for _, f := range fileList(again) {
		if !have[f] {
			tb.Errorf("in the guest tree, resolution needs %s, which is not in the result", f)
		}
	}
	// The paths may differ (the guest has no ld.so.conf), the files not.
	if a, b := strings.Join(libReals(res), "\n"), strings.Join(libReals(again), "\n"); a != b {
		tb.Errorf("guest tree loads other libraries:\n%s\nwant\n%s", b, a)
	}
	if again.Interp != res.Interp {
		tb.Errorf("guest interp %q, want %q", again.Interp, res.Interp)
	}
}
