package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseOneLineSources(t *testing.T) {
	content := `# a comment
deb-src http://mirror.invalid/debian bookworm main
deb http://mirror.invalid/debian bookworm main contrib # trailing comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://other.invalid/debian bookworm-updates main
deb [ arch=amd64 ] http://third.invalid/debian trixie main
   deb    http://spaced.invalid/debian   bookworm-security main
deb http://short.invalid/debian
deb [unterminated http://bad.invalid/debian bookworm main
`
	got := parseOneLineSources(content, "sources.list")
	want := []aptSource{
		{URI: "http://mirror.invalid/debian", Suite: "bookworm", Origin: "sources.list:3"},
		{URI: "https://other.invalid/debian", Suite: "bookworm-updates", Origin: "sources.list:4"},
		{URI: "http://third.invalid/debian", Suite: "trixie", Origin: "sources.list:5"},
		{URI: "http://spaced.invalid/debian", Suite: "bookworm-security", Origin: "sources.list:6"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d sources %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("source %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseDeb822Sources(t *testing.T) {
	content := `Types: deb deb-src
# a comment inside the stanza
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

types: deb-src
uris: http://src-only.invalid/debian
suites: bookworm

Types: deb
URIs: http://disabled.invalid/debian
Suites: bookworm
Enabled: no

Types: deb
URIs: http://one.invalid/debian
 http://two.invalid/debian
Suites: trixie
Components: main
`
	got := parseDeb822Sources(content, "debian.sources")
	want := []aptSource{
		{URI: "http://mirror.invalid/debian", Suite: "bookworm", Origin: "debian.sources: stanza at line 1"},
		{URI: "http://mirror.invalid/debian", Suite: "bookworm-updates", Origin: "debian.sources: stanza at line 1"},
		{URI: "http://one.invalid/debian", Suite: "trixie", Origin: "debian.sources: stanza at line 17"},
		{URI: "http://two.invalid/debian", Suite: "trixie", Origin: "debian.sources: stanza at line 17"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d sources %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("source %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestPickMirror(t *testing.T) {
	files := []aptFile{
		{"/etc/apt/sources.list", "# empty but for comments\n"},
		{"/etc/apt/sources.list.d/a.list", "deb http://updates.invalid/debian bookworm-updates main\n"},
		{"/etc/apt/sources.list.d/b.sources", "Types: deb\nURIs: http://disabled.invalid/debian\nSuites: bookworm\nEnabled: no\n\nTypes: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n"},
		{"/etc/apt/sources.list.d/c.list", "deb http://later.invalid/debian bookworm main\n"},
	}
	got, err := pickMirror(files, "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	if got.URI != "http://mirror.invalid/debian" || got.Suite != "bookworm" {
		t.Errorf("got %+v, want the enabled bookworm source of b.sources", got)
	}
	if _, err := pickMirror(files, "trixie"); err == nil {
		t.Error("no trixie source: want an error")
	}
}

func TestOSReleaseValue(t *testing.T) {
	osr := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	if got := osReleaseValue(osr, "VERSION_CODENAME"); got != "bookworm" {
		t.Errorf("VERSION_CODENAME = %q", got)
	}
	if got := osReleaseValue(osr, "VERSION_ID"); got != "12" {
		t.Errorf("VERSION_ID = %q", got)
	}
	if got := osReleaseValue(osr, "MISSING"); got != "" {
		t.Errorf("MISSING = %q", got)
	}
}

// fakeProbe works from threshold MiB up and records the sizes tried.
type fakeProbe struct {
	threshold int
	tried     []int
}

func (f *fakeProbe) probe(_ context.Context, mib int) (bool, string, error) {
	f.tried = append(f.tried, mib)
	if mib >= f.threshold {
		return true, "", nil
	}
	return false, "too little", nil
}

func TestBisectMemory(t *testing.T) {
	for _, tc := range []struct {
		name             string
		lo, hi, floor    int
		threshold        int
		wantMin, wantLow int
		wantTried        bool
		wantFloorHit     bool
	}{
		{"middle", 8, 512, 0, 100, 100, 99, true, false},
		{"just above low", 8, 512, 0, 9, 9, 8, false, false},
		{"high is the minimum", 8, 512, 0, 512, 512, 511, true, false},
		{"floor bounds the search", 8, 512, 32, 20, 32, 31, false, true},
		{"above the floor", 8, 512, 32, 40, 40, 39, true, false},
		{"floor below low", 16, 64, 8, 30, 30, 29, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeProbe{threshold: tc.threshold}
			res, err := bisectMemory(context.Background(), tc.lo, tc.hi, tc.floor, f.probe)
			if err != nil {
				t.Fatal(err)
			}
			if res.MinMiB != tc.wantMin || res.BelowMiB != tc.wantLow || res.BelowTried != tc.wantTried || res.FloorHit != tc.wantFloorHit {
				t.Errorf("got min %d, below %d (tried %v), floor hit %v; want %d, %d (%v), %v",
					res.MinMiB, res.BelowMiB, res.BelowTried, res.FloorHit, tc.wantMin, tc.wantLow, tc.wantTried, tc.wantFloorHit)
			}
			if f.tried[0] != tc.hi {
				t.Errorf("first size tried %d, want the high end %d", f.tried[0], tc.hi)
			}
			if len(res.Probes) != len(f.tried) {
				t.Errorf("%d probes recorded, %d tried", len(res.Probes), len(f.tried))
			}
			for _, p := range res.Probes {
				if tc.floor > 0 && p.MiB < tc.floor {
					t.Errorf("tried %d MiB, below the floor %d", p.MiB, tc.floor)
				}
				if p.OK != (p.MiB >= tc.threshold) {
					t.Errorf("probe %+v recorded wrongly", p)
				}
			}
			// A bisection of (lo, hi] needs about log2(hi-lo) probes.
			if len(f.tried) > 11 {
				t.Errorf("%d probes for a range of %d", len(f.tried), tc.hi-tc.lo)
			}
		})
	}
}

func TestBisectMemoryErrors(t *testing.T) {
	f := &fakeProbe{threshold: 1000}
	if _, err := bisectMemory(context.Background(), 8, 512, 0, f.probe); err == nil || !strings.Contains(err.Error(), "512") {
		t.Errorf("high end fails: got %v, want an error naming 512 MiB", err)
	}
	boom := errors.New("boom")
	calls := 0
	_, err := bisectMemory(context.Background(), 8, 512, 0, func(context.Context, int) (bool, string, error) {
		calls++
		if calls == 3 {
			return false, "", boom
		}
		return true, "", nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("probe error: got %v, want it passed on", err)
	}
	if _, err := bisectMemory(context.Background(), 64, 32, 0, f.probe); err == nil {
		t.Error("high below low: want an error")
	}
}

func TestAllOf(t *testing.T) {
	var boots []int
	boot := func(_ context.Context, mib int) (bootOutcome, error) {
		boots = append(boots, mib)
		if mib < 64 && len(boots) == 2 {
			return bootOutcome{Note: "kernel panic"}, nil
		}
		return bootOutcome{OK: true, Took: time.Second}, nil
	}
	p := allOf(3, boot, nil)
	ok, note, err := p(context.Background(), 32)
	if err != nil || ok || note != "boot 2/3: kernel panic" || len(boots) != 2 {
		t.Errorf("got ok %v, note %q, err %v after %d boots; want the second boot's failure to end it", ok, note, err, len(boots))
	}
	boots = nil
	ok, _, err = p(context.Background(), 128)
	if err != nil || !ok || len(boots) != 3 {
		t.Errorf("got ok %v, err %v after %d boots; want 3 good boots", ok, err, len(boots))
	}
}

func TestProbeTimeout(t *testing.T) {
	if got := probeTimeout(2*time.Second, 30*time.Second); got != 30*time.Second {
		t.Errorf("fast variant: %v, want the 30 s least", got)
	}
	if got := probeTimeout(40*time.Second, 30*time.Second); got != 160*time.Second {
		t.Errorf("slow variant: %v, want 4× its median", got)
	}
}

func TestFmtRatio(t *testing.T) {
	for r, want := range map[float64]string{
		0.1:    "0.1 = 1/10",
		0.0512: "0.0512 = 1/19.5",
		1.25:   "1.25",
		0:      "n/a",
	} {
		if got := fmtRatio(r); got != want {
			t.Errorf("fmtRatio(%g) = %q, want %q", r, got, want)
		}
	}
}

func fakeVariant(id string, bootMs float64, size int64, mem *memResult) *cmpVariantReport {
	return &cmpVariantReport{ID: id, Name: "variant " + id, Boot: summary{Median: bootMs, Min: bootMs, Max: bootMs, N: 1, Values: []float64{bootMs}},
		Size: cmpSize{Bytes: size, What: "total"}, Memory: mem}
}

func TestRatiosAndTargets(t *testing.T) {
	a := fakeVariant("a", 2000, 4<<20, &memResult{MinMiB: 32, BelowMiB: 31, Floor: 32, FloorHit: true})
	c := fakeVariant("c", 30000, 400<<20, &memResult{MinMiB: 160, BelowMiB: 159, BelowTried: true})
	d := fakeVariant("d", 1600, 3<<20, &memResult{MinMiB: 20, BelowMiB: 19, BelowTried: true})
	rs := compareRatios(a, c, d)
	if len(rs) != 2 || rs[0].Name != "a/c" || rs[1].Name != "a/d" {
		t.Fatalf("ratios %+v", rs)
	}
	if rs[0].Boot != 2000.0/30000 || rs[0].Size != 0.01 || rs[0].Memory != 0.2 || !rs[0].MemoryAtMost {
		t.Errorf("a/c = %+v", rs[0])
	}
	if rs[1].Boot != 1.25 || rs[1].Memory != 1.6 {
		t.Errorf("a/d = %+v", rs[1])
	}
	ts := evaluateTargets(a, c, d)
	want := []struct{ verdict, detail string }{
		{"met", "c/a = 15.0×"},
		{"met", "a/d = 1.25×"},
		{"missed", "nos's floor"},
		{"met", "c/a = 100.0×"},
	}
	for i, w := range want {
		if ts[i].Verdict != w.verdict || !strings.Contains(ts[i].Detail, w.detail) {
			t.Errorf("target %q: %s, %q; want %s, containing %q", ts[i].Target, ts[i].Verdict, ts[i].Detail, w.verdict, w.detail)
		}
	}

	// Missed, and by how much.
	a = fakeVariant("a", 5000, 20<<20, &memResult{MinMiB: 40, BelowMiB: 39, BelowTried: true})
	ts = evaluateTargets(a, c, d)
	for i, w := range []struct{ verdict, detail string }{
		{"missed", "c/a = 6.0×, 1.7× short: a would need ≤ 3.00 s, it took 5.00 s (2.00 s too slow)"},
		{"missed", "a/d = 3.12×: a would need ≤ 2.40 s, it took 5.00 s (2.60 s too slow)"},
		{"missed", "40 MiB (39 MiB failed), 16 MiB over"},
		{"missed", "c/a = 20.0×, 1.5× short: a would need ≤ 13.3 MiB, it is 20.0 MiB (6.7 MiB too big)"},
	} {
		if ts[i].Verdict != w.verdict || ts[i].Detail != w.detail {
			t.Errorf("target %q: %s, %q; want %s, %q", ts[i].Target, ts[i].Verdict, ts[i].Detail, w.verdict, w.detail)
		}
	}
	a.Memory = &memResult{MinMiB: 24, BelowMiB: 23, BelowTried: true}
	if ts := evaluateTargets(a, c, d); ts[2].Verdict != "met" {
		t.Errorf("24 MiB: %+v, want met", ts[2])
	}
	a.Memory = nil
	if ts := evaluateTargets(a, c, d); ts[2].Verdict != "not measured" {
		t.Errorf("no memory search: %+v", ts[2])
	}
}

func TestMemText(t *testing.T) {
	for _, tc := range []struct {
		m    *memResult
		want string
	}{
		{nil, "not measured"},
		{&memResult{MinMiB: 32, BelowMiB: 31, Floor: 32, FloorHit: true}, "32 MiB (nos's floor: run -m refuses less)"},
		{&memResult{MinMiB: 100, BelowMiB: 99, BelowTried: true}, "100 MiB (99 fails)"},
		{&memResult{MinMiB: 9, BelowMiB: 8}, "9 MiB (8 assumed to fail, not tried)"},
	} {
		if got := memText(tc.m); got != tc.want {
			t.Errorf("memText(%+v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestWriteCompareTable(t *testing.T) {
	a := fakeVariant("a", 2000, 4<<20, &memResult{MinMiB: 32, BelowMiB: 31, Floor: 32, FloorHit: true, Boots: 3, Timeout: 30000,
		Probes: []sizeTried{{MiB: 512, OK: true}, {MiB: 271, OK: true}}})
	c := fakeVariant("c", 30000, 400<<20, &memResult{MinMiB: 160, BelowMiB: 159, BelowTried: true, Boots: 3, Timeout: 120000,
		Probes: []sizeTried{{MiB: 512, OK: true}, {MiB: 159, Note: "boot 1/3: kernel panic"}}})
	c.Conventional = &convInfo{Suite: "bookworm", Packages: "minbase + udev"}
	d := fakeVariant("d", 1600, 3<<20, &memResult{MinMiB: 20, BelowMiB: 19, BelowTried: true, Boots: 3, Timeout: 30000})
	rep := &compareReport{Runs: 1, App: appPkg, AppBinary: appBinary{SHA256: strings.Repeat("ab", 32)},
		Variants: []cmpVariantReport{*a, *c, *d}, Ratios: compareRatios(a, c, d), Targets: evaluateTargets(a, c, d)}
	var buf bytes.Buffer
	if err := writeCompareTable(&buf, rep); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"Boot, 1 runs", "30.00 s", "32 MiB (nos's floor", "a/c", "0.0667 = 1/15", "≤ 0.2 = 1/5",
		"minimum memory of a ≤ 24 MiB: MISSED.", "159 failed (boot 1/3: kernel panic)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// The floor's init writes the marker the benchmark waits for.
func TestFloorMarker(t *testing.T) {
	b, err := os.ReadFile("floorinit/main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `const Marker = "`+floorMarker+`"`) {
		t.Errorf("floorinit/main.go does not write %q", floorMarker)
	}
}

func TestSerialWatch(t *testing.T) {
	w := newSerialWatch("ready!")
	w.Write([]byte("booting...\nrea"))
	if closed(w.ready) {
		t.Fatal("ready before the marker")
	}
	w.Write([]byte("dy!\n[ 1.0] Kernel pa"))
	if !closed(w.ready) || w.readyTime().IsZero() {
		t.Error("marker straddling two writes not seen")
	}
	w.Write([]byte("nic - not syncing: Out of memory\n"))
	if !closed(w.panic) {
		t.Error("panic straddling two writes not seen")
	}
	if got := lastLineWith(w.String(), panicText); got != "[ 1.0] Kernel panic - not syncing: Out of memory" {
		t.Errorf("panic line %q", got)
	}
}

func TestParseMountsUnder(t *testing.T) {
	mi := `22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:5 / /cache/.build-1/rootfs/proc rw - proc proc rw
31 22 0:6 / /cache/.build-1/rootfs/sys rw - sysfs sysfs rw
32 30 0:7 / /cache/.build-1/rootfs/proc/sys/fs/binfmt_misc rw - binfmt_misc x rw
33 22 0:8 / /cache/.build-10/rootfs/proc rw - proc proc rw
34 22 0:9 / /cache/with\040space rw - tmpfs tmpfs rw
`
	got := parseMountsUnder(mi, "/cache/.build-1")
	want := []string{"/cache/.build-1/rootfs/proc/sys/fs/binfmt_misc", "/cache/.build-1/rootfs/proc", "/cache/.build-1/rootfs/sys"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %q, want %q (deepest first, not .build-10)", got, want)
	}
	if got := parseMountsUnder(mi, "/cache/with space"); len(got) != 1 {
		t.Errorf("escaped mount point: got %q", got)
	}
}

func TestConvKey(t *testing.T) {
	k := convKey("r1", "bookworm", []string{"a", "b"})
	if len(k) != 24 || k != convKey("r1", "bookworm", []string{"a", "b"}) {
		t.Errorf("key %q not stable", k)
	}
	for _, other := range []string{convKey("r2", "bookworm", []string{"a", "b"}), convKey("r1", "trixie", []string{"a", "b"}), convKey("r1", "bookworm", []string{"a"})} {
		if other == k {
			t.Error("key does not depend on recipe, suite and packages")
		}
	}
}
