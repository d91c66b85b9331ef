package elfdeps

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
)

// Limits on ld.so.conf processing.
const (
	maxConfSize  = 1 << 20 // bytes read from one configuration file
	maxConfDepth = 16      // nested include levels
	maxConfFiles = 1024    // configuration files read in all
)

// confReader collects the directories of an ld.so.conf and the files it
// includes, in order, without duplicates.
type confReader struct {
	t     *tree
	dirs  []string
	seen  map[string]bool // directories already listed
	files map[string]bool // resolved configuration files already read
}

// readLDSoConf returns the library directories listed by the ld.so.conf
// at the absolute path name inside t. It follows ldconfig's syntax:
// "#" starts a comment; "include PATTERN..." reads the files matching
// each glob pattern, relative patterns being relative to the directory
// of the including file; "hwcap" lines are ignored; any other line lists
// directories separated by colons, commas, spaces or tabs. Relative
// directories are ignored (ldconfig warns about them too), as is an
// "=TYPE" suffix. A missing file is an error only when mustExist is set;
// missing included files are not.
func readLDSoConf(t *tree, name string, mustExist bool) ([]string, error) {
	c := &confReader{t: t, seen: map[string]bool{}, files: map[string]bool{}}
	if err := c.read(name, 0, mustExist); err != nil {
		return nil, err
	}
	return c.dirs, nil
}

func (c *confReader) read(name string, depth int, mustExist bool) error {
	if depth > maxConfDepth {
		return fmt.Errorf("%s: includes nested more than %d deep", name, maxConfDepth)
	}
	r, err := c.t.walk(name)
	if err != nil {
		if isNotFound(err) && !mustExist {
			return nil
		}
		return err
	}
	if !r.Info.Mode().IsRegular() {
		if mustExist {
			return fmt.Errorf("%s is not a regular file", name)
		}
		return nil
	}
	if c.files[r.Real] {
		return nil // included twice, or an include cycle
	}
	if len(c.files) >= maxConfFiles {
		return fmt.Errorf("%s: more than %d ld.so.conf files", name, maxConfFiles)
	}
	c.files[r.Real] = true
	f, err := c.t.doOpen(c.t.host(r.Real))
	if err != nil {
		return fmt.Errorf("ld.so.conf: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, maxConfSize))
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxConfSize)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if rest, ok := cutKeyword(line, "include"); ok {
			for _, pat := range strings.Fields(rest) {
				if err := c.include(name, pat, depth); err != nil {
					return err
				}
			}
			continue
		}
		if _, ok := cutKeyword(line, "hwcap"); ok {
			continue
		}
		for _, d := range strings.FieldsFunc(line, func(r rune) bool {
			return r == ':' || r == ',' || r == ' ' || r == '\t'
		}) {
			if i := strings.IndexByte(d, '='); i >= 0 {
				d = d[:i]
			}
			if !strings.HasPrefix(d, "/") {
				continue
			}
			d = trimSlashes(d)
			if !c.seen[d] {
				c.seen[d] = true
				c.dirs = append(c.dirs, d)
			}
		}
	}
	return sc.Err()
}

// cutKeyword splits "keyword rest" when line starts with keyword followed
// by a blank.
func cutKeyword(line, keyword string) (string, bool) {
	if len(line) > len(keyword) && strings.EqualFold(line[:len(keyword)], keyword) &&
		(line[len(keyword)] == ' ' || line[len(keyword)] == '\t') {
		return line[len(keyword)+1:], true
	}
	return "", false
}

// include reads the files matching the glob pattern, in sorted order.
func (c *confReader) include(from, pattern string, depth int) error {
	if !strings.HasPrefix(pattern, "/") {
		pattern = path.Join(path.Dir(from), pattern)
	}
	matches, err := filepath.Glob(c.t.host(path.Clean(pattern)))
	if err != nil {
		return fmt.Errorf("%s: include %s: %w", from, pattern, err)
	}
	for _, m := range matches {
		if err := c.read(c.t.guest(m), depth+1, false); err != nil {
			return err
		}
	}
	return nil
}

// trimSlashes removes trailing slashes, keeping "/" itself.
func trimSlashes(d string) string {
	for len(d) > 1 && strings.HasSuffix(d, "/") {
		d = d[:len(d)-1]
	}
	return d
}
