package store

import (
	"fmt"
	"net"
	"strings"

	"github.com/nosproject/nos/image"
)

// Limits on the parts of a reference.
const (
	maxNameLen = 128
	maxTagLen  = 128
)

// ParseReference splits an image reference "name[:tag]" into its name and
// tag, defaulting the tag to "latest".
//
// A name is one or more "/"-separated components of lowercase letters and
// digits, joined within a component by ".", "_", "__" or runs of "-", at
// most 128 characters in all. The first of several components may instead
// name the registry the image came from, as docker's references do: a
// host with a port ("127.0.0.1:5000/web") or a bracketed IPv6 address
// with an optional one ("[::1]:5000/web"). A tag is a letter, digit or "_" followed by
// up to 127 letters, digits, "_", "." and "-". Errors wrap
// ErrInvalidReference.
func ParseReference(ref string) (name, tag string, err error) {
	name, tag = ref, image.DefaultTag
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		name, tag = ref[:i], ref[i+1:]
	}
	if err := checkName(name); err != nil {
		return "", "", fmt.Errorf("%w %q: %v", ErrInvalidReference, ref, err)
	}
	if err := checkTag(tag); err != nil {
		return "", "", fmt.Errorf("%w %q: %v", ErrInvalidReference, ref, err)
	}
	return name, tag, nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case len(name) > maxNameLen:
		return fmt.Errorf("name is %d characters long, the maximum is %d", len(name), maxNameLen)
	}
	parts := strings.Split(name, "/")
	if len(parts) > 1 && isRegistryHost(parts[0]) {
		parts = parts[1:]
	}
	for _, c := range parts {
		if err := checkComponent(c); err != nil {
			return err
		}
	}
	return nil
}

// checkComponent checks one path component of a name.
func checkComponent(c string) error {
	if c == "" {
		return fmt.Errorf("empty path component in name")
	}
	for _, r := range c {
		switch {
		case isLowerAlnum(r) || isSeparator(r):
		case 'A' <= r && r <= 'Z':
			return fmt.Errorf("name must be lowercase")
		default:
			return fmt.Errorf("invalid character %q in name", r)
		}
	}
	if !isLowerAlnum(rune(c[0])) || !isLowerAlnum(rune(c[len(c)-1])) {
		return fmt.Errorf("name component %q must start and end with a letter or digit", c)
	}
	for _, sep := range strings.FieldsFunc(c, isLowerAlnum) {
		if sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
			return fmt.Errorf("invalid separator %q in name", sep)
		}
	}
	return nil
}

// isRegistryHost reports whether c is host:port, with host made of
// dot-separated labels of lowercase letters, digits and inner "-", or
// [IPv6] with an optional :port. A host without a port needs no special
// case: it is a valid component already.
func isRegistryHost(c string) bool {
	host, port := c, ""
	if strings.HasPrefix(c, "[") {
		end := strings.IndexByte(c, ']')
		if end < 0 {
			return false
		}
		ip := net.ParseIP(c[1:end])
		if ip == nil || !strings.Contains(c[1:end], ":") {
			return false
		}
		rest := c[end+1:]
		if rest == "" {
			return true
		}
		p, ok := strings.CutPrefix(rest, ":")
		return ok && isPort(p)
	}
	host, port, ok := strings.Cut(c, ":")
	if !ok || !isPort(port) {
		return false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !isLowerAlnum(r) && r != '-' {
				return false
			}
		}
	}
	return true
}

func isPort(s string) bool {
	if len(s) < 1 || len(s) > 5 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func checkTag(tag string) error {
	switch {
	case tag == "":
		return fmt.Errorf("empty tag")
	case len(tag) > maxTagLen:
		return fmt.Errorf("tag is %d characters long, the maximum is %d", len(tag), maxTagLen)
	}
	for _, r := range tag {
		if !isLowerAlnum(r) && !('A' <= r && r <= 'Z') && !isSeparator(r) {
			return fmt.Errorf("invalid character %q in tag", r)
		}
	}
	if tag[0] == '.' || tag[0] == '-' {
		return fmt.Errorf("tag must not start with %q", rune(tag[0]))
	}
	return nil
}

func isLowerAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || '0' <= r && r <= '9'
}

func isSeparator(r rune) bool {
	return r == '.' || r == '_' || r == '-'
}
