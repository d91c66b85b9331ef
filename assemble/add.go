package assemble

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Add is one --add HOST_PATH[:GUEST_PATH]: a host file or directory tree
// and where it goes in the guest.
type Add struct {
	Host  string // absolute
	Guest string // absolute, slash-separated
	spec  string // as given, for messages
}

// parseAdd reads --add HOST_PATH[:GUEST_PATH]. The host path may be
// relative; the guest path, when given, must be absolute, and defaults to
// the host path made absolute.
func parseAdd(spec string) (Add, error) {
	host, guest, hasGuest := strings.Cut(spec, ":")
	bad := fmt.Errorf("--add %q: want HOST_PATH[:ABSOLUTE_GUEST_PATH]: %w", spec, ErrBadSource)
	if host == "" || hasGuest && !path.IsAbs(guest) {
		return Add{}, bad
	}
	abs, err := filepath.Abs(host)
	if err != nil {
		return Add{}, fmt.Errorf("--add %q: %w", spec, err)
	}
	if !hasGuest {
		guest = filepath.ToSlash(abs)
	}
	return Add{Host: abs, Guest: path.Clean(guest), spec: spec}, nil
}

func parseAdds(specs []string) ([]Add, error) {
	var adds []Add
	for _, s := range specs {
		a, err := parseAdd(s)
		if err != nil {
			return nil, err
		}
		adds = append(adds, a)
	}
	return adds, nil
}

// stat says whether the added path is a directory, with --add in the error.
func (a Add) stat() (dir bool, mode fs.FileMode, err error) {
	fi, err := os.Stat(a.Host)
	if err != nil {
		return false, 0, a.errorf(err)
	}
	return fi.IsDir(), fi.Mode(), nil
}

func (a Add) errorf(err error) error {
	return fmt.Errorf("--add %s: %w", a.spec, err)
}

// addedObjects lists the shared objects among the added paths (files
// whose name has ".so"), which the program may load with dlopen.
func addedObjects(adds []Add) []string {
	var objs []string
	for _, a := range adds {
		_ = filepath.WalkDir(a.Host, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && strings.Contains(d.Name(), ".so") {
				objs = append(objs, p)
			}
			return nil
		})
	}
	return objs
}
