package home

import (
	"path/filepath"
	"testing"
)

func TestDefault(t *testing.T) {
	t.Setenv("NOS_HOME", "/srv/nos")
	if l, err := Default(); err != nil || l.Root != "/srv/nos" {
		t.Errorf("NOS_HOME: %+v, %v", l, err)
	}
	t.Setenv("NOS_HOME", "")
	t.Setenv("XDG_DATA_HOME", "/x")
	if l, _ := Default(); l.Root != "/x/nos" {
		t.Errorf("XDG_DATA_HOME: %s", l.Root)
	}
	t.Setenv("XDG_DATA_HOME", "relative") // ignored, as the spec says
	t.Setenv("HOME", "/home/u")
	if l, _ := Default(); l.Root != "/home/u/.local/share/nos" {
		t.Errorf("HOME: %s", l.Root)
	}
}

func TestLayout(t *testing.T) {
	l := Layout{Root: "/h"}
	for got, want := range map[string]string{
		l.Images(): "/h/images", l.Instances(): "/h/instances", l.Cache(): "/h/cache",
		l.FetchedKernels(): "/h/cache/kernels", l.BuiltKernels(): "/h/cache/kernels-built",
		l.UnpackedKernels(): filepath.Join("/h", "cache", "kernels-unpacked"),
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}
