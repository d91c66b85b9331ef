package image

import (
	"strings"
	"testing"
)

func TestParsePort(t *testing.T) {
	cases := []struct {
		in   string
		want string // "" means an error
	}{
		{"80", "80/tcp"},
		{"80/tcp", "80/tcp"},
		{"53/udp", "53/udp"},
		{"443/TCP", "443/tcp"},
		{"53/Udp", "53/udp"},
		{"1", "1/tcp"},
		{"65535/udp", "65535/udp"},
		{"080", "80/tcp"},

		{"", ""},
		{"/tcp", ""},
		{"80/", ""},
		{"0", ""},
		{"0/udp", ""},
		{"65536", ""},
		{"-1", ""},
		{"http", ""},
		{"80/sctp", ""},
		{"80/tcp/udp", ""},
		{" 80", ""},
		{"80 ", ""},
		{"80:80", ""},
		{"99999999999999999999", ""},
	}
	for _, tc := range cases {
		got, err := ParsePort(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParsePort(%q) = %q, want an error", tc.in, got)
			} else if !strings.Contains(err.Error(), "1-65535") {
				t.Errorf("ParsePort(%q) error %q does not say what is wanted", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePort(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestIsInitramfs(t *testing.T) {
	for mt, want := range map[string]bool{
		MediaTypeInitramfs:                           true,
		MediaTypeInitramfsGzip:                       true, // images built before 2026-12-04
		MediaTypeKernel:                              false,
		MediaTypeRootErofs:                           false,
		"application/vnd.nos.initramfs.v1.cpio+zstd": false,
	} {
		if got := IsInitramfs(mt); got != want {
			t.Errorf("IsInitramfs(%q) = %v, want %v", mt, got, want)
		}
	}
}
