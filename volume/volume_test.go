package volume

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"10g": 10 << 30, "512m": 512 << 20, "512MiB": 512 << 20, "1.5G": 3 << 29, "8388608": 8 << 20, "1t": 1 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1g", "ten", "1m", "1x", "NaN", "1e30"} {
		if _, err := ParseSize(bad); !errors.Is(err, ErrBadInput) {
			t.Errorf("ParseSize(%q): %v, want ErrBadInput", bad, err)
		}
	}
}

func TestCreateListGetRemove(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "seed.txt"), []byte("seeded\n"), 0o644)
	v, err := s.Create(ctx, "data", CreateOptions{Size: 64 << 20, From: src, UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if v.Fresh || !v.Clean || v.Size != 64<<20 {
		t.Errorf("created %+v: a volume made --from is not fresh (no copy-up), and starts clean", v)
	}
	fi, err := os.Stat(v.Disk())
	if err != nil || fi.Size() != 64<<20 {
		t.Fatalf("disk %v %v", fi, err)
	}
	if v.DiskUsage() >= fi.Size() {
		t.Errorf("the disk is not sparse: %d of %d bytes allocated", v.DiskUsage(), fi.Size())
	}
	// The real tools agree: a clean ext4 holding the seed, owned by 1000.
	if out, err := exec.Command("e2fsck", "-fn", v.Disk()).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	if out, _ := exec.Command("debugfs", "-R", "cat /seed.txt", v.Disk()).Output(); string(out) != "seeded\n" {
		t.Errorf("debugfs cat /seed.txt = %q", out)
	}
	if out, _ := exec.Command("debugfs", "-R", "stat /", v.Disk()).Output(); !strings.Contains(string(out), "User:  1000") {
		t.Errorf("root owner: %s", out)
	}

	if _, err := s.Create(ctx, "data", CreateOptions{Size: 64 << 20}); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v", err)
	}
	for _, bad := range []string{"", "-x", "a/b", "..", strings.Repeat("a", 200)} {
		if _, err := s.Create(ctx, bad, CreateOptions{Size: 64 << 20}); !errors.Is(err, ErrBadInput) {
			t.Errorf("create %q: %v", bad, err)
		}
	}
	if _, err := s.Create(ctx, "nofrom", CreateOptions{Size: 64 << 20, From: "/nonexistent"}); err == nil {
		t.Error("--from a missing path accepted")
	}
	all, err := s.List()
	if err != nil || len(all) != 1 || all[0].Name != "data" {
		t.Fatalf("list = %v, %v; want just data (failed creates leave nothing)", all, err)
	}
	if des, _ := os.ReadDir(s.Dir); len(des) != 2 { // data and .lock
		t.Errorf("store holds %d entries after failed creates", len(des))
	}
	if err := s.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("data"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after rm: %v", err)
	}
}

func TestAttachOneWriter(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, "db", CreateOptions{Size: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	a, err := s.Attach(ctx, "db", "inst-a", false)
	if err != nil {
		t.Fatal(err)
	}
	if !a.CopyUp {
		t.Error("the first attachment of a new empty volume copies up")
	}
	for _, ro := range []bool{false, true} {
		if _, err := s.Attach(ctx, "db", "inst-b", ro); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "inst-a") {
			t.Errorf("attach (read-only %v) while inst-a writes: %v; want in use, naming inst-a", ro, err)
		}
	}
	if err := s.Remove(ctx, "db"); !errors.Is(err, ErrInUse) {
		t.Errorf("rm while attached: %v", err)
	}
	// An attachment that ends uncleanly makes the next one check first.
	if err := a.Detach(false); err != nil {
		t.Fatal(err)
	}
	r1, err := s.Attach(ctx, "db", "inst-c", true)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Checked == "" || r1.CopyUp {
		t.Errorf("after an unclean end: checked %q, copy-up %v", r1.Checked, r1.CopyUp)
	}
	r2, err := s.Attach(ctx, "db", "inst-d", true)
	if err != nil {
		t.Fatalf("readers share: %v", err)
	}
	if _, err := s.Attach(ctx, "db", "inst-e", false); !errors.Is(err, ErrInUse) {
		t.Errorf("a writer while two read: %v", err)
	}
	r1.Detach(true)
	r2.Detach(true)
	w, err := s.Attach(ctx, "db", "inst-f", false)
	if err != nil || w.Checked != "" || w.CopyUp {
		t.Fatalf("after clean reads: %+v, %v", w, err)
	}
	w.Detach(true)
	v, _ := s.Get("db")
	if !v.Clean || v.LastCleanUnmount.IsZero() || v.Holder() != "" {
		t.Errorf("after a clean detach: %+v holder %q", v, v.Holder())
	}
}

func TestAttachRefusesABrokenFileSystem(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	v, err := s.Create(ctx, "broken", CreateOptions{Size: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	// Not ext4 at all: zeroes where the superblocks were.
	f, _ := os.OpenFile(v.Disk(), os.O_WRONLY, 0)
	f.WriteAt(make([]byte, 1<<20), 0)
	f.Close()
	if _, err := s.Attach(ctx, "broken", "x", false); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "not an ext4") {
		t.Errorf("attach of a wiped disk: %v", err)
	}
	if v.Attached() {
		t.Error("a refused attach holds the lock")
	}
}

// TestCheck: a sound volume passes; a killed create's directory and a
// volume without its disk are found and, with repair, removed.
func TestCheck(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, "good", CreateOptions{Size: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "torn", CreateOptions{Size: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(s.DiskOf("torn")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.Dir, ".tmp-123"), 0o700); err != nil {
		t.Fatal(err)
	}
	ps, err := s.Check(ctx, false)
	if err != nil || len(ps) != 2 {
		t.Fatalf("check: %+v, %v; want two problems", ps, err)
	}
	if ps, err = s.Check(ctx, true); err != nil || len(ps) != 2 || ps[0].Repaired != "removed" || ps[1].Repaired != "removed" {
		t.Fatalf("repair: %+v, %v", ps, err)
	}
	if ps, err := s.Check(ctx, false); err != nil || len(ps) != 0 {
		t.Errorf("after repair: %+v, %v", ps, err)
	}
	if _, err := s.Get("good"); err != nil {
		t.Errorf("the sound volume: %v", err)
	}
}
