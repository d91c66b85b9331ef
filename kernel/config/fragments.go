package config

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

//go:embed *.config
var fragmentFS embed.FS

// BaseName is the fragment every build uses; the others are features.
const BaseName = "base"

// DefaultFeatures are the features nos images need today: the runner
// always attaches a virtio NIC and nos-init brings up lo and eth0.
var DefaultFeatures = []string{"net"}

// Fragment is one named configuration fragment.
type Fragment struct {
	// Name is the fragment's name: "base" or a feature, e.g. "net".
	Name string
	// Data is the fragment's text.
	Data []byte
}

// Features returns the names of the optional fragments, sorted.
func Features() []string {
	names, _ := fs.Glob(fragmentFS, "*.config")
	var features []string
	for _, n := range names {
		if n = strings.TrimSuffix(n, ".config"); n != BaseName {
			features = append(features, n)
		}
	}
	slices.Sort(features)
	return features
}

// NormalizeFeatures returns features sorted, without duplicates or empty
// names, and checks that each one exists.
func NormalizeFeatures(features []string) ([]string, error) {
	known := Features()
	var out []string
	for _, f := range features {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" || slices.Contains(out, f) {
			continue
		}
		if !slices.Contains(known, f) {
			return nil, fmt.Errorf("unknown kernel feature %q (known: %s)", f, strings.Join(known, ", "))
		}
		out = append(out, f)
	}
	slices.Sort(out)
	return out, nil
}

// Fragments returns the base fragment followed by those of the features,
// in a canonical order, so that the same set of features always gives the
// same fragments.
func Fragments(features []string) ([]Fragment, error) {
	features, err := NormalizeFeatures(features)
	if err != nil {
		return nil, err
	}
	var frags []Fragment
	for _, name := range append([]string{BaseName}, features...) {
		data, err := fragmentFS.ReadFile(name + ".config")
		if err != nil {
			return nil, fmt.Errorf("fragment %s: %w", name, err)
		}
		frags = append(frags, Fragment{Name: name, Data: data})
	}
	return frags, nil
}

// Merge parses the fragments and combines them into one configuration. Two
// fragments giving one option different values is an error naming both,
// with one exception: what the base fragment turns off, a feature may turn
// on (the base leaves out, say, the input layer, which only the cloud
// feature's power button needs).
func Merge(frags []Fragment) (*Config, error) {
	merged := &Config{}
	from := make(map[string]string) // option -> fragment that set it
	for _, f := range frags {
		c, err := ParseBytes(f.Data)
		if err != nil {
			return nil, fmt.Errorf("fragment %s: %w", f.Name, err)
		}
		for _, o := range c.Options() {
			v, ok := merged.Get(o.Name)
			switch {
			case !ok:
				from[o.Name] = f.Name
			case v == o.Value:
			case v == Off && from[o.Name] == BaseName && f.Name != BaseName:
				from[o.Name] = f.Name
			default:
				return nil, fmt.Errorf("fragments %s and %s disagree: %s vs %s", from[o.Name], f.Name, Option{o.Name, v}, o)
			}
			merged.Set(o.Name, o.Value)
		}
	}
	return merged, nil
}

// Hash returns the hex SHA-256 of the configuration's canonical text.
func (c *Config) Hash() string {
	sum := sha256.Sum256(c.Bytes())
	return hex.EncodeToString(sum[:])
}

// Describe names a feature list as users write it: "net,vsock", or "none"
// for the base alone.
func Describe(features []string) string {
	if len(features) == 0 {
		return "none"
	}
	return strings.Join(features, ",")
}
