package registry

import (
	"strings"
	"testing"
)

// FuzzParse feeds references and registry names (from the command line,
// compose files and signatures) to Parse and Registry: no panic, and a
// plain-HTTP reference only for a registry PlainHTTPAllowed names.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"web", "web:1", "127.0.0.1:5000/a/b:c", "localhost/a@sha256:" + strings.Repeat("a", 64), "reg.lan:5000/x", "[::1]:5000/a", "ghcr.io/a/b", "A/B", "a//b", ":", "@", "x:5000"} {
		f.Add(s)
	}
	c := Config{Insecure: []string{"reg.lan:5000"}}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := c.Parse(s); err == nil {
			reg := r.Context().RegistryStr()
			if r.Context().Scheme() == "http" && !c.PlainHTTPAllowed(reg) {
				t.Fatalf("Parse(%q): plain HTTP to %q", s, reg)
			}
		}
		if r, err := c.Registry(s); err == nil {
			if r.Scheme() == "http" && !c.PlainHTTPAllowed(r.RegistryStr()) {
				t.Fatalf("Registry(%q): plain HTTP", s)
			}
		}
	})
}
