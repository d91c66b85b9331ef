package oci

import (
	"archive/tar"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWhiteoutsAndOpaqueDirs(t *testing.T) {
	for _, markerFirst := range []bool{true, false} {
		t.Run(map[bool]string{true: "marker-before-siblings", false: "marker-after-siblings"}[markerFirst], func(t *testing.T) {
			s := newSandbox(t)
			lower := mkTar(t,
				dir("a"), file("a/x", "x"), file("a/y", "y"),
				file("b", "b"),
				dir("c"), file("c/old", "old"), dir("c/sub"), file("c/sub/deep", "deep"), file("c/replaced", "v1"),
				dir("d"), file("d/keep", "keep"),
			)
			upperEntries := []te{whiteout("a", "x"), whiteout("", "b"), whiteout("", "nonexistent")}
			siblings := []te{file("c/new", "new"), file("c/replaced", "v2"), dir("c/sub"), file("c/sub/fresh", "fresh")}
			if markerFirst {
				upperEntries = append(upperEntries, opaqueMarker("c"))
				upperEntries = append(upperEntries, siblings...)
			} else {
				upperEntries = append(upperEntries, siblings...)
				upperEntries = append(upperEntries, opaqueMarker("c"))
			}
			// A whiteout only hides lower layers: d/keep2 is both written
			// and whited out in the same layer, and stays.
			upperEntries = append(upperEntries, file("d/keep2", "k2"), whiteout("d", "keep2"))
			tree, err := applyTars(t, s.dst, Limits{}, lower, mkTar(t, upperEntries...))
			if err != nil {
				t.Fatal(err)
			}
			s.check(t)
			r := s.dst
			mustNotExist(t, filepath.Join(r, "a/x"))
			if mustRead(t, filepath.Join(r, "a/y")) != "y" {
				t.Fatal("a/y")
			}
			mustNotExist(t, filepath.Join(r, "b"))
			mustNotExist(t, filepath.Join(r, "c/old"))
			mustNotExist(t, filepath.Join(r, "c/sub/deep"))
			if mustRead(t, filepath.Join(r, "c/new")) != "new" || mustRead(t, filepath.Join(r, "c/replaced")) != "v2" ||
				mustRead(t, filepath.Join(r, "c/sub/fresh")) != "fresh" {
				t.Fatal("the upper layer's entries in the opaque directory are missing")
			}
			if mustRead(t, filepath.Join(r, "d/keep")) != "keep" || mustRead(t, filepath.Join(r, "d/keep2")) != "k2" {
				t.Fatal("d")
			}
			mustNotExist(t, filepath.Join(r, "c/.wh..wh..opq"))
			mustNotExist(t, filepath.Join(r, "a/.wh.x"))
			var paths []string
			for _, e := range tree.Entries {
				paths = append(paths, e.Path)
			}
			want := ". a a/y c c/new c/replaced c/sub c/sub/fresh d d/keep d/keep2"
			if got := strings.Join(paths, " "); got != want {
				t.Fatalf("tree:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// A whiteout hides the lower layers' NAME even when it comes after this
// layer's own NAME/ entries.
func TestWhiteoutAfterSameLayerDirectory(t *testing.T) {
	for _, whiteoutFirst := range []bool{true, false} {
		s := newSandbox(t)
		upper := []te{dir("a"), file("a/new", "n")}
		if whiteoutFirst {
			upper = append([]te{whiteout("", "a")}, upper...)
		} else {
			upper = append(upper, whiteout("", "a"))
		}
		_, err := applyTars(t, s.dst, Limits{}, mkTar(t, dir("a"), file("a/old", "o"), dir("a/sub"), file("a/sub/x", "x")), mkTar(t, upper...))
		if err != nil {
			t.Fatal(err)
		}
		mustNotExist(t, filepath.Join(s.dst, "a/old"))
		mustNotExist(t, filepath.Join(s.dst, "a/sub"))
		if mustRead(t, filepath.Join(s.dst, "a/new")) != "n" {
			t.Fatal("a/new")
		}
	}
}

func TestOpaqueRootAndImplicitDir(t *testing.T) {
	s := newSandbox(t)
	_, err := applyTars(t, s.dst, Limits{},
		mkTar(t, file("etc/passwd", "root"), file("old", "o")),
		mkTar(t, opaqueMarker(""), file("new", "n"), opaqueMarker("fresh/dir")),
	)
	if err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, filepath.Join(s.dst, "etc"))
	mustNotExist(t, filepath.Join(s.dst, "old"))
	if fi, err := os.Stat(filepath.Join(s.dst, "fresh/dir")); err != nil || !fi.IsDir() {
		t.Fatal("an opaque marker's directory is created", err)
	}
}

func TestHardlinks(t *testing.T) {
	s := newSandbox(t)
	tree, err := applyTars(t, s.dst, Limits{},
		mkTar(t, te{name: "bin/tool", body: "#!tool", mode: 0o4755, uid: 0, gid: 0}, hardlink("bin/alias", "bin/tool"),
			hardlink("./bin/alias2", "/bin/tool")),
		mkTar(t, file("bin/tool", "new")), // breaks the link, as overlayfs copy-up does
	)
	if err != nil {
		t.Fatal(err)
	}
	fa, _ := os.Stat(filepath.Join(s.dst, "bin/alias"))
	fb, _ := os.Stat(filepath.Join(s.dst, "bin/alias2"))
	if !os.SameFile(fa, fb) || mustRead(t, filepath.Join(s.dst, "bin/alias")) != "#!tool" {
		t.Fatal("alias and alias2 are not the same file")
	}
	if mustRead(t, filepath.Join(s.dst, "bin/tool")) != "new" {
		t.Fatal("tool")
	}
	a, _ := tree.Lookup("bin/alias")
	b, _ := tree.Lookup("/bin/alias2")
	c, _ := tree.Lookup("./bin/tool")
	if a.Inode == 0 || a.Inode != b.Inode || c.Inode == a.Inode {
		t.Fatalf("inodes %d %d %d", a.Inode, b.Inode, c.Inode)
	}
	if a.Mode != 0o755|fs.ModeSetuid || a.Size != 6 {
		t.Fatalf("alias %v", a)
	}
}

func TestSymlinksAreCreatedAsIs(t *testing.T) {
	s := newSandbox(t)
	tree, err := applyTars(t, s.dst, Limits{},
		mkTar(t, symlink("abs", "/etc/passwd"), symlink("rel", "../../../../etc"), symlink("lib64", "usr/lib64"),
			te{name: "owned", typ: tar.TypeSymlink, link: "x", uid: 7, gid: 8}),
		mkTar(t, symlink("abs", "/replaced")),
	)
	if err != nil {
		t.Fatal(err)
	}
	s.check(t)
	for name, want := range map[string]string{"abs": "/replaced", "rel": "../../../../etc", "lib64": "usr/lib64"} {
		got, err := os.Readlink(filepath.Join(s.dst, name))
		if err != nil || got != want {
			t.Fatalf("%s -> %q (%v), want %q", name, got, err, want)
		}
		e, ok := tree.Lookup(name)
		if !ok || e.Linkname != want || e.Mode.Type() != fs.ModeSymlink {
			t.Fatalf("tree %s: %+v", name, e)
		}
	}
	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(s.dst, "owned"), &st); err != nil || st.Uid != 7 || st.Gid != 8 {
			t.Fatalf("symlink owners on disk %d:%d (%v)", st.Uid, st.Gid, err)
		}
	}
}

func TestReplacing(t *testing.T) {
	s := newSandbox(t)
	tree, err := applyTars(t, s.dst, Limits{},
		mkTar(t, dir("p"), file("p/child", "c"), file("f", "file"), dir("d"), file("d/kept", "k"), symlink("l", "/x")),
		mkTar(t, file("p", "now a file"), dir("f"), file("f/inside", "i"), te{name: "d", typ: tar.TypeDir, mode: 0o700, uid: 5},
			dir("l")),
		mkTar(t, dir("p"), file("p/again", "a")),
	)
	if err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, filepath.Join(s.dst, "p/child"))
	if mustRead(t, filepath.Join(s.dst, "p/again")) != "a" || mustRead(t, filepath.Join(s.dst, "f/inside")) != "i" ||
		mustRead(t, filepath.Join(s.dst, "d/kept")) != "k" {
		t.Fatal("content")
	}
	if fi, err := os.Lstat(filepath.Join(s.dst, "l")); err != nil || !fi.IsDir() {
		t.Fatal("a directory replaces a symlink")
	}
	d, _ := tree.Lookup("d")
	if d.Mode != fs.ModeDir|0o700 || d.UID != 5 {
		t.Fatalf("a directory over a directory updates its metadata: %+v", d)
	}
	if _, ok := tree.Lookup("p/child"); ok {
		t.Fatal("p/child is still in the tree")
	}
}

func TestModesOwnersAndReadOnlyDirs(t *testing.T) {
	s := newSandbox(t)
	tree, err := applyTars(t, s.dst, Limits{},
		mkTar(t, te{name: "./", typ: tar.TypeDir, mode: 0o711},
			te{name: "ro", typ: tar.TypeDir, mode: 0o555, uid: 1000, gid: 1000},
			te{name: "ro/first", mode: 0o444, body: "1"},
			te{name: "usr/bin/su", mode: 0o4755, body: "su", pax: map[string]string{"SCHILY.xattr.security.capability": "\x01\x02"}},
			te{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
			te{name: "shadow", mode: mode0, body: "secret", gid: 42},
			te{name: "sg", typ: tar.TypeDir, mode: 0o2775}),
		mkTar(t, te{name: "ro/second", mode: 0o644, body: "2"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]fs.FileMode{
		".":          fs.ModeDir | 0o711,
		"ro":         fs.ModeDir | 0o555,
		"ro/first":   0o444,
		"ro/second":  0o644,
		"usr":        fs.ModeDir | 0o755, // implicit
		"usr/bin/su": 0o755 | fs.ModeSetuid,
		"tmp":        fs.ModeDir | 0o777 | fs.ModeSticky,
		"shadow":     0,
		"sg":         fs.ModeDir | 0o775 | fs.ModeSetgid,
	}
	for p, want := range checks {
		e, ok := tree.Lookup(p)
		if !ok || e.Mode != want {
			t.Errorf("%s: tree mode %v, want %v", p, e.Mode, want)
		}
		if os.Geteuid() == 0 && p != "." {
			fi, err := os.Lstat(filepath.Join(s.dst, p))
			if err != nil || fi.Mode() != want {
				t.Errorf("%s: disk mode %v (%v), want %v", p, fi.Mode(), err, want)
			}
		}
	}
	ro, _ := tree.Lookup("ro")
	if ro.UID != 1000 || ro.GID != 1000 {
		t.Errorf("ro owners %d:%d", ro.UID, ro.GID)
	}
	su, _ := tree.Lookup("usr/bin/su")
	if su.Xattrs["security.capability"] != "\x01\x02" {
		t.Errorf("xattrs %q", su.Xattrs)
	}
	if sh, _ := tree.Lookup("shadow"); sh.GID != 42 || sh.Size != 6 || !sh.ModTime.Equal(testTime) {
		t.Errorf("shadow %+v", sh)
	}
	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(s.dst, "ro"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("ro owners on disk %d:%d", st.Uid, st.Gid)
		}
		fi, _ := os.Stat(filepath.Join(s.dst, "ro/first"))
		if !fi.ModTime().Equal(testTime) {
			t.Errorf("mtime %v", fi.ModTime())
		}
	}
}

// As another user than root the disk keeps the tree readable and
// removable, and holds no setuid files; the Tree keeps the image's modes.
func TestNonRootDiskModes(t *testing.T) {
	s := newSandbox(t)
	root, err := os.OpenRoot(s.dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	x := newExtractor(root, Limits{}, false)
	x.chown = false
	tree, err := applyWith(x, s.dst,
		mkTar(t, te{name: "ro", typ: tar.TypeDir, mode: 0o555}, te{name: "none", typ: tar.TypeDir, mode: mode0},
			te{name: "suid", mode: 0o4711, body: "x"}, te{name: "zero", mode: mode0, body: "z"}),
		mkTar(t, file("ro/later", "l"), file("none/later", "l")),
	)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{"ro": fs.ModeDir | 0o755, "none": fs.ModeDir | 0o700, "suid": 0o711, "zero": 0o600} {
		fi, err := os.Lstat(filepath.Join(s.dst, p))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: disk mode %v, want %v", p, fi.Mode(), want)
		}
	}
	if e, _ := tree.Lookup("suid"); e.Mode != 0o711|fs.ModeSetuid {
		t.Errorf("tree mode %v", e.Mode)
	}
	if e, _ := tree.Lookup("none"); e.Mode != fs.ModeDir {
		t.Errorf("tree mode %v", e.Mode)
	}
}

func TestFifoSkipped(t *testing.T) {
	s := newSandbox(t)
	tree, err := applyTars(t, s.dst, Limits{}, mkTar(t, te{name: "run/pipe", typ: tar.TypeFifo}, file("ok", "ok")))
	if err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, filepath.Join(s.dst, "run/pipe"))
	if len(tree.Warnings) != 1 || !strings.Contains(tree.Warnings[0], `FIFO "run/pipe" skipped`) {
		t.Fatalf("warnings %q", tree.Warnings)
	}
}

// Every hostile layer fails with a clear error and leaves everything
// outside the root as it was.
func TestHostileLayers(t *testing.T) {
	type tc struct {
		name    string
		layers  func(s sandbox) [][]byte
		wantErr []string
	}
	one := func(entries ...te) func(sandbox) [][]byte {
		return func(sandbox) [][]byte { return [][]byte{mkTar(t, entries...)} }
	}
	cases := []tc{
		{"dotdot traversal", one(file("../outside/pwned", "x")), []string{`layer 1: entry "../outside/pwned" escapes the root`}},
		{"nested dotdot traversal", one(file("a/b/../../../outside/pwned", "x")), []string{"escapes the root"}},
		{"absolute with dotdot", one(file("/../outside/pwned", "x")), []string{`entry "/../outside/pwned" escapes the root`}},
		{"directory traversal", one(dir("../outside/newdir")), []string{"escapes the root"}},
		{"symlink traversal name", one(symlink("../outside/link", "/etc")), []string{"escapes the root"}},
		{"symlink escape absolute", func(s sandbox) [][]byte {
			return [][]byte{mkTar(t, symlink("a", s.outside), file("a/pwned", "x"))}
		}, []string{`entry "a/pwned" goes through the symlink "a"`}},
		{"symlink escape across layers", func(s sandbox) [][]byte {
			return [][]byte{mkTar(t, symlink("etc", s.outside)), mkTar(t, file("etc/pwned", "x"))}
		}, []string{"layer 2", "refusing to write through a symlink"}},
		{"symlink escape directory entry", func(s sandbox) [][]byte {
			return [][]byte{mkTar(t, symlink("a", s.outside), dir("a/newdir"))}
		}, []string{"goes through the symlink"}},
		{"symlink escape replacing the symlink target", func(s sandbox) [][]byte {
			// A file entry over a symlink replaces the symlink, it does not
			// write through it.
			return [][]byte{mkTar(t, symlink("x", filepath.Join(s.outside, "sentinel")), file("x", "overwritten"), file("../x", "y"))}
		}, []string{"escapes the root"}},
		{"symlink to parent chain", one(symlink("up", ".."), symlink("up2", "up/.."), file("up2/outside/pwned", "x")),
			[]string{`goes through the symlink "up2"`}},
		{"symlink to parent chain relative", one(symlink("up", "../outside"), file("up/pwned", "x")),
			[]string{"goes through the symlink"}},
		{"hardlink escape", one(hardlink("passwd", "../../etc/passwd")), []string{`hardlink "passwd" -> "../../etc/passwd": the target escapes the root`}},
		{"hardlink escape to outside", one(hardlink("s", "../outside/sentinel")), []string{"escapes the root"}},
		{"hardlink via symlink", func(s sandbox) [][]byte {
			return [][]byte{mkTar(t, symlink("o", s.outside), hardlink("h", "o/sentinel"))}
		}, []string{`goes through the symlink "o"`}},
		{"hardlink via absolute etc symlink", one(symlink("e", "/etc"), hardlink("h", "e/passwd")), []string{"goes through the symlink"}},
		{"hardlink to a symlink", one(symlink("s", "/etc/passwd"), hardlink("h", "s")), []string{"the target is not a regular file"}},
		{"hardlink to a missing file", one(hardlink("h", "etc/shadow")), []string{"the target is not in the image"}},
		{"hardlink to a directory", one(dir("d"), hardlink("h", "d")), []string{"not a regular file"}},
		{"whiteout outside", one(file("../.wh.outside", "")), []string{"escapes the root"}},
		{"whiteout outside deeper", one(file("a/../../outside/.wh.sentinel", "")), []string{"escapes the root"}},
		{"whiteout through symlink", func(s sandbox) [][]byte {
			return [][]byte{mkTar(t, symlink("o", s.outside)), mkTar(t, file("o/.wh.sentinel", ""))}
		}, []string{"goes through the symlink"}},
		{"opaque through symlink", func(s sandbox) [][]byte {
			return [][]byte{mkTar(t, symlink("o", s.outside)), mkTar(t, file("o/.wh..wh..opq", ""))}
		}, []string{"goes through the symlink"}},
		{"whiteout of dotdot", one(file("a/.wh...", "")), []string{"names nothing"}},
		{"char device", one(te{name: "dev/null", typ: tar.TypeChar}), []string{`layer 1: device node "dev/null" refused`}},
		{"block device", one(te{name: "dev/sda", typ: tar.TypeBlock}), []string{`device node "dev/sda" refused`}},
		{"file replacing the root", one(file(".", "x")), []string{"would replace the root"}},
		{"file under a file", one(file("f", "x"), file("f/g", "y")), []string{`"f" is not a directory`}},
		{"negative owner", one(te{name: "f", uid: -5}), []string{"invalid owner"}},
		{"long component", one(file(strings.Repeat("a", 256), "x")), []string{"longer than 255 bytes"}},
		{"unsupported type", one(te{name: "v", typ: 'V'}), []string{"unsupported type"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := applyTars(t, s.dst, Limits{}, c.layers(s)...)
			wantErr(t, err, c.wantErr...)
			s.check(t)
			// Nothing anywhere under the root is a hard link to the sentinel.
			sent, _ := os.Stat(filepath.Join(s.outside, "sentinel"))
			filepath.Walk(s.dst, func(p string, fi os.FileInfo, err error) error {
				if err == nil && os.SameFile(fi, sent) {
					t.Fatalf("%s is the sentinel", p)
				}
				return nil
			})
		})
	}
}

func TestSplitName(t *testing.T) {
	for name, want := range map[string]string{
		"a/b":        "a/b",
		"./a/./b/":   "a/b",
		"/a//b":      "a/b",
		"a/../b":     "b",
		"a/b/../..":  "",
		"..":         "!escapes the root",
		"a/../../b":  "!escapes the root",
		"a\x00b":     "!contains a NUL byte",
		"/":          "",
		"./.wh..opq": ".wh..opq",
	} {
		comps, problem := splitName(name)
		got := strings.Join(comps, "/")
		if problem != "" {
			got = "!" + problem
		}
		if got != want {
			t.Errorf("splitName(%q) = %q, want %q", name, got, want)
		}
	}
	if _, problem := splitName(strings.Repeat("a/", 2049)); problem != "is too long" {
		t.Error("a long name is accepted")
	}
}

func TestEntryAndByteLimits(t *testing.T) {
	s := newSandbox(t)
	var many []te
	for i := range 20 {
		many = append(many, file("f"+strings.Repeat("x", i), "x"))
	}
	_, err := applyTars(t, s.dst, Limits{MaxEntries: 10}, mkTar(t, many...))
	wantErr(t, err, "layer 1: too many entries (the limit is 10 in total)")

	// The stream itself (headers included) counts, across layers.
	s = newSandbox(t)
	small := mkTar(t, file("a", strings.Repeat("y", 3000)))
	_, err = applyTars(t, s.dst, Limits{MaxBytes: 20 << 10}, small, small, small, small, small)
	wantErr(t, err, "exceeds the size limit (20 KiB uncompressed in total)", "decompression bomb")

	// A declared size beyond the limit fails before anything is read.
	s = newSandbox(t)
	_, err = applyTars(t, s.dst, Limits{MaxBytes: 1 << 20}, mkTar(t, te{name: "big", body: "", size: 2 << 20}))
	wantErr(t, err, "layer 1 exceeds the size limit (1 MiB uncompressed in total)")
	mustNotExist(t, filepath.Join(s.dst, "big"))
}

func TestTruncatedLayer(t *testing.T) {
	s := newSandbox(t)
	b := mkTar(t, file("a", strings.Repeat("z", 5000)))
	_, err := applyTars(t, s.dst, Limits{}, b[:2000])
	wantErr(t, err, "layer 1: reading the tar stream")
}
