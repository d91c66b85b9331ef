package kernel

import "strings"

// compareVersions orders kernel releases such as "6.1.0-56-cloud-amd64":
// runs of digits compare numerically, everything else bytewise, so
// "6.1.0-56" > "6.1.0-9" and "6.10" > "6.9". It returns -1, 0 or +1.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		var ta, tb string
		ta, a = nextToken(a)
		tb, b = nextToken(b)
		if c := compareTokens(ta, tb); c != 0 {
			return c
		}
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	default:
		return 1
	}
}

// nextToken splits off the leading run of digits or of non-digits.
func nextToken(s string) (tok, rest string) {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareTokens(a, b string) int {
	da, db := isDigit(a[0]), isDigit(b[0])
	switch {
	case da && db:
		return compareNumbers(a, b)
	case da: // only at the start: "6" > "abc"
		return 1
	case db:
		return -1
	}
	return strings.Compare(a, b)
}

// compareNumbers compares decimal digit strings of any length.
func compareNumbers(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
