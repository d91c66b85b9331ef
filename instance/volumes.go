package instance

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/volume"
)

// VolumeMount is a named volume mounted in the guest.
type VolumeMount struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// String is docker's -v form.
func (m VolumeMount) String() string {
	s := m.Name + ":" + m.Target
	if m.ReadOnly {
		s += ":ro"
	}
	return s
}

// MaxVolumes is how many volumes and host directories one instance may
// mount: QEMU's microvm has 24 virtio-mmio transports (a 25th device is
// refused: "No 'virtio-bus' bus found"), of which nos's machine uses up
// to four (rng, serial ports, network, root disk); 16 leaves room for
// more NICs.
const MaxVolumes = 16

// ParseVolume parses docker's -v: NAME:/PATH[:ro|rw] mounts a named
// volume, /HOST/DIR:/PATH[:ro|rw] shares a host directory.
func ParseVolume(s string) (Mount, error) {
	bad := func(why string) (Mount, error) {
		return Mount{}, fmt.Errorf("-v %q: %s; want NAME:/PATH[:ro] or /HOST/DIR:/PATH[:ro], e.g. -v data:/var/lib/app: %w", s, why, ErrBadFlag)
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("not SOURCE:/PATH or SOURCE:/PATH:MODE")
	}
	src, target, ro := parts[0], parts[1], false
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			ro = true
		case "rw":
		default:
			return bad(fmt.Sprintf("mode %q: want ro or rw", parts[2]))
		}
	}
	return makeMount(src, target, ro, isHostPath(src), bad)
}

// ParseMount parses docker's --mount type=volume|bind,source=SRC,target=/PATH[,readonly].
func ParseMount(s string) (Mount, error) {
	bad := func(why string) (Mount, error) {
		return Mount{}, fmt.Errorf("--mount %q: %s; want type=volume,source=NAME,target=/PATH[,readonly] or type=bind,source=/HOST/DIR,...: %w", s, why, ErrBadFlag)
	}
	var src, target string
	var ro bool
	typ := "volume"
	for _, kv := range strings.Split(s, ",") {
		k, v, hasV := strings.Cut(kv, "=")
		switch k {
		case "type":
			typ = v
		case "source", "src":
			src = v
		case "target", "destination", "dst":
			target = v
		case "readonly", "ro":
			b, err := strconv.ParseBool(v)
			if hasV && err != nil {
				return bad(fmt.Sprintf("readonly=%q: want true or false", v))
			}
			ro = !hasV || b
		default:
			return bad(fmt.Sprintf("unknown option %q", k))
		}
	}
	switch typ {
	case "volume":
		if isHostPath(src) {
			return bad(fmt.Sprintf("source %q is a path: a host directory is type=bind", src))
		}
		return makeMount(src, target, ro, false, bad)
	case "bind":
		return makeMount(src, target, ro, true, bad)
	default:
		return bad(fmt.Sprintf("type %q: want volume or bind", typ))
	}
}

// makeMount checks a parsed -v or --mount.
func makeMount(src, target string, ro, host bool, bad func(string) (Mount, error)) (Mount, error) {
	if !path.IsAbs(target) || path.Clean(target) != target || target == "/" {
		return bad(fmt.Sprintf("mount point %q: want a clean absolute path other than /", target))
	}
	if host {
		clean, err := bindSource(src)
		if err != nil {
			return bad(err.Error())
		}
		return Mount{Bind: &BindMount{Source: clean, Target: target, ReadOnly: ro}}, nil
	}
	if !volume.ValidName(src) {
		return bad(fmt.Sprintf("volume name %q: use letters, digits, '_', '.' and '-'", src))
	}
	return Mount{Volume: &VolumeMount{Name: src, Target: target, ReadOnly: ro}}, nil
}

// checkVolumes refuses what cannot be mounted before anything is made:
// too many volumes and host directories, two on one path, a kernel
// without ext4.
func checkVolumes(vs []VolumeMount, bs []BindMount, icfg image.Config, ref string) error {
	if len(vs)+len(bs) > MaxVolumes {
		return fmt.Errorf("%d volumes and host directories: a nos machine mounts at most %d: %w", len(vs)+len(bs), MaxVolumes, ErrBadFlag)
	}
	seen := map[string]bool{}
	for _, t := range mountTargets(vs, bs) {
		if seen[t] {
			return fmt.Errorf("two mounts on %s: %w", t, ErrBadFlag)
		}
		seen[t] = true
	}
	names := map[string]bool{}
	for _, v := range vs {
		if names[v.Name] {
			return fmt.Errorf("volume %s mounted twice: %w", v.Name, ErrBadFlag)
		}
		names[v.Name] = true
	}
	if len(vs) > 0 {
		if err := checkDataKernel(icfg, ref, "volumes"); err != nil {
			return err
		}
	}
	return checkBinds(bs, icfg, ref)
}

func mountTargets(vs []VolumeMount, bs []BindMount) []string {
	var ts []string
	for _, v := range vs {
		ts = append(ts, v.Target)
	}
	for _, b := range bs {
		ts = append(ts, b.Target)
	}
	return ts
}

// checkDataKernel refuses what (volumes, host directories) needs the blk
// feature on an image whose kernel lacks it.
func checkDataKernel(icfg image.Config, ref, what string) error {
	k := icfg.Kernel
	switch {
	case k.Features != nil && !slices.Contains(k.Features, "blk"):
		return fmt.Errorf("image %s runs kernel %s, which has no block devices or virtiofs (features %s): %s need one built with blk: nos build --features net,blk: %w", ref, k.Version, strings.Join(k.Features, ","), what, ErrBadFlag)
	case k.Features == nil && !slices.Contains(icfg.Needs, "blk") && icfg.RootFS == "":
		// A distribution kernel: the image carries the block and virtiofs
		// modules only when built for them.
		return fmt.Errorf("image %s was built without block devices for its kernel %s: build it again with `nos build --features net,blk` to mount %s: %w", ref, k.Version, what, ErrBadFlag)
	}
	return nil
}

// prepareVolumes makes the volumes that do not exist yet (as docker does:
// the default size, owned by the application's user) and refuses one a
// running instance writes. Called with the instances lock held; the
// monitor's attachment is what really keeps two writers apart.
func (is *Instances) prepareVolumes(ctx context.Context, vs []VolumeMount, user *guestapi.User) error {
	if len(vs) == 0 {
		return nil
	}
	st, err := volume.Open(is.home.Volumes())
	if err != nil {
		return err
	}
	for _, m := range vs {
		v, err := st.Get(m.Name)
		if errors.Is(err, volume.ErrNotFound) {
			o := volume.CreateOptions{}
			if user != nil {
				o.UID, o.GID = user.UID, user.GID
			}
			v, err = st.Create(ctx, m.Name, o)
		}
		if err != nil {
			return err
		}
		if !m.ReadOnly && v.Attached() {
			if h := v.Holder(); h != "" {
				return fmt.Errorf("volume %s is attached read-write to instance %s: stop it first, or mount it :ro: %w", m.Name, shortID(h), volume.ErrInUse)
			}
			return fmt.Errorf("volume %s is attached to a running instance: %w", m.Name, volume.ErrInUse)
		}
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// VolumeUsers lists the instances (running or not) that mount volume name.
func (is *Instances) VolumeUsers(name string) ([]*Instance, error) {
	all, err := is.List()
	if err != nil {
		return nil, err
	}
	var out []*Instance
	for _, in := range all {
		for _, v := range in.Config.Volumes {
			if v.Name == name {
				out = append(out, in)
				break
			}
		}
	}
	return out, nil
}
