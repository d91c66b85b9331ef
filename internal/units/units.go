// Package units reads sizes as nos's flags take them: a number with an
// optional unit k, m, g or t (powers of 1024; an optional "b" or "ib";
// case-insensitive), as docker's -m, --tmpfs size= and volume sizes do.
package units

import (
	"strconv"
	"strings"
)

// Parse reads a positive size; plain is the unit of a bare number (1 for
// bytes, 1<<20 for MiB). It returns bytes, or why it cannot.
func Parse(s string, plain float64) (float64, string) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := plain
	if t != "" {
		if c := t[len(t)-1]; c < '0' || c > '9' {
			switch c {
			case 'k':
				mult = 1 << 10
			case 'm':
				mult = 1 << 20
			case 'g':
				mult = 1 << 30
			case 't':
				mult = 1 << 40
			default:
				return 0, "not a positive size with a unit k, m, g or t (found " + strconv.Quote(string(c)) + ")"
			}
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v != v {
		return 0, "not a positive size"
	}
	return v * mult, ""
}
