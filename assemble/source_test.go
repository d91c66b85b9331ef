package assemble

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestDetectProgram: a static program is a static source, anything else
// that is a file but no program nos can run is refused.
func TestDetectProgram(t *testing.T) {
	dir := t.TempDir()
	static := goBuildTiny(t, t.TempDir(), "amd64")
	got, err := detect(Options{Source: static})
	if err != nil || !reflect.DeepEqual(got, &staticSource{path: static}) {
		t.Errorf("detect(static program) = %#v, %v", got, err)
	}
	got, err = detect(Options{Source: writeFile(t, dir, "interp", minimalELF(true))})
	if _, ok := got.(*dynamicSource); err != nil || !ok {
		t.Errorf("detect(ELF with an interpreter) = %#v, %v; want a dynamic source", got, err)
	}
	for name, b := range map[string][]byte{"script.sh": []byte("#!/bin/sh\n"), "arm64": mustRead(t, goBuildTiny(t, t.TempDir(), "arm64"))} {
		p := writeFile(t, dir, name, b)
		if got, err := detect(Options{Source: p}); !errors.Is(err, ErrNotELF) && !errors.Is(err, ErrWrongArch) {
			t.Errorf("detect(%s) = %#v, %v; want it refused", name, got, err)
		}
	}
}

func TestKernelNeeds(t *testing.T) {
	for _, tc := range []struct {
		asked []string
		l     Layout
		want  []string
		err   string
	}{
		{nil, InInitramfs, []string{"net"}, ""},
		{nil, OnRootDisk, []string{"blk", "net"}, ""},
		{[]string{}, InInitramfs, []string{}, ""},
		{[]string{"blk"}, OnRootDisk, []string{"blk"}, ""},
		{[]string{"net"}, OnRootDisk, nil, "root disk, which needs the blk feature"},
	} {
		got, err := kernelNeeds(Options{Needs: tc.asked}, tc.l)
		if tc.err != "" {
			if !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("kernelNeeds(%q, %v) = %q, %v; want error %q", tc.asked, tc.l, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("kernelNeeds(%q, %v) = %q, %v; want %q", tc.asked, tc.l, got, err, tc.want)
		}
	}
}

// TestCheckInitDynamic: a nos-init built with cgo is refused with what to
// run, and the reason said once.
func TestCheckInitDynamic(t *testing.T) {
	p := writeFile(t, t.TempDir(), "nos-init", minimalELF(true))
	err := checkInit(p)
	if !errors.Is(err, ErrDynamicELF) {
		t.Fatalf("checkInit(dynamic) = %v, want ErrDynamicELF", err)
	}
	msg := err.Error()
	want := "nos-init at " + p + " is dynamically linked (built with cgo): rebuild it static with `CGO_ENABLED=0 go install github.com/nosproject/nos/cmd/nos-init` or `make install`"
	if msg != want {
		t.Errorf("message\n%s\nwant\n%s", msg, want)
	}
	if strings.Count(msg, "dynamically linked") != 1 {
		t.Errorf("message %q says 'dynamically linked' more than once", msg)
	}
	if err := checkInit(writeFile(t, t.TempDir(), "nos-init", minimalELF(false))); err != nil {
		t.Errorf("checkInit(static) = %v", err)
	}
	if err := checkInit(""); !errors.Is(err, ErrInitMissing) {
		t.Errorf("checkInit(\"\") = %v, want ErrInitMissing", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
