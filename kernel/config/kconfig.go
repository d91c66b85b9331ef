package config

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Off is the value of an option that is not set: `# CONFIG_FOO is not set`.
const Off = "n"

// Option is one option of a kernel configuration.
type Option struct {
	// Name is the option's full name, "CONFIG_FOO".
	Name string
	// Value is "y", "m", Off, a number, or a double-quoted string as
	// written in the file, quotes included.
	Value string
}

// String renders the option as a .config line.
func (o Option) String() string {
	if o.Value == Off {
		return "# " + o.Name + " is not set"
	}
	return o.Name + "=" + o.Value
}

// Config is a kernel configuration: options in the order they were first
// given, each at most once.
type Config struct {
	opts  []Option
	index map[string]int
}

// Get returns the value of the option named name ("CONFIG_FOO") and
// whether the configuration mentions it.
func (c *Config) Get(name string) (string, bool) {
	if c == nil || c.index == nil {
		return "", false
	}
	i, ok := c.index[name]
	if !ok {
		return "", false
	}
	return c.opts[i].Value, true
}

// Set gives the option name the value, replacing any value it had.
func (c *Config) Set(name, value string) {
	if c.index == nil {
		c.index = make(map[string]int)
	}
	if i, ok := c.index[name]; ok {
		c.opts[i].Value = value
		return
	}
	c.index[name] = len(c.opts)
	c.opts = append(c.opts, Option{Name: name, Value: value})
}

// Options returns the options in order.
func (c *Config) Options() []Option {
	if c == nil {
		return nil
	}
	return append([]Option(nil), c.opts...)
}

// Len returns the number of options.
func (c *Config) Len() int {
	if c == nil {
		return 0
	}
	return len(c.opts)
}

// Bytes renders the configuration in .config syntax, one option a line.
func (c *Config) Bytes() []byte {
	var b bytes.Buffer
	for _, o := range c.Options() {
		b.WriteString(o.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Parse reads a kernel configuration in .config syntax. An option given
// twice with different values is an error, as is any line that is neither
// an option, a `# CONFIG_FOO is not set` line, a comment nor blank; errors
// name the line.
func Parse(r io.Reader) (*Config, error) {
	c := &Config{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		o, ok, err := parseLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !ok {
			continue
		}
		if v, seen := c.Get(o.Name); seen && v != o.Value {
			return nil, fmt.Errorf("line %d: %s set to %s after %s", n, o.Name, o.Value, v)
		}
		c.Set(o.Name, o.Value)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseBytes is Parse on a byte slice.
func ParseBytes(b []byte) (*Config, error) { return Parse(bytes.NewReader(b)) }

// parseLine returns the option on line, or ok=false for blank lines and
// comments.
func parseLine(line string) (o Option, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return Option{}, false, nil
	}
	if rest, isComment := strings.CutPrefix(line, "#"); isComment {
		name, found := strings.CutSuffix(strings.TrimSpace(rest), " is not set")
		if !found || !strings.HasPrefix(name, "CONFIG_") {
			return Option{}, false, nil // a comment
		}
		if !validName(name) {
			return Option{}, false, fmt.Errorf("invalid option name %q", name)
		}
		return Option{Name: name, Value: Off}, true, nil
	}
	name, value, found := strings.Cut(line, "=")
	if !found {
		return Option{}, false, fmt.Errorf("%q: want CONFIG_NAME=value or # CONFIG_NAME is not set", line)
	}
	if !validName(name) {
		return Option{}, false, fmt.Errorf("invalid option name %q", name)
	}
	if !validValue(value) {
		return Option{}, false, fmt.Errorf("%s: invalid value %q", name, value)
	}
	return Option{Name: name, Value: value}, true, nil
}

// validName reports whether name is CONFIG_ followed by letters, digits
// and underscores.
func validName(name string) bool {
	sym, ok := strings.CutPrefix(name, "CONFIG_")
	if !ok || sym == "" {
		return false
	}
	for _, r := range sym {
		if !(r == '_' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z') {
			return false
		}
	}
	return true
}

// validValue accepts y, m, n, numbers and double-quoted strings.
func validValue(v string) bool {
	switch {
	case v == "":
		return false
	case v[0] == '"':
		return len(v) >= 2 && v[len(v)-1] == '"' && !strings.ContainsAny(v[1:len(v)-1], "\n")
	}
	return !strings.ContainsAny(v, " \t\"#")
}

// Overlay returns the .config text base with the options of over applied:
// base's lines for options over sets are dropped, everything else is kept,
// and over's options follow. Kconfig then reads one value per option.
func Overlay(base []byte, over *Config) []byte {
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(base), "\n") {
		if line == "" {
			continue
		}
		if o, ok, err := parseLine(line); err == nil && ok {
			if _, overridden := over.Get(o.Name); overridden {
				continue
			}
		}
		out.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			out.WriteByte('\n')
		}
	}
	out.Write(over.Bytes())
	return out.Bytes()
}
