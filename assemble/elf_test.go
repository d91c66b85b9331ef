package assemble

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tinyMain is the program the ELF tests compile.
const tinyMain = "package main\n\nfunc main() { println(\"hi\") }\n"

// goBuildTiny compiles tinyMain statically for linux/arch into dir and
// returns the executable's path.
func goBuildTiny(tb testing.TB, dir, arch string) string {
	tb.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		tb.Skip("no go command:", err)
	}
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(tinyMain), 0o644); err != nil {
		tb.Fatal(err)
	}
	out := filepath.Join(dir, "tiny-"+arch)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=", "GO111MODULE=on")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build (GOARCH=%s): %v\n%s", arch, err, b)
	}
	return out
}

// writeFile writes b to a new file in dir and returns its path.
func writeFile(tb testing.TB, dir, name string, b []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		tb.Fatal(err)
	}
	return p
}

// minimalELF returns a hand-made x86-64 executable: an ELF header and
// program headers (one PT_LOAD, plus a PT_INTERP when interp is set), no
// sections.
func minimalELF(interp bool) []byte {
	nprogs := 1
	if interp {
		nprogs = 2
	}
	h := elf.Header64{
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     0x401000,
		Phoff:     64,
		Ehsize:    64,
		Phentsize: 56,
		Phnum:     uint16(nprogs),
		Shentsize: 64,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, h)
	end := uint64(64 + 56*nprogs)
	if interp {
		_ = binary.Write(&b, binary.LittleEndian, elf.Prog64{
			Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R),
			Off: end, Vaddr: 0x400000 + end, Paddr: 0x400000 + end,
			Filesz: 28, Memsz: 28, Align: 1,
		})
	}
	_ = binary.Write(&b, binary.LittleEndian, elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Off: 0, Vaddr: 0x400000, Paddr: 0x400000,
		Filesz: end + 28, Memsz: end + 28, Align: 0x1000,
	})
	b.WriteString("/lib64/ld-linux-x86-64.so.2\x00")
	return b.Bytes()
}

// patched returns a copy of b with the little-endian uint16 at off set to v.
func patched(b []byte, off int, v uint16) []byte {
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint16(c[off:], v)
	return c
}

func TestCheckStaticELF(t *testing.T) {
	dir := t.TempDir()
	amd64 := goBuildTiny(t, t.TempDir(), "amd64")
	arm64 := goBuildTiny(t, t.TempDir(), "arm64")
	static, err := os.ReadFile(amd64)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		path    string
		wantErr error  // nil: accepted
		wantMsg string // in the error
	}{
		{"static amd64 Go binary", amd64, nil, ""},
		{"hand-made static executable", writeFile(t, dir, "minimal", minimalELF(false)), nil, ""},
		{"arm64 Go binary", arm64, ErrWrongArch, "GOARCH=amd64"},
		{"x86-64 class with i386 machine", writeFile(t, dir, "em386", patched(static, 18, uint16(elf.EM_386))), ErrWrongArch, "is built for i386 (64-bit)"},
		{"hand-made executable with an interpreter", writeFile(t, dir, "interp", minimalELF(true)), ErrDynamicELF, "is dynamically linked"},
		{"relocatable object", writeFile(t, dir, "rel", patched(static, 16, uint16(elf.ET_REL))), ErrNotELF, "not an executable"},
		{"core file", writeFile(t, dir, "core", patched(static, 16, uint16(elf.ET_CORE))), ErrNotELF, "not an executable"},
		{"text file", writeFile(t, dir, "script.sh", []byte("#!/bin/sh\necho hello\n")), ErrNotELF, "script.sh"},
		{"empty file", writeFile(t, dir, "empty", nil), ErrNotELF, "empty"},
		{"ELF magic only", writeFile(t, dir, "magic", []byte("\x7fELF")), ErrNotELF, ""},
		{"first 64 bytes", writeFile(t, dir, "trunc64", static[:64]), ErrNotELF, ""},
		{"first 1000 bytes", writeFile(t, dir, "trunc1000", static[:1000]), ErrNotELF, ""},
		{"missing last byte", writeFile(t, dir, "trunc-1", static[:len(static)-1]), ErrNotELF, ""},
	}
	if _, err := os.Stat("/bin/true"); err == nil {
		cases = append(cases, struct {
			name    string
			path    string
			wantErr error
			wantMsg string
		}{"dynamic /bin/true", "/bin/true", ErrDynamicELF, "is dynamically linked"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStaticELF(tc.path)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("checkStaticELF(%s) = %v, want it accepted", tc.path, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("checkStaticELF(%s) = %v, want an error wrapping %q", tc.path, err, tc.wantErr)
			}
			for _, other := range []error{ErrNotELF, ErrWrongArch, ErrDynamicELF} {
				if other != tc.wantErr && errors.Is(err, other) {
					t.Errorf("checkStaticELF(%s) = %v, which also wraps %q", tc.path, err, other)
				}
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the file %s", err, tc.path)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		err := checkStaticELF(filepath.Join(dir, "nosuch"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("checkStaticELF(nosuch) = %v, want os.ErrNotExist", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		if err := checkStaticELF(dir); err == nil {
			t.Error("checkStaticELF(a directory) = nil, want an error")
		}
	})
}

// TestCheckStaticELFStaticPIE: a static-pie executable (gcc -static-pie,
// Rust's musl target by default) needs no interpreter and runs as is.
func TestCheckStaticELFStaticPIE(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc:", err)
	}
	dir := t.TempDir()
	src := writeFile(t, dir, "m.c", []byte("int main(void) { return 0; }\n"))
	out := filepath.Join(dir, "spie")
	if b, err := exec.Command(gcc, "-static-pie", "-o", out, src).CombinedOutput(); err != nil {
		t.Skipf("gcc -static-pie: %v\n%s", err, b)
	}
	if err := exec.Command(out).Run(); err != nil {
		t.Skipf("the static-pie executable does not run here: %v", err)
	}
	if err := checkStaticELF(out); err != nil {
		t.Errorf("checkStaticELF(static-pie) = %v, want it accepted", err)
	}
}

type panicReader struct{}

func (panicReader) ReadAt([]byte, int64) (int, error) { panic("boom") }

func TestCheckStaticELFReaderRecovers(t *testing.T) {
	err := checkStaticELFReader("bad", panicReader{})
	if !errors.Is(err, ErrNotELF) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("checkStaticELFReader(panicking reader) = %v, want ErrNotELF mentioning the panic", err)
	}
}

func FuzzCheckELF(f *testing.F) {
	static, err := os.ReadFile(goBuildTiny(f, f.TempDir(), "amd64"))
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []int{0, 4, 16, 52, 63, 64, 65, 120, 1000, 4096} {
		f.Add(static[:n])
	}
	f.Add([]byte("#!/bin/sh\necho hello\n"))
	f.Add(minimalELF(false))
	f.Add(minimalELF(true))
	f.Add(patched(static[:1000], 16, uint16(elf.ET_DYN)))
	f.Add(patched(static[:1000], 18, uint16(elf.EM_AARCH64)))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkStaticELFReader("fuzz", bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrNotELF) && !errors.Is(err, ErrWrongArch) && !errors.Is(err, ErrDynamicELF) {
				t.Fatalf("error %q wraps none of ErrNotELF, ErrWrongArch, ErrDynamicELF", err)
			}
			return
		}
		// Accepted: it must really be an x86-64 executable without an interpreter.
		ef, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("accepted, but elf.NewFile fails: %v", err)
		}
		if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 || (ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN) {
			t.Fatalf("accepted a %s %s %s", ef.Class, ef.Machine, ef.Type)
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatal("accepted an executable with PT_INTERP")
			}
		}
	})
}

func TestDefaultName(t *testing.T) {
	cases := []struct{ in, want string }{
		{"github.com/x/My_App", "my_app"},
		{"github.com/nosproject/nos/examples/hello", "hello"},
		{"./examples/httpserver", "httpserver"},
		{"./cmd/web-server", "web-server"},
		{"/tmp/build/hello-arm64", "hello-arm64"},
		{"/usr/local/bin/app.bin", "app.bin"},
		{"HelloWorld", "helloworld"},
		{"My App", "myapp"},
		{"_private", "private"},
		{"-x-", "x"},
		{".hidden", "hidden"},
		{"trailing__", "trailing"},
		{"v2.", "v2"},
		{"héllo", "hllo"},
		{"日本", "app"},
		{"...", "app"},
		{".", "app"},
		{"", "app"},
		{"/", "app"},
		{"___", "app"},
		{"dir/", "dir"},
	}
	for _, tc := range cases {
		if got := defaultName(tc.in); got != tc.want {
			t.Errorf("defaultName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestZipZoneinfo(t *testing.T) {
	if _, err := os.Stat(hostZoneinfo + "/Europe/Paris"); err != nil {
		t.Skip("no host zoneinfo") // nothing to pack: builds then add none either
	}
	b, err := zipZoneinfo(hostZoneinfo)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := zipZoneinfo(hostZoneinfo)
	if !bytes.Equal(b, again) {
		t.Error("two packings differ")
	}
	p := filepath.Join(t.TempDir(), "zoneinfo.zip")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Go reads ZONEINFO once per process: this test must be the first
	// to load a location.
	t.Setenv("ZONEINFO", p)
	for _, name := range []string{"Europe/Paris", "America/New_York", "UTC", "US/Pacific"} {
		if _, err := time.LoadLocation(name); err != nil {
			t.Errorf("LoadLocation(%s) from the zip: %v", name, err)
		}
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "right/") || f.Method != zip.Store {
			t.Fatalf("entry %s (method %d): want no right/ and stored entries", f.Name, f.Method)
		}
	}
	t.Logf("%d zones, %d bytes", len(zr.File), len(b))
}
