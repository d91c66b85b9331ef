package jail

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestCgroupNames(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "a/b", "x\x00"} {
		if _, err := NewCgroup(bad, Limits{}); err == nil {
			t.Errorf("NewCgroup(%q) accepted", bad)
		}
	}
}

func TestRlimitsInherited(t *testing.T) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		t.Fatal(err)
	}
	if !(Rlimits{OpenFiles: cur.Max}).Inherited() {
		t.Errorf("limits equal to our own hard limit %d are inherited", cur.Max)
	}
	if cur.Max > 1 && (Rlimits{OpenFiles: cur.Max - 1}).Inherited() {
		t.Errorf("a limit below our own hard limit cannot be inherited")
	}
	if !(Rlimits{}).Inherited() {
		t.Error("no limits are trivially inherited")
	}
}
