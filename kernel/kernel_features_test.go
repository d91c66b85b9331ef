package kernel

import "testing"

func TestHasNetwork(t *testing.T) {
	for _, c := range []struct {
		features []string
		want     bool
	}{
		{nil, true}, // unknown: a distribution kernel has everything
		{[]string{}, false},
		{[]string{"blk"}, false},
		{[]string{"blk", "net"}, true},
	} {
		if got := (&Kernel{Features: c.features}).HasNetwork(); got != c.want {
			t.Errorf("HasNetwork(%v) = %v, want %v", c.features, got, c.want)
		}
	}
}
