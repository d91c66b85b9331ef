package store

import (
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseReference(t *testing.T) {
	type result struct {
		Name, Tag string
		Err       string // substring of the error, "" if none
	}
	long := strings.Repeat("a", 128)
	tests := []struct {
		ref  string
		want result
	}{
		{"hello", result{Name: "hello", Tag: "latest"}},
		{"hello:v1", result{Name: "hello", Tag: "v1"}},
		{"hello:V1.2_rc-3", result{Name: "hello", Tag: "V1.2_rc-3"}},
		{"hello:_x", result{Name: "hello", Tag: "_x"}},
		{"org/app/web:1.0", result{Name: "org/app/web", Tag: "1.0"}},
		{"a.b_c__d---e", result{Name: "a.b_c__d---e", Tag: "latest"}},
		{"0", result{Name: "0", Tag: "latest"}},
		{long, result{Name: long, Tag: "latest"}},
		{"a:" + strings.Repeat("T", 128), result{Name: "a", Tag: strings.Repeat("T", 128)}},
		{"sha256:abcd", result{Name: "sha256", Tag: "abcd"}},

		{"", result{Err: "empty name"}},
		{":v1", result{Err: "empty name"}},
		{"hello:", result{Err: "empty tag"}},
		{long + "a", result{Err: "name is 129 characters long"}},
		{"a:" + strings.Repeat("T", 129), result{Err: "tag is 129 characters long"}},
		{"Hello", result{Err: "name must be lowercase"}},
		{"hello world", result{Err: `invalid character ' ' in name`}},
		{"héllo", result{Err: `invalid character 'é' in name`}},
		{"hello@sha256:abcd", result{Err: `invalid character '@' in name`}},
		{"a//b", result{Err: "empty path component"}},
		{"/a", result{Err: "empty path component"}},
		{"a/", result{Err: "empty path component"}},
		{"-a", result{Err: `"-a" must start and end with a letter or digit`}},
		{"a.", result{Err: "must start and end with a letter or digit"}},
		{"a/_b", result{Err: "must start and end with a letter or digit"}},
		{"a..b", result{Err: `invalid separator ".."`}},
		{"a___b", result{Err: `invalid separator "___"`}},
		{"a._b", result{Err: `invalid separator "._"`}},
		{"a-.b", result{Err: `invalid separator "-."`}},
		{"a:b:c", result{Err: `invalid character ':' in name`}},
		{"host:5000/app", result{Name: "host:5000/app", Tag: "latest"}},
		{"127.0.0.1:5000/nos/web:v1", result{Name: "127.0.0.1:5000/nos/web", Tag: "v1"}},
		{"[::1]:5000/web", result{Name: "[::1]:5000/web", Tag: "latest"}},
		{"[::1]/web:1", result{Name: "[::1]/web", Tag: "1"}},
		{"my-reg.example.com:443/a", result{Name: "my-reg.example.com:443/a", Tag: "latest"}},
		{"host:5000", result{Name: "host", Tag: "5000"}},
		{"Host:5000/app", result{Err: `name must be lowercase`}},
		{"host:50a0/app", result{Err: `invalid character ':' in name`}},
		{"host:/app", result{Err: `invalid character ':' in name`}},
		{"-host:5000/app", result{Err: `invalid character ':' in name`}},
		{"[::1]:5000", result{Err: `invalid character '[' in name`}},
		{"[1.2.3.4]:5000/a", result{Err: `invalid character '[' in name`}},
		{"[::1]x/a", result{Err: `invalid character '[' in name`}},
		{"a/host:5000/app", result{Err: `invalid character ':' in name`}},
		{"a:.v", result{Err: `tag must not start with '.'`}},
		{"a:-v", result{Err: `tag must not start with '-'`}},
		{"a:v/1", result{Err: `invalid character ':' in name`}},
		{"a:v+1", result{Err: `invalid character '+' in tag`}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			var got result
			var err error
			got.Name, got.Tag, err = ParseReference(tt.ref)
			if err != nil {
				if !errors.Is(err, ErrInvalidReference) {
					t.Errorf("error %v does not wrap ErrInvalidReference", err)
				}
				got.Err = err.Error()
				if tt.want.Err != "" && strings.Contains(got.Err, tt.want.Err) {
					got.Err = tt.want.Err
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseReference(%q) mismatch (-want +got):\n%s", tt.ref, diff)
			}
		})
	}
}

// Independent definitions of valid references for FuzzParseReference.
var (
	nameComponent = `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`
	hostLabel     = `[a-z0-9](?:[a-z0-9-]*[a-z0-9])?`
	registryHost  = `(?:` + hostLabel + `(?:\.` + hostLabel + `)*:[0-9]{1,5}|\[([0-9A-Fa-f:.]+)\](?::[0-9]{1,5})?)/`
	validRef      = regexp.MustCompile(`^((?:` + registryHost + `)?` + nameComponent + `(?:/` + nameComponent + `)*)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?$`)
)

func FuzzParseReference(f *testing.F) {
	for _, seed := range []string{
		"hello", "hello:v1", "org/app:1.0", "127.0.0.1:5000/web:1", "[::1]:5000/a", "[::1]/a", "h:1/a/b:c", "[zz]:1/a", "a__b", "a---b:x", "A", "a:", ":a",
		"a//b", "a:b:c", "sha256:0123456789abcdef", "héllo:ü", "a\x00b", "a:\n",
		strings.Repeat("ab/", 50) + "c", "a:" + strings.Repeat("x", 200),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		name, tag, err := ParseReference(ref)
		m := validRef.FindStringSubmatch(ref)
		wantOK := m != nil && len(m[1]) <= maxNameLen
		if wantOK && m[2] != "" { // a bracketed host must be an IPv6 address
			wantOK = net.ParseIP(m[2]) != nil && strings.Contains(m[2], ":")
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidReference) {
				t.Fatalf("ParseReference(%q): error %v does not wrap ErrInvalidReference", ref, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseReference(%q): error spans lines: %q", ref, err)
			}
			if wantOK {
				t.Fatalf("ParseReference(%q) rejects a valid reference: %v", ref, err)
			}
			return
		}
		if !wantOK {
			t.Fatalf("ParseReference(%q) = %q, %q; want an error", ref, name, tag)
		}
		if ref != name+":"+tag && (ref != name || tag != "latest") {
			t.Fatalf("ParseReference(%q) = %q, %q, which does not make up the reference", ref, name, tag)
		}
		name2, tag2, err := ParseReference(name + ":" + tag)
		if err != nil || name2 != name || tag2 != tag {
			t.Fatalf("ParseReference(%q) = %q, %q, %v; want %q, %q", name+":"+tag, name2, tag2, err, name, tag)
		}
	})
}
