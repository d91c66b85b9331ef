package initramfs

import (
	"bytes"
	"compress/gzip"
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"
	"github.com/google/go-cmp/cmp"
	"github.com/pierrec/lz4/v4"
)

// hostTree makes a small host directory tree to archive and returns its
// path. It holds a subdirectory, files with assorted permissions, a relative
// and an absolute symbolic link and a named pipe (which must be skipped).
func hostTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "Europe"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "UTC"), []byte("TZif-utc"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "Europe", "Paris"), []byte("TZif-paris"), 0o640))
	must(os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o700))
	must(os.Symlink("UTC", filepath.Join(dir, "Zulu")))
	must(os.Symlink("/usr/share/zoneinfo/Europe/Paris", filepath.Join(dir, "Europe", "Monaco")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	return dir
}

// buildForward and buildReverse add the same entries in different orders,
// with different but equivalent raw modes.
func buildForward(t *testing.T, tree, hostFile string) *Archive {
	t.Helper()
	var a Archive
	steps := []error{
		a.AddFile("/init", 0o755, []byte("\x7fELF init")),
		a.AddDir("/tmp", 0o1777),
		a.AddFile("/etc/hostname", 0o600, []byte("nos\n")),
		a.AddFile("/etc/empty", 0o644, nil),
		a.AddSymlink("/bin/sh", "../init"),
		a.AddHostFile("/etc/ssl/certs/ca-certificates.crt", hostFile, 0),
		a.AddHostTree("/usr/share/zoneinfo", tree),
		a.AddFile("/etc-x", 0o644, []byte("sorts between /etc and /etc/...")),
		a.AddDir("/etc", 0),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("forward step %d: %v", i, err)
		}
	}
	return &a
}

func buildReverse(t *testing.T, tree, hostFile string) *Archive {
	t.Helper()
	var a Archive
	steps := []error{
		a.AddDir("/etc", fs.ModeDir|0o700),
		a.AddFile("/etc-x", 0o600, []byte("sorts between /etc and /etc/...")),
		a.AddHostTree("/usr/share/zoneinfo/", tree+"/"),
		a.AddHostFile("/etc/ssl/certs/ca-certificates.crt", hostFile, 0o666),
		a.AddSymlink("/bin/sh", "../init"),
		a.AddFile("/etc/empty", 0o600, []byte{}),
		a.AddFile("/etc/hostname", 0o644, []byte("nos\n")),
		a.AddDir("/tmp/", 0),
		a.AddDir("/usr/share", 0),
		a.AddFile("//init", 0o100, []byte("\x7fELF init")),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("reverse step %d: %v", i, err)
		}
	}
	return &a
}

func hostFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(p, bytes.Repeat([]byte("-----CERT-----\n"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func write(t *testing.T, a *Archive) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := a.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

// wantList is the expected content of the test archive in output order.
var wantList = []struct {
	name, mode, target, data string
}{
	{"bin", "drwxr-xr-x", "", ""},
	{"bin/sh", "lrwxrwxrwx", "../init", ""},
	{"etc", "drwxr-xr-x", "", ""},
	{"etc-x", "-rw-r--r--", "", "sorts between /etc and /etc/..."},
	{"etc/empty", "-rw-r--r--", "", ""},
	{"etc/hostname", "-rw-r--r--", "", "nos\n"},
	{"etc/ssl", "drwxr-xr-x", "", ""},
	{"etc/ssl/certs", "drwxr-xr-x", "", ""},
	{"etc/ssl/certs/ca-certificates.crt", "-rw-r--r--", "", strings.Repeat("-----CERT-----\n", 1000)},
	{"init", "-rwxr-xr-x", "", "\x7fELF init"},
	{"tmp", "drwxr-xr-x", "", ""},
	{"usr", "drwxr-xr-x", "", ""},
	{"usr/share", "drwxr-xr-x", "", ""},
	{"usr/share/zoneinfo", "drwxr-xr-x", "", ""},
	{"usr/share/zoneinfo/Europe", "drwxr-xr-x", "", ""},
	{"usr/share/zoneinfo/Europe/Monaco", "lrwxrwxrwx", "/usr/share/zoneinfo/Europe/Paris", ""},
	{"usr/share/zoneinfo/Europe/Paris", "-rw-r--r--", "", "TZif-paris"},
	{"usr/share/zoneinfo/UTC", "-rw-r--r--", "", "TZif-utc"},
	{"usr/share/zoneinfo/Zulu", "lrwxrwxrwx", "UTC", ""},
	{"usr/share/zoneinfo/tool", "-rwxr-xr-x", "", "#!/bin/sh\n"},
}

func TestReproducible(t *testing.T) {
	tree, hf := hostTree(t), hostFile(t)
	fwd := buildForward(t, tree, hf)
	first := write(t, fwd)
	if again := write(t, fwd); !bytes.Equal(first, again) {
		t.Fatal("writing the same archive twice gave different bytes")
	}

	// Host metadata that must not leak into the archive.
	later := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, p := range []string{hf, filepath.Join(tree, "UTC"), filepath.Join(tree, "Europe", "Paris")} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(tree, "UTC"), 0o604); err != nil {
		t.Fatal(err)
	}

	rev := write(t, buildReverse(t, tree, hf))
	if !bytes.Equal(first, rev) {
		t.Fatalf("archives built in different orders differ (%d vs %d bytes)", len(first), len(rev))
	}
	if diff := cmp.Diff(fwd.Entries(), buildReverse(t, tree, hf).Entries()); diff != "" {
		t.Errorf("Entries differ (-forward +reverse):\n%s", diff)
	}
}

// unpack reads a written archive back uncompressed.
func unpack(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestLZ4Stream(t *testing.T) {
	var a Archive
	if err := a.AddFile("/init", 0o755, []byte("x")); err != nil {
		t.Fatal(err)
	}
	b := write(t, &a)
	if !bytes.HasPrefix(b, []byte{0x02, 0x21, 0x4c, 0x18}) {
		t.Fatalf("not an LZ4 legacy stream: % x", b[:min(len(b), 10)])
	}
	raw := unpack(t, b)
	if !bytes.HasPrefix(raw, []byte("070701")) {
		t.Errorf("cpio magic = %q, want newc 070701", raw[:6])
	}
	if !bytes.Contains(raw, []byte("TRAILER!!!\x00")) {
		t.Error("no TRAILER!!! record")
	}
	if len(raw)%4 != 0 {
		t.Errorf("cpio length %d is not a multiple of 4", len(raw))
	}
}

// TestLZ4Chunks: a large archive is written in chunks that each unpack
// into LZ4ChunkSize bytes or fewer, the buffer nos's kernels unpack
// through, and reads back whole, compressible or not.
func TestLZ4Chunks(t *testing.T) {
	random := make([]byte, 700<<10)
	for i := range random {
		random[i] = byte(i*7919>>3) ^ byte(i>>11) ^ byte(i*31)
	}
	if _, err := cryptorand.Read(random[:300<<10]); err != nil {
		t.Fatal(err)
	}
	var a Archive
	if err := a.AddFile("/random", 0o644, random); err != nil {
		t.Fatal(err)
	}
	if err := a.AddFile("/zeros", 0o644, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	b := write(t, &a)
	var total, chunks int
	buf := make([]byte, LZ4ChunkSize)
	for rest := b[4:]; len(rest) > 0; chunks++ {
		if len(rest) < 4 {
			t.Fatalf("chunk %d: %d bytes left, want a 4-byte length", chunks, len(rest))
		}
		n := int(binary.LittleEndian.Uint32(rest))
		if n > len(rest)-4 {
			t.Fatalf("chunk %d: length %d, only %d bytes left", chunks, n, len(rest)-4)
		}
		got, err := lz4.UncompressBlock(rest[4:4+n], buf)
		if err != nil {
			t.Fatalf("chunk %d does not unpack into %d bytes: %v", chunks, LZ4ChunkSize, err)
		}
		total += got
		rest = rest[4+n:]
	}
	raw := unpack(t, b)
	if total != len(raw) || chunks < 7 {
		t.Errorf("%d chunks holding %d bytes, the stream reads as %d bytes", chunks, total, len(raw))
	}
	r := cpio.NewReader(bytes.NewReader(raw))
	for _, want := range [][]byte{random, make([]byte, 1<<20)} {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(r); !bytes.Equal(got, want) {
			t.Errorf("a file of %d bytes reads back as %d different bytes", len(want), len(got))
		}
	}
}

func TestNewReaderGzipAndJunk(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("070701old"))
	zw.Close()
	zr, err := NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); string(got) != "070701old" {
		t.Errorf("gzip archive reads %q", got)
	}
	if _, err := NewReader(strings.NewReader("070701 uncompressed")); err == nil {
		t.Error("NewReader took an uncompressed archive, want an error")
	}
}

// TestGoReader reads the archive back with the cpio library's reader and
// checks every header field that matters for reproducibility.
func TestGoReader(t *testing.T) {
	b := write(t, buildForward(t, hostTree(t), hostFile(t)))
	zr, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(zr)
	for i := 0; ; i++ {
		hdr, err := r.Next()
		if err == io.EOF {
			if i != len(wantList) {
				t.Errorf("got %d entries, want %d", i, len(wantList))
			}
			break
		}
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if i >= len(wantList) {
			t.Fatalf("unexpected entry %q", hdr.Name)
		}
		want := wantList[i]
		if hdr.Name != want.name {
			t.Errorf("entry %d: name %q, want %q", i, hdr.Name, want.name)
		}
		if hdr.Inode != int64(i)+1 {
			t.Errorf("%s: inode %d, want %d", hdr.Name, hdr.Inode, i+1)
		}
		if hdr.Uid != 0 || hdr.Guid != 0 || hdr.ModTime.Unix() != 0 || hdr.DeviceID != 0 || hdr.Checksum != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d dev %d check %d, want all 0",
				hdr.Name, hdr.Uid, hdr.Guid, hdr.ModTime.Unix(), hdr.DeviceID, hdr.Checksum)
		}
		wantLinks := 1
		if want.mode[0] == 'd' {
			wantLinks = 2
		}
		if hdr.Links != wantLinks {
			t.Errorf("%s: nlink %d, want %d", hdr.Name, hdr.Links, wantLinks)
		}
		if got := modeString(hdr.Mode); got != want.mode {
			t.Errorf("%s: mode %s (%o), want %s", hdr.Name, got, hdr.Mode, want.mode)
		}
		if hdr.Linkname != want.target {
			t.Errorf("%s: link target %q, want %q", hdr.Name, hdr.Linkname, want.target)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != want.data {
			t.Errorf("%s: data %q, want %q", hdr.Name, trunc(data), trunc([]byte(want.data)))
		}
	}
}

// modeString renders a cpio mode as ls does, for the types used here.
func modeString(m cpio.FileMode) string {
	var b strings.Builder
	switch m & cpio.ModeType {
	case cpio.TypeDir:
		b.WriteByte('d')
	case cpio.TypeSymlink:
		b.WriteByte('l')
	case cpio.TypeReg:
		b.WriteByte('-')
	default:
		b.WriteByte('?')
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			b.WriteByte(rwx[i])
		} else {
			b.WriteByte('-')
		}
	}
	if m&^(cpio.ModeType|cpio.ModePerm) != 0 {
		b.WriteString("+special")
	}
	return b.String()
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// writeArchiveFile writes the test archive to a file and returns its path.
func writeArchiveFile(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio tool not installed")
	}
	if _, err := exec.LookPath("lz4"); err != nil {
		t.Fatal("the lz4 tool is needed: apt-get install lz4 (.ci/run installs it)")
	}
	p := filepath.Join(t.TempDir(), "initramfs.cpio.lz4")
	if err := os.WriteFile(p, write(t, buildForward(t, hostTree(t), hostFile(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runCpio runs "lz4 -dc archive | cpio args..." in dir.
func runCpio(t *testing.T, archive, dir string, args ...string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lz := exec.Command("lz4", "-dc")
	lz.Stdin = f
	out, err := lz.Output()
	if err != nil {
		t.Fatalf("lz4 -dc: %v", err)
	}
	cmd := exec.Command("cpio", args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cpio %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

func TestCpioToolList(t *testing.T) {
	archive := writeArchiveFile(t)

	names := strings.Split(strings.TrimSuffix(runCpio(t, archive, t.TempDir(), "-t"), "\n"), "\n")
	var want []string
	for _, w := range wantList {
		want = append(want, w.name)
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("cpio -t (-want +got):\n%s", diff)
	}

	// cpio -tv prints: mode nlink owner group size month day year name [-> target]
	lines := strings.Split(strings.TrimSuffix(runCpio(t, archive, t.TempDir(), "-tv"), "\n"), "\n")
	if len(lines) != len(wantList) {
		t.Fatalf("cpio -tv printed %d lines, want %d:\n%s", len(lines), len(wantList), strings.Join(lines, "\n"))
	}
	for i, line := range lines {
		w := wantList[i]
		f := strings.Fields(line)
		if len(f) < 9 {
			t.Errorf("cpio -tv line %q: too few fields", line)
			continue
		}
		if f[0] != w.mode {
			t.Errorf("%s: cpio -tv mode %s, want %s", w.name, f[0], w.mode)
		}
		if f[2] != "root" || f[3] != "root" {
			t.Errorf("%s: owner %s:%s, want root:root", w.name, f[2], f[3])
		}
		if f[7] != "1970" {
			t.Errorf("%s: year %s, want 1970 (mtime 0)", w.name, f[7])
		}
		name := strings.Join(f[8:], " ")
		wantName := w.name
		if w.target != "" {
			wantName += " -> " + w.target
		}
		if name != wantName {
			t.Errorf("cpio -tv name %q, want %q", name, wantName)
		}
	}
}

func TestCpioToolExtract(t *testing.T) {
	archive := writeArchiveFile(t)
	dir := t.TempDir()
	runCpio(t, archive, dir, "-idm", "--quiet")

	var got []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got = append(got, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, w := range wantList {
		want = append(want, w.name)
	}
	slices.Sort(got) // WalkDir orders by name within each directory
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("extracted tree (-want +got):\n%s", diff)
	}

	for _, w := range wantList {
		p := filepath.Join(dir, w.name)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		switch w.mode[0] {
		case 'l':
			if fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("%s: extracted as %v, want a symlink", w.name, fi.Mode())
				continue
			}
			target, err := os.Readlink(p)
			if err != nil || target != w.target {
				t.Errorf("%s: target %q (%v), want %q", w.name, target, err, w.target)
			}
		case 'd':
			if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: extracted as %v, want drwxr-xr-x", w.name, fi.Mode())
			}
		default:
			if got := fi.Mode().String(); got != w.mode {
				t.Errorf("%s: extracted mode %s, want %s", w.name, got, w.mode)
			}
			if !fi.ModTime().Equal(time.Unix(0, 0)) {
				t.Errorf("%s: mtime %v, want the epoch", w.name, fi.ModTime())
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Error(err)
			} else if string(data) != w.data {
				t.Errorf("%s: content %q, want %q", w.name, trunc(data), trunc([]byte(w.data)))
			}
		}
	}
}

func TestPathCleaning(t *testing.T) {
	var a Archive
	for _, p := range []string{"/a//b/./c/", "/x/y/../z", "/./init"} {
		if err := a.AddFile(p, 0o644, nil); err != nil {
			t.Fatalf("AddFile(%q): %v", p, err)
		}
	}
	if err := a.AddDir("/", 0); err != nil {
		t.Fatalf("AddDir(/): %v", err)
	}
	var got []string
	for _, e := range a.Entries() {
		got = append(got, e.Path)
	}
	want := []string{"/a", "/a/b", "/a/b/c", "/init", "/x", "/x/z"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

func TestErrors(t *testing.T) {
	tree := hostTree(t)
	base := func(t *testing.T) *Archive {
		var a Archive
		for _, err := range []error{
			a.AddFile("/etc/passwd", 0o644, []byte("root")),
			a.AddSymlink("/lib", "usr/lib"),
			a.AddDir("/usr/share/zoneinfo/Europe", 0),
			a.AddFile("/opt/tool", 0o755, nil),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		return &a
	}
	tests := []struct {
		name string
		add  func(a *Archive) error
	}{
		{"relative", func(a *Archive) error { return a.AddFile("init", 0o755, nil) }},
		{"dot relative", func(a *Archive) error { return a.AddDir("./etc", 0) }},
		{"empty", func(a *Archive) error { return a.AddFile("", 0o644, nil) }},
		{"dotdot at root", func(a *Archive) error { return a.AddFile("/../etc/x", 0o644, nil) }},
		{"dotdot escape", func(a *Archive) error { return a.AddSymlink("/a/../../b", "x") }},
		{"dotdot tree", func(a *Archive) error { return a.AddHostTree("/../zoneinfo", tree) }},
		{"NUL", func(a *Archive) error { return a.AddFile("/a\x00b", 0o644, nil) }},
		{"too long", func(a *Archive) error { return a.AddFile("/"+strings.Repeat("a", 4096), 0o644, nil) }},
		{"duplicate file", func(a *Archive) error { return a.AddFile("/etc/passwd", 0o644, []byte("root")) }},
		{"file over dir", func(a *Archive) error { return a.AddFile("/etc", 0o644, nil) }},
		{"dir over file", func(a *Archive) error { return a.AddDir("/etc/passwd", 0) }},
		{"dir over symlink", func(a *Archive) error { return a.AddDir("/lib", 0) }},
		{"symlink over dir", func(a *Archive) error { return a.AddSymlink("/usr", "x") }},
		{"duplicate symlink", func(a *Archive) error { return a.AddSymlink("/lib", "usr/lib") }},
		{"parent is file", func(a *Archive) error { return a.AddFile("/etc/passwd/x/y", 0o644, nil) }},
		{"parent is symlink", func(a *Archive) error { return a.AddFile("/lib/libc.so", 0o644, nil) }},
		{"root as file", func(a *Archive) error { return a.AddFile("/", 0o644, nil) }},
		{"empty target", func(a *Archive) error { return a.AddSymlink("/bin/sh", "") }},
		{"file with dir mode", func(a *Archive) error { return a.AddFile("/f", fs.ModeDir|0o755, nil) }},
		{"dir with symlink mode", func(a *Archive) error { return a.AddDir("/d", fs.ModeSymlink) }},
		{"device", func(a *Archive) error { return a.Add(Entry{Path: "/dev/null", Mode: fs.ModeDevice | 0o666}) }},
		{"data and source", func(a *Archive) error {
			return a.Add(Entry{Path: "/f", Data: []byte("x"), Source: "/etc/hostname"})
		}},
		{"dir with data", func(a *Archive) error { return a.Add(Entry{Path: "/d", Mode: fs.ModeDir, Data: []byte("x")}) }},
		{"missing host file", func(a *Archive) error { return a.AddHostFile("/f", filepath.Join(tree, "nope"), 0) }},
		{"host dir as file", func(a *Archive) error { return a.AddHostFile("/f", tree, 0) }},
		{"host fifo as file", func(a *Archive) error { return a.AddHostFile("/f", filepath.Join(tree, "fifo"), 0) }},
		{"tree of a file", func(a *Archive) error { return a.AddHostTree("/z", filepath.Join(tree, "UTC")) }},
		{"missing tree", func(a *Archive) error { return a.AddHostTree("/z", filepath.Join(tree, "nope")) }},
		// The tree's last file clashes with /opt/tool: nothing of the tree
		// may be left behind.
		{"tree clashes", func(a *Archive) error { return a.AddHostTree("/opt", tree) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := base(t)
			before := a.Entries()
			err := tt.add(a)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "initramfs: ") {
				t.Errorf("error %q lacks context", err)
			}
			if diff := cmp.Diff(before, a.Entries()); diff != "" {
				t.Errorf("archive changed by a failed add (-before +after):\n%s", diff)
			}
		})
	}
}

func TestDuplicateDirs(t *testing.T) {
	var a Archive
	for _, err := range []error{
		a.AddFile("/etc/ssl/certs/ca.crt", 0o644, nil),
		a.AddDir("/etc/ssl", 0o700),
		a.AddDir("/etc/ssl/", fs.ModeDir|0o755),
		a.AddDir("/etc", 0),
		a.AddHostTree("/etc/ssl", t.TempDir()),
	} {
		if err != nil {
			t.Fatalf("adding an existing directory: %v", err)
		}
	}
	if n := len(a.Entries()); n != 4 {
		t.Errorf("%d entries, want 4", n)
	}
}

func TestHostFileChangedBeforeWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	var a Archive
	if err := a.AddHostFile("/f", p, 0); err != nil {
		t.Fatal(err)
	}
	if e := a.Entries()[0]; e.Mode != 0o755 {
		t.Errorf("mode taken from host file = %v, want 0755", e.Mode)
	}
	// Content is read at write time.
	if err := os.WriteFile(p, []byte("changed"), 0o755); err != nil {
		t.Fatal(err)
	}
	zr, err := NewReader(bytes.NewReader(write(t, &a)))
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(zr)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if data, _ := io.ReadAll(r); string(data) != "changed" {
		t.Errorf("content %q, want %q", data, "changed")
	}

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	_, err = a.WriteTo(io.Discard)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteTo with a removed host file: %v, want a not-exist error", err)
	}
}

func TestEmptyArchive(t *testing.T) {
	var a Archive
	zr, err := NewReader(bytes.NewReader(write(t, &a)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cpio.NewReader(zr).Next(); err != io.EOF {
		t.Errorf("Next on an empty archive: %v, want io.EOF", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	var a Archive
	if err := a.AddFile("/init", 0o755, bytes.Repeat([]byte{1, 2, 3}, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteTo(failWriter{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteTo to a failing writer: %v", err)
	}
}

// TestHostZoneinfo archives the host's real time zone database, when there
// is one, and checks that the cpio tool lists every entry.
func TestHostZoneinfo(t *testing.T) {
	const zoneinfo = "/usr/share/zoneinfo"
	if _, err := os.Stat(zoneinfo); err != nil {
		t.Skip(zoneinfo, " not present")
	}
	var a Archive
	if err := a.AddHostTree(zoneinfo, zoneinfo); err != nil {
		t.Fatal(err)
	}
	entries := a.Entries()
	p := filepath.Join(t.TempDir(), "tz.cpio.gz")
	if err := os.WriteFile(p, write(t, &a), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio tool not installed")
	}
	names := strings.Split(strings.TrimSuffix(runCpio(t, p, t.TempDir(), "-t"), "\n"), "\n")
	if len(names) != len(entries) {
		t.Fatalf("cpio -t listed %d names, archive has %d entries", len(names), len(entries))
	}
	for i, e := range entries {
		if names[i] != e.Path[1:] {
			t.Fatalf("name %d: %q, want %q", i, names[i], e.Path[1:])
		}
	}
	t.Logf("%d entries", len(entries))
}
