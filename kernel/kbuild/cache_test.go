package kbuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
)

func TestCacheEmpty(t *testing.T) {
	c := Cache{Dir: filepath.Join(t.TempDir(), "missing")}
	entries, err := c.List()
	if err != nil || len(entries) != 0 {
		t.Errorf("List = %v, %v; want nothing", entries, err)
	}
	_, err = c.Find(context.Background())
	if !errors.Is(err, kernel.ErrNoKernel) || !strings.Contains(err.Error(), "nos kernel build") {
		t.Errorf("Find: err = %v, want ErrNoKernel with a hint", err)
	}
	// In a chain, the next finder's kernel is used.
	boot := t.TempDir()
	writeFile(t, boot, "vmlinuz-6.1.0-1-amd64", fakeBzImage("6.1.0-1-amd64"))
	k, err := kernel.Chain{c, kernel.Host{BootDir: boot, ModulesRoot: boot}}.Find(context.Background())
	if err != nil || k.Origin != "host" {
		t.Errorf("chain: %+v, %v", k, err)
	}
}

func TestImport(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	dir := t.TempDir()
	writeFile(t, dir, "bzImage", fakeBzImage("6.6.6-custom"))
	writeFile(t, dir, "vmlinux", []byte("\x7fELF a vmlinux"))
	writeFile(t, dir, "notakernel", []byte("hello"))

	e, existed, err := c.Import(context.Background(), filepath.Join(dir, "bzImage"))
	if err != nil || existed {
		t.Fatalf("Import = %v, %v", existed, err)
	}
	if e.Origin != OriginImported || e.Version != "6.6.6-custom" || e.Image != "bzImage" || len(e.ID) != 64 {
		t.Errorf("entry = %+v", e)
	}
	k, err := c.Find(context.Background())
	if err != nil || k.Path != e.Path() || k.Origin != OriginImported || k.ModulesDir != "" {
		t.Errorf("Find = %+v, %v", k, err)
	}

	time.Sleep(10 * time.Millisecond)
	v, _, err := c.Import(context.Background(), filepath.Join(dir, "vmlinux"))
	if err != nil || v.Image != "vmlinux" || v.Version != "" {
		t.Fatalf("Import vmlinux = %+v, %v", v, err)
	}
	if k, _ := c.Find(context.Background()); k.Path != v.Path() {
		t.Errorf("the last import is not the default: %s", k.Path)
	}
	// Importing the first again finds it and makes it the default again.
	time.Sleep(10 * time.Millisecond)
	again, existed, err := c.Import(context.Background(), filepath.Join(dir, "bzImage"))
	if err != nil || !existed || again.ID != e.ID {
		t.Errorf("re-import = %+v, %v, %v", again, existed, err)
	}
	if k, _ := c.Find(context.Background()); k.Path != e.Path() {
		t.Errorf("re-import did not make it the default: %s", k.Path)
	}

	if _, _, err := c.Import(context.Background(), filepath.Join(dir, "notakernel")); err == nil || !strings.Contains(err.Error(), "not a kernel image") {
		t.Errorf("importing a non-kernel: err = %v", err)
	}
	if entries, _ := c.List(); len(entries) != 2 {
		t.Errorf("List has %d entries, want 2", len(entries))
	}
}

func TestGetAndRemove(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	dir := t.TempDir()
	var ids []string
	for _, v := range []string{"6.1.0-a", "6.1.0-b", "6.1.0-c"} {
		writeFile(t, dir, v, fakeBzImage(v))
		e, _, err := c.Import(context.Background(), filepath.Join(dir, v))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if e, err := c.Get(strings.ToUpper(ids[1][:12])); err != nil || e.ID != ids[1] {
		t.Errorf("Get(short ID) = %v, %v", e, err)
	}
	for _, bad := range []string{"", "xyz", "../x"} {
		if _, err := c.Get(bad); err == nil || !strings.Contains(err.Error(), "not a kernel ID") {
			t.Errorf("Get(%q): err = %v", bad, err)
		}
	}
	if _, err := c.Get(strings.Repeat("0", 64)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Get(unknown): err = %v, want ErrNotExist", err)
	}
	// An empty prefix of hex digits common to all: find the ambiguity.
	if common := commonPrefix(ids); common != "" {
		if _, err := c.Get(common); err == nil || !strings.Contains(err.Error(), "ambiguous") {
			t.Errorf("Get(%q): err = %v, want ambiguous", common, err)
		}
	}
	e, err := c.Remove(ids[0][:8])
	if err != nil || e.ID != ids[0] {
		t.Fatalf("Remove = %v, %v", e, err)
	}
	if names := cacheNames(t, c.Dir); len(names) != 2 || contains(names, ids[0]) {
		t.Errorf("cache holds %q after rm", names)
	}
	if _, err := c.Remove(ids[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("second Remove: err = %v", err)
	}
}

func commonPrefix(ids []string) string {
	p := ids[0]
	for _, id := range ids[1:] {
		for !strings.HasPrefix(id, p) {
			p = p[:len(p)-1]
		}
	}
	return p
}

func TestListSkipsBrokenEntries(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	dir := t.TempDir()
	writeFile(t, dir, "bzImage", fakeBzImage("6.1.0-good"))
	good, _, err := c.Import(context.Background(), filepath.Join(dir, "bzImage"))
	if err != nil {
		t.Fatal(err)
	}
	// Half an entry (no metadata), one whose image is gone, one whose ID
	// does not match its directory, and unrelated files.
	os.MkdirAll(filepath.Join(c.Dir, strings.Repeat("a", 64)), 0o755)
	writeFile(t, c.Dir, strings.Repeat("b", 64)+"/kernel.json", []byte(`{"id":"`+strings.Repeat("b", 64)+`","origin":"built","image":"bzImage"}`))
	writeFile(t, c.Dir, strings.Repeat("c", 64)+"/kernel.json", []byte(`{"id":"`+strings.Repeat("d", 64)+`","origin":"built","image":"bzImage"}`))
	writeFile(t, c.Dir, strings.Repeat("c", 64)+"/bzImage", fakeBzImage("6.1.0-c"))
	writeFile(t, c.Dir, "README", []byte("hi"))
	entries, err := c.List()
	if err != nil || len(entries) != 1 || entries[0].ID != good.ID {
		t.Errorf("List = %v, %v; want the good entry only", entries, err)
	}
}

func TestSweepRemovesDeadWorkDirs(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	dead := filepath.Join(c.Dir, workPrefix+"dead")
	writeFile(t, dead, "src/Makefile", []byte("x"))
	old := time.Now().Add(-time.Hour)
	os.Chtimes(dead, old, old)
	young := filepath.Join(c.Dir, workPrefix+"young")
	os.Mkdir(young, 0o755)

	live, err := c.newWork()
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(live.dir, old, old)
	c.sweep()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("the dead build's directory survived")
	}
	if _, err := os.Stat(young); err != nil {
		t.Error("a young work directory was swept")
	}
	if _, err := os.Stat(live.dir); err != nil {
		t.Error("a live build's directory was swept")
	}
	live.close()
	if _, err := os.Stat(live.dir); !os.IsNotExist(err) {
		t.Error("close left the work directory")
	}
}

// builtEntry writes a built entry with the given features into c.
func builtEntry(t *testing.T, c Cache, id string, features ...string) {
	t.Helper()
	dir := filepath.Join(c.Dir, id)
	writeFile(t, dir, "bzImage", fakeBzImage("6.1.1-nos-"+id[:4])) // distinct content
	meta := `{"id":"` + id + `","version":"6.1.1-nos","origin":"built","image":"bzImage","features":["` + strings.Join(features, `","`) + `"]}`
	if len(features) == 0 {
		meta = `{"id":"` + id + `","version":"6.1.1-nos","origin":"built","image":"bzImage"}`
	}
	writeFile(t, dir, metaName, []byte(meta))
	// Later entries are selected later.
	time.Sleep(10 * time.Millisecond)
	if err := os.Chtimes(dir, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestMatchFeatures(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	builtEntry(t, c, id('a'), "net")
	builtEntry(t, c, id('b'), "blk", "net", "vsock")
	builtEntry(t, c, id('c'))
	builtEntry(t, c, id('d'), "blk", "net")
	for _, tc := range []struct {
		need []string
		want string // "" for none
	}{
		{nil, id('d')},                      // the default: the last built
		{[]string{}, id('c')},               // none: exactly none
		{[]string{"net"}, id('a')},          // exact match beats the newer superset
		{[]string{"blk"}, id('d')},          // fewest extra features
		{[]string{"net", "vsock"}, id('b')}, // only one has vsock
		{[]string{"blk", "net", "vsock"}, id('b')},
		{[]string{"gpu"}, ""},
	} {
		e, err := c.Match(tc.need)
		switch {
		case tc.want == "" && (err == nil || !errors.Is(err, kernel.ErrNoKernel) || !strings.Contains(err.Error(), "nos kernel build --features gpu")):
			t.Errorf("Match(%v) = %v, %v; want ErrNoKernel naming the build command", tc.need, e, err)
		case tc.want != "" && (err != nil || e.ID != tc.want):
			t.Errorf("Match(%v) = %v, %v; want %s", tc.need, e, err, tc.want[:1])
		}
	}
	// An imported kernel that is the default is the user's choice: it is
	// used whatever the features.
	dir := t.TempDir()
	writeFile(t, dir, "bzImage", fakeBzImage("6.6.6-own"))
	time.Sleep(10 * time.Millisecond)
	imp, _, err := c.Import(context.Background(), filepath.Join(dir, "bzImage"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := c.Match([]string{"net"}); err != nil || e.ID != imp.ID {
		t.Errorf("Match with an imported default = %v, %v; want the import", e, err)
	}
	// ForFile recognises a copy of a built kernel.
	cp := filepath.Join(dir, "copy")
	if b, err := os.ReadFile(filepath.Join(c.Dir, id('b'), "bzImage")); err != nil || os.WriteFile(cp, b, 0o644) != nil {
		t.Fatal(err)
	}
	if e, err := c.ForFile(context.Background(), cp); err != nil || e == nil || e.ID != id('b') {
		t.Errorf("ForFile(copy of b's bzImage) = %v, %v; want b", e, err)
	}
	// A kernel nos does not know is no entry.
	other := filepath.Join(dir, "other")
	writeFile(t, dir, "other", fakeBzImage("6.1.1-other"))
	if e, err := c.ForFile(context.Background(), other); err != nil || e != nil {
		t.Errorf("ForFile(unknown kernel) = %v, %v; want nothing", e, err)
	}
}

// TestMatchPrefersCurrentFragments: of two kernels with the same features,
// the one configured from this nos's fragments wins over an older build,
// even one selected more recently.
func TestMatchPrefersCurrentFragments(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	frags, err := config.Fragments([]string{"blk", "net"})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := config.Merge(frags)
	if err != nil {
		t.Fatal(err)
	}
	current, stale := strings.Repeat("c", 64), strings.Repeat("s", 64)
	for _, e := range []struct{ id, hash string }{{current, merged.Hash()}, {stale, strings.Repeat("0", 64)}} {
		dir := filepath.Join(c.Dir, e.id)
		writeFile(t, dir, "bzImage", fakeBzImage("6.1.1-nos-"+e.id[:4]))
		writeFile(t, dir, metaName, []byte(`{"id":"`+e.id+`","version":"6.1.1-nos","origin":"built","image":"bzImage","features":["blk","net"],"configHash":"`+e.hash+`"}`))
		time.Sleep(10 * time.Millisecond)
		if err := os.Chtimes(dir, time.Now(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e, err := c.Match([]string{"blk"})
	if err != nil || e.ID != current || !e.Current() {
		t.Errorf("Match = %v, %v; want the current build", e, err)
	}
}
