package instance

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/vmm/virtiofs"
)

// BindMount is a host directory shared with the guest (virtiofs).
type BindMount struct {
	Source   string `json:"source"` // absolute host directory
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// String is docker's -v form.
func (b BindMount) String() string {
	s := b.Source + ":" + b.Target
	if b.ReadOnly {
		s += ":ro"
	}
	return s
}

// Mount is one -v or --mount: a named volume or a host directory,
// exactly one of them.
type Mount struct {
	Volume *VolumeMount
	Bind   *BindMount
}

// AddTo appends the mount to the options' volumes or binds.
func (m Mount) AddTo(o *Options) {
	if m.Volume != nil {
		o.Volumes = append(o.Volumes, *m.Volume)
	}
	if m.Bind != nil {
		o.Binds = append(o.Binds, *m.Bind)
	}
}

// shareTag is the virtiofs tag of the instance's i-th host directory
// (at most 36 bytes, virtio-fs's limit).
func shareTag(i int) string { return "nos-share-" + strconv.Itoa(i) }

// checkBinds refuses host directories that cannot be shared before
// anything is made: a source that is not an existing directory, a kernel
// or init without virtiofs, a host without virtiofsd or root.
func checkBinds(bs []BindMount, icfg image.Config, ref string) error {
	if len(bs) == 0 {
		return nil
	}
	for _, b := range bs {
		fi, err := os.Stat(b.Source)
		switch {
		case os.IsNotExist(err):
			return fmt.Errorf("-v %s: the host directory %s does not exist: create it first (nos does not make host directories): %w", b, b.Source, ErrBadFlag)
		case err != nil:
			return fmt.Errorf("-v %s: %w: %w", b, err, ErrBadFlag)
		case !fi.IsDir():
			return fmt.Errorf("-v %s: %s is not a directory: virtiofs shares directories; share the one that holds it: %w", b, b.Source, ErrBadFlag)
		}
	}
	if err := checkDataKernel(icfg, ref, "host directories"); err != nil {
		return err
	}
	if icfg.InitAPI < image.InitAPIShares {
		return fmt.Errorf("image %s was built by an older nos, whose init cannot mount host directories: build it again with this nos: %w", ref, ErrBadFlag)
	}
	if _, err := virtiofs.Binary(); err != nil {
		return fmt.Errorf("%w: %w", err, ErrBadFlag)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("host directories need nos to run as root: virtiofsd serves every file's owner and sandboxes itself in namespaces only root can make; use a named volume instead: %w", ErrBadFlag)
	}
	return nil
}

// resolveBind is the directory a bind shares at boot: its source with
// symbolic links resolved, checked again (it may have gone since create).
func resolveBind(b BindMount) (string, error) {
	src, err := filepath.EvalSymlinks(b.Source)
	if err != nil {
		return "", fmt.Errorf("host directory %s: %w", b.Source, err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("host directory %s: %w", b.Source, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("host directory %s is no longer a directory", b.Source)
	}
	return src, nil
}

// isHostPath tells a host directory from a volume name in -v's first
// part: volume names have no '/', and '.' and '~' start no name.
func isHostPath(s string) bool {
	return strings.ContainsRune(s, '/') || s == "." || s == ".." || strings.HasPrefix(s, "~")
}

// bindSource checks and cleans the host side of -v /HOST:/PATH.
func bindSource(src string) (string, error) {
	if !filepath.IsAbs(src) {
		return "", fmt.Errorf("host path %q is relative: give an absolute path, e.g. \"$PWD/%s\"", src, strings.TrimPrefix(src, "./"))
	}
	return filepath.Clean(src), nil
}
