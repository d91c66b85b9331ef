package kernel

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"6.1.0-56-cloud-amd64", "6.1.0-9-cloud-amd64", 1},
		{"6.1.0-9-cloud-amd64", "6.1.0-56-cloud-amd64", -1},
		{"6.10.0", "6.9.0", 1},
		{"5.10.0-30-amd64", "6.1.0-1-amd64", -1},
		{"6.1.0-56-cloud-amd64", "6.1.0-56-cloud-amd64", 0},
		{"6.1", "6.1.0", -1},
		{"6.1.0", "6.1", 1},
		{"6.1.0-56-amd64", "6.1.0-56-cloud-amd64", -1},
		{"6.01", "6.1", 0},
		{"6.1.100000000000000000000001", "6.1.99999999999999999999999", 1},
		{"6", "abc", 1},
		{"abc", "6", -1},
		{"", "", 0},
		{"", "1", -1},
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSortNewestFirst(t *testing.T) {
	got := []string{"6.1.0-9-amd64", "5.10.0-30-amd64", "6.1.0-56-amd64", "6.1.0-10-amd64"}
	sortNewestFirst(got)
	want := []string{"6.1.0-56-amd64", "6.1.0-10-amd64", "6.1.0-9-amd64", "5.10.0-30-amd64"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
