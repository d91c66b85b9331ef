package kbuild

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nosproject/nos/kernel"
)

func TestParseFeatures(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
		err  string
	}{
		{[]string{"net"}, []string{"net"}, ""},
		{[]string{"vsock,NET", "blk"}, []string{"blk", "net", "vsock"}, ""},
		{[]string{"none"}, []string{}, ""},
		{[]string{"none,net"}, nil, "cannot be combined"},
		{[]string{"none", "net"}, nil, "cannot be combined"},
		{[]string{"gpu"}, nil, `unknown kernel feature "gpu"`},
	} {
		got, err := ParseFeatures(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseFeatures(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got == nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParseFeatures(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

func TestSelectorFor(t *testing.T) {
	c := Cache{Dir: t.TempDir()}
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	builtEntry(t, c, id('a'), "net")
	builtEntry(t, c, id('b'), "blk", "net")
	empty := t.TempDir() // no fetched kernels, no host kernels
	sel := Selector{Built: c, FetchedDir: empty, BootDir: empty}
	ctx := context.Background()

	// The default chain: the built kernel with the features.
	if k, err := sel.For([]string{"net"}).Find(ctx); err != nil || k.Path != filepath.Join(c.Dir, id('a'), "bzImage") {
		t.Errorf("default for net = %+v, %v; want a", k, err)
	}
	if _, err := sel.For([]string{"vsock"}).Find(ctx); !errors.Is(err, kernel.ErrNoKernel) {
		t.Errorf("default for vsock = %v, want ErrNoKernel", err)
	}

	// --kernel ID, and a copy of a built kernel's file, which keeps its features.
	named := sel
	named.Named = id('b')[:8]
	if k, err := named.For([]string{"net"}).Find(ctx); err != nil || !slices.Equal(k.Features, []string{"blk", "net"}) {
		t.Errorf("--kernel ID = %+v, %v; want b", k, err)
	}
	cp := filepath.Join(t.TempDir(), "copy")
	if b, err := os.ReadFile(filepath.Join(c.Dir, id('a'), "bzImage")); err != nil || os.WriteFile(cp, b, 0o644) != nil {
		t.Fatal(err)
	}
	named.Named = cp
	if k, err := named.For([]string{"net"}).Find(ctx); err != nil || k.Origin != OriginBuilt || !slices.Equal(k.Features, []string{"net"}) {
		t.Errorf("--kernel copy of a = %+v, %v; want a's features", k, err)
	}
	// With --features, the named kernel must have them.
	named.Explicit = true
	if _, err := named.For([]string{"blk", "net"}).Find(ctx); err == nil || !strings.Contains(err.Error(), "lacks the features blk") {
		t.Errorf("--kernel without a feature asked for: %v", err)
	}

	// Explicit features: a built kernel that has them, else one built now.
	var progress bytes.Buffer
	var asked [][]string
	explicit := Selector{Built: c, Explicit: true, Progress: &progress,
		Build: func(_ context.Context, features []string) (*kernel.Kernel, error) {
			asked = append(asked, features)
			return &kernel.Kernel{Path: "/new/bzImage", Features: features}, nil
		}}
	if k, err := explicit.For([]string{"blk", "net"}).Find(ctx); err != nil || k.Path != filepath.Join(c.Dir, id('b'), "bzImage") || len(asked) != 0 {
		t.Errorf("explicit blk,net = %+v, %v (built %q); want b, nothing built", k, err, asked)
	}
	if k, err := explicit.For([]string{"net", "vsock"}).Find(ctx); err != nil || k.Path != "/new/bzImage" {
		t.Errorf("explicit net,vsock = %+v, %v; want the kernel built", k, err)
	}
	if !slices.EqualFunc(asked, [][]string{{"net", "vsock"}}, slices.Equal) || !strings.Contains(progress.String(), "building one") {
		t.Errorf("built %q, progress %q", asked, progress.String())
	}
	failing := explicit
	failing.Build = func(context.Context, []string) (*kernel.Kernel, error) { return nil, errors.New("no compiler") }
	if _, err := failing.For([]string{"vsock"}).Find(ctx); err == nil || !strings.Contains(err.Error(), "building a kernel with the features vsock: no compiler") {
		t.Errorf("failed build: %v", err)
	}
}
