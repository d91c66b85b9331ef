package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The conventional VM of -compare is bootstrapped from the mirror the host
// itself uses: the first enabled `deb` source for the host's release, as
// apt's configuration lists it. No mirror is named in this repository.

// aptSource is one `deb` source: a repository URI and a suite.
type aptSource struct {
	URI   string
	Suite string
	// Origin says where it was found: file and line or stanza.
	Origin string
}

// hostMirror returns the first `deb` source whose suite is the host's
// VERSION_CODENAME, from /etc/apt/sources.list, then the
// /etc/apt/sources.list.d/*.list and *.sources files in name order.
func hostMirror() (aptSource, error) {
	osr, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return aptSource{}, fmt.Errorf("reading the host's release: %w", err)
	}
	codename := osReleaseValue(string(osr), "VERSION_CODENAME")
	if codename == "" {
		return aptSource{}, fmt.Errorf("/etc/os-release has no VERSION_CODENAME: cannot tell which suite to bootstrap")
	}
	var files []aptFile
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		files = append(files, aptFile{name: "/etc/apt/sources.list", content: string(b)})
	}
	ents, _ := os.ReadDir("/etc/apt/sources.list.d")
	for _, e := range ents {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".list") || strings.HasSuffix(e.Name(), ".sources")) {
			continue
		}
		p := filepath.Join("/etc/apt/sources.list.d", e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return aptSource{}, fmt.Errorf("reading apt sources: %w", err)
		}
		files = append(files, aptFile{name: p, content: string(b)})
	}
	return pickMirror(files, codename)
}

// aptFile is an apt source file's name and content; the name's extension
// (.sources or not) selects the format.
type aptFile struct{ name, content string }

// pickMirror returns the first `deb` source of suite among files, in order.
func pickMirror(files []aptFile, suite string) (aptSource, error) {
	for _, f := range files {
		var srcs []aptSource
		if strings.HasSuffix(f.name, ".sources") {
			srcs = parseDeb822Sources(f.content, f.name)
		} else {
			srcs = parseOneLineSources(f.content, f.name)
		}
		for _, s := range srcs {
			if s.Suite == suite {
				return s, nil
			}
		}
	}
	return aptSource{}, fmt.Errorf("no enabled `deb` source for suite %q in the host's apt configuration (/etc/apt/sources.list, /etc/apt/sources.list.d): the conventional VM is bootstrapped from the host's own mirror", suite)
}

// parseOneLineSources reads the one-line format: `deb [options] URI SUITE
// [COMPONENT...]`. deb-src lines, comments and malformed lines are
// skipped.
func parseOneLineSources(content, name string) []aptSource {
	var out []aptSource
	for i, line := range strings.Split(content, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			// Options, which may hold spaces: up to the field ending in ].
			end := slices.IndexFunc(f, func(s string) bool { return strings.HasSuffix(s, "]") })
			if end < 0 {
				continue
			}
			f = f[end+1:]
		}
		if len(f) < 2 {
			continue
		}
		out = append(out, aptSource{URI: f[0], Suite: f[1], Origin: fmt.Sprintf("%s:%d", name, i+1)})
	}
	return out
}

// parseDeb822Sources reads the deb822 format: stanzas separated by blank
// lines, with Types, URIs, Suites, Components and Enabled fields (names
// case-insensitive, values on continuation lines folded in, # comment
// lines ignored). Each URI × suite of an enabled stanza with type deb is
// a source, in order.
func parseDeb822Sources(content, name string) []aptSource {
	var out []aptSource
	stanza := map[string]string{}
	start := 0
	var last string
	flush := func() {
		defer func() { stanza, last = map[string]string{}, "" }()
		if len(stanza) == 0 {
			return
		}
		if strings.EqualFold(strings.TrimSpace(stanza["enabled"]), "no") {
			return
		}
		if !slices.Contains(strings.Fields(stanza["types"]), "deb") {
			return
		}
		for _, uri := range strings.Fields(stanza["uris"]) {
			for _, suite := range strings.Fields(stanza["suites"]) {
				out = append(out, aptSource{URI: uri, Suite: suite, Origin: fmt.Sprintf("%s: stanza at line %d", name, start)})
			}
		}
	}
	for i, line := range strings.Split(content, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "#"):
			continue
		case strings.TrimSpace(line) == "":
			flush()
			continue
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				stanza[last] += " " + strings.TrimSpace(line)
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if len(stanza) == 0 {
			start = i + 1
		}
		last = strings.ToLower(strings.TrimSpace(k))
		stanza[last] = strings.TrimSpace(v)
	}
	flush()
	return out
}

// osReleaseValue returns the value of key in os-release content, unquoted.
func osReleaseValue(content, key string) string {
	for _, line := range strings.Split(content, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return ""
}
