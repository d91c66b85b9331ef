package instance

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
)

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64 // 0: an error
	}{
		{"1", 1}, {"4096", 4096}, {"1k", 1 << 10}, {"1m", 1 << 20}, {"64M", 64 << 20}, {"1g", 1 << 30},
		{"2GiB", 2 << 30}, {"512kb", 512 << 10}, {"1.5m", 3 << 19}, {"1t", 1 << 40},
		{"", 0}, {"0", 0}, {"-1m", 0}, {"lots", 0}, {"10%", 0}, {"5t", 0}, {"NaN", 0}, {"0.1", 0},
	}
	for _, tc := range cases {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.want == 0 {
				if err == nil || !errors.Is(err, ErrBadFlag) {
					t.Errorf("ParseSize(%q) = %d, %v; want an ErrBadFlag", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseTmpfs(t *testing.T) {
	cases := []struct {
		in      string
		want    guestapi.Tmpfs
		wantErr string
	}{
		{in: "/scratch", want: guestapi.Tmpfs{Path: "/scratch"}},
		{in: "/scratch:size=1m", want: guestapi.Tmpfs{Path: "/scratch", Size: 1 << 20}},
		{in: "/var/cache:mode=700,size=64k", want: guestapi.Tmpfs{Path: "/var/cache", Size: 64 << 10, Mode: 0o700}},
		{in: "/run/app:mode=1777", want: guestapi.Tmpfs{Path: "/run/app", Mode: 0o1777}},
		{in: "scratch", wantErr: "absolute"},
		{in: "/", wantErr: "absolute"},
		{in: "/a/", wantErr: "absolute"},
		{in: "/a/../b", wantErr: "absolute"},
		{in: "/dev/shm", wantErr: "outside /proc"},
		{in: ":size=1m", wantErr: "absolute"},
		{in: "/a:size=", wantErr: "size="},
		{in: "/a:size=0", wantErr: "size=0"},
		{in: "/a:mode=8", wantErr: "mode=8"},
		{in: "/a:mode=17777", wantErr: "mode=17777"},
		{in: "/a:ro", wantErr: `unknown option "ro"`},
		{in: "/a:size=1m,,mode=1777", wantErr: `unknown option ""`},
	}
	for _, tc := range cases {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			got, err := ParseTmpfs(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadFlag) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseTmpfs(%q) = %+v, %v; want an ErrBadFlag containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTmpfs(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseTmpfs(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestRootMode(t *testing.T) {
	disk := image.Config{RootFS: "erofs", InitAPI: image.InitAPI}
	initramfs := image.Config{InitAPI: image.InitAPI}
	oldDisk := image.Config{RootFS: "erofs", InitAPI: image.InitAPIProbes}
	scratch := []guestapi.Tmpfs{{Path: "/scratch"}}
	cases := []struct {
		name         string
		o            Options
		img          image.Config
		wantWritable bool
		wantNote     string
		wantErr      string
	}{
		{name: "root disk: writable by default", img: disk, wantWritable: true},
		{name: "root disk, --tmpfs-size", o: Options{RootTmpfsSize: 1 << 20}, img: disk, wantWritable: true},
		{name: "root disk, --read-only", o: Options{ReadOnlyRoot: true}, img: disk},
		{name: "--read-only and --tmpfs-size", o: Options{ReadOnlyRoot: true, RootTmpfsSize: 1 << 20}, img: disk, wantErr: "conflict"},
		{name: "initramfs", img: initramfs},
		{name: "initramfs, --tmpfs", o: Options{Tmpfs: scratch}, img: initramfs},
		{name: "initramfs, --read-only", o: Options{ReadOnlyRoot: true}, img: initramfs, wantErr: "has no root disk"},
		{name: "initramfs, --tmpfs-size", o: Options{RootTmpfsSize: 1 << 20}, img: initramfs, wantErr: "has no root disk"},
		{name: "older init: read-only, with a note", img: oldDisk, wantNote: "keeps the root read-only"},
		{name: "older init, --read-only", o: Options{ReadOnlyRoot: true}, img: oldDisk},
		{name: "older init, --tmpfs", o: Options{Tmpfs: scratch}, img: oldDisk, wantErr: "older nos"},
		{name: "older init, --tmpfs-size", o: Options{RootTmpfsSize: 1 << 20}, img: oldDisk, wantErr: "older nos"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Image = "img"
			w, note, err := rootMode(tc.o, tc.img)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadFlag) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("rootMode = %v, %q, %v; want an ErrBadFlag containing %q", w, note, err, tc.wantErr)
				}
				return
			}
			if err != nil || w != tc.wantWritable || (tc.wantNote == "") != (note == "") || !strings.Contains(note, tc.wantNote) {
				t.Errorf("rootMode = %v, %q, %v; want %v, a note containing %q", w, note, err, tc.wantWritable, tc.wantNote)
			}
		})
	}
}
