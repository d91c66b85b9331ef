package units

import "testing"

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in    string
		plain float64
		want  float64
	}{
		{"256m", 1, 256 << 20}, {"1g", 1, 1 << 30}, {"1GiB", 1, 1 << 30}, {"2KB", 1, 2048}, {"1.5t", 1, 1.5 * (1 << 40)},
		{"512", 1, 512}, {"512", 1 << 20, 512 << 20}, {" 64M ", 1, 64 << 20},
	} {
		if got, why := Parse(c.in, c.plain); why != "" || got != c.want {
			t.Errorf("Parse(%q, %v) = %v, %q; want %v", c.in, c.plain, got, why, c.want)
		}
	}
	for _, bad := range []string{"", "0", "-1m", "1x", "m", "NaN", "ten"} {
		if _, why := Parse(bad, 1); why == "" {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
