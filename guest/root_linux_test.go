package guest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/guestapi"
)

func TestRootMounts(t *testing.T) {
	const ro = unix.MS_RDONLY | unix.MS_NODEV
	cases := []struct {
		name string
		root guestapi.Root
		want []mount
	}{
		{"read-only", guestapi.Root{Device: "/dev/vda", FSType: "erofs"}, []mount{
			{Source: "/dev/vda", Target: "/newroot", FSType: "erofs", Flags: ro, Mode: 0o755},
		}},
		{"writable, default size", guestapi.Root{Device: "/dev/vda", FSType: "erofs", Writable: true}, []mount{
			{Source: "/dev/vda", Target: "/lower", FSType: "erofs", Flags: ro, Mode: 0o755},
			{Source: "tmpfs", Target: "/overlay", FSType: "tmpfs", Flags: unix.MS_NODEV, Data: "mode=0755,size=25%", Mode: 0o755},
			{Source: "overlay", Target: "/newroot", FSType: "overlay", Flags: unix.MS_NODEV, Mode: 0o755,
				Data: "lowerdir=/lower,upperdir=/overlay/upper,workdir=/overlay/work"},
		}},
		{"writable, capped", guestapi.Root{Device: "/dev/vdb", FSType: "erofs", Writable: true, TmpfsSize: 8 << 20}, []mount{
			{Source: "/dev/vdb", Target: "/lower", FSType: "erofs", Flags: ro, Mode: 0o755},
			{Source: "tmpfs", Target: "/overlay", FSType: "tmpfs", Flags: unix.MS_NODEV, Data: "mode=0755,size=8388608", Mode: 0o755},
			{Source: "overlay", Target: "/newroot", FSType: "overlay", Flags: unix.MS_NODEV, Mode: 0o755,
				Data: "lowerdir=/lower,upperdir=/overlay/upper,workdir=/overlay/work"},
		}},
		{"shared, writable", guestapi.Root{Tag: "nos-root", Writable: true}, []mount{
			{Source: "nos-root", Target: "/newroot", FSType: "virtiofs", Flags: unix.MS_NODEV, Mode: 0o755},
		}},
		{"shared, read-only", guestapi.Root{Tag: "nos-root"}, []mount{
			{Source: "nos-root", Target: "/newroot", FSType: "virtiofs", Flags: ro, Mode: 0o755},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, rootMounts(&tc.root)); diff != "" {
				t.Errorf("rootMounts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTmpfsMounts(t *testing.T) {
	const fl = unix.MS_NOSUID | unix.MS_NODEV
	got, err := tmpfsMounts([]guestapi.Tmpfs{{Path: "/scratch", Size: 1 << 20}, {Path: "/var/cache/app", Mode: 0o700}})
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{Source: "tmpfs", Target: "/scratch", FSType: "tmpfs", Flags: fl, Data: "mode=1777,size=1048576", Mode: 0o755},
		{Source: "tmpfs", Target: "/var/cache/app", FSType: "tmpfs", Flags: fl, Data: "mode=0700", Mode: 0o755},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tmpfsMounts (-want +got):\n%s", diff)
	}
	for _, p := range []string{"", "scratch", "/", "/a/../b", "/a/", "//a", "/proc", "/sys/fs", "/dev/shm"} {
		if _, err := tmpfsMounts([]guestapi.Tmpfs{{Path: p}}); !errors.Is(err, guestapi.ErrTmpfsPath) {
			t.Errorf("tmpfsMounts(%q) = %v, want ErrTmpfsPath", p, err)
		}
	}
}
