package store

import (
	"fmt"
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
// most 128 characters in all. A tag is a letter, digit or "_" followed by
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
	for _, c := range strings.Split(name, "/") {
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
