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

// MaxVolumes is how many volumes one instance may mount: QEMU's microvm
// has 24 virtio-mmio transports (a 25th device is refused: "No
// 'virtio-bus' bus found"), of which nos's machine uses up to four (rng,
// serial ports, network, root disk); 16 leaves room for more NICs.
const MaxVolumes = 16

// ParseVolume parses docker's -v NAME:/PATH[:ro|rw]. Host directories
// (a first part that is a path) need virtiofs, which nos does not have yet.
func ParseVolume(s string) (VolumeMount, error) {
	bad := func(why string) (VolumeMount, error) {
		return VolumeMount{}, fmt.Errorf("-v %q: %s; want NAME:/PATH[:ro], e.g. -v data:/var/lib/app: %w", s, why, ErrBadFlag)
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("not NAME:/PATH or NAME:/PATH:MODE")
	}
	m := VolumeMount{Name: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return bad(fmt.Sprintf("mode %q: want ro or rw", parts[2]))
		}
	}
	if strings.HasPrefix(m.Name, "/") || strings.HasPrefix(m.Name, ".") {
		return bad("host directories are not supported yet (they need virtiofs); use a named volume")
	}
	return m, checkMount(m, bad)
}

// ParseMount parses docker's --mount type=volume,source=NAME,target=/PATH[,readonly].
func ParseMount(s string) (VolumeMount, error) {
	bad := func(why string) (VolumeMount, error) {
		return VolumeMount{}, fmt.Errorf("--mount %q: %s; want type=volume,source=NAME,target=/PATH[,readonly]: %w", s, why, ErrBadFlag)
	}
	var m VolumeMount
	typ := "volume"
	for _, kv := range strings.Split(s, ",") {
		k, v, hasV := strings.Cut(kv, "=")
		switch k {
		case "type":
			typ = v
		case "source", "src":
			m.Name = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			ro, err := strconv.ParseBool(v)
			if hasV && err != nil {
				return bad(fmt.Sprintf("readonly=%q: want true or false", v))
			}
			m.ReadOnly = !hasV || ro
		default:
			return bad(fmt.Sprintf("unknown option %q", k))
		}
	}
	switch typ {
	case "volume":
	case "bind":
		return bad("bind mounts of host directories are not supported yet (they need virtiofs)")
	default:
		return bad(fmt.Sprintf("type %q: want volume", typ))
	}
	return m, checkMount(m, bad)
}

func checkMount(m VolumeMount, bad func(string) (VolumeMount, error)) error {
	if !volume.ValidName(m.Name) {
		_, err := bad(fmt.Sprintf("volume name %q: use letters, digits, '_', '.' and '-'", m.Name))
		return err
	}
	if !path.IsAbs(m.Target) || path.Clean(m.Target) != m.Target || m.Target == "/" {
		_, err := bad(fmt.Sprintf("mount point %q: want a clean absolute path other than /", m.Target))
		return err
	}
	return nil
}

// checkVolumes refuses what cannot be mounted before anything is made:
// too many volumes, two on one path, a kernel without ext4.
func checkVolumes(vs []VolumeMount, icfg image.Config, ref string) error {
	if len(vs) == 0 {
		return nil
	}
	if len(vs) > MaxVolumes {
		return fmt.Errorf("%d volumes: a nos machine mounts at most %d: %w", len(vs), MaxVolumes, ErrBadFlag)
	}
	seen := map[string]bool{}
	names := map[string]bool{}
	for _, v := range vs {
		if seen[v.Target] {
			return fmt.Errorf("two volumes on %s: %w", v.Target, ErrBadFlag)
		}
		if names[v.Name] {
			return fmt.Errorf("volume %s mounted twice: %w", v.Name, ErrBadFlag)
		}
		seen[v.Target], names[v.Name] = true, true
	}
	k := icfg.Kernel
	switch {
	case k.Features != nil && !slices.Contains(k.Features, "blk"):
		return fmt.Errorf("image %s runs kernel %s, which has no block devices (features %s): volumes need one built with blk: nos build --features net,blk: %w", ref, k.Version, strings.Join(k.Features, ","), ErrBadFlag)
	case k.Features == nil && !slices.Contains(icfg.Needs, "blk") && icfg.RootFS == "":
		// A distribution kernel: the image carries the block modules
		// (virtio_blk, ext4 unless built in) only when built for them.
		return fmt.Errorf("image %s was built without block devices for its kernel %s: build it again with `nos build --features net,blk` to mount volumes: %w", ref, k.Version, ErrBadFlag)
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
