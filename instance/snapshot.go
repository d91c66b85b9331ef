package instance

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/vmm"
)

// Warm starts (nos run --snapshot). The first boot of an image on a given
// machine is cold; once its app is ready the monitor saves the VM's state
// in the cache, under a key made of everything that state depends on (the
// kernel and initramfs it booted, the machine's devices, memory and
// command line, the hypervisor's build). Later starts with the same key
// load that state instead of booting; a state that does not load is
// removed and the instance boots cold (and saves again).

// SnapshotCmdline is added to the kernel command line of --snapshot
// instances: pages the guest frees are zeroed, so the saved state skips
// them (QEMU sends a zero page as a flag). The example's state went from
// 40.2 to 24.8 MB with it; the guest pays a memset per freed page.
const SnapshotCmdline = "init_on_free=1"

// ErrNoSnapshot reports an instance that cannot start from a saved state.
var ErrNoSnapshot = errors.New("cannot be started from a snapshot")

// checkSnapshot says why cfg cannot use --snapshot, if it cannot: what a
// saved state cannot carry (host directories, a volume's contents, a
// private network's address, an interactive session) or an init that
// cannot take a restore.
func checkSnapshot(cfg *Config, networks int) error {
	why := ""
	switch {
	case cfg.InitAPI < image.InitAPISnapshot:
		why = fmt.Sprintf("the image's init is too old (init API %d, %d needed): build it again with this nos", cfg.InitAPI, image.InitAPISnapshot)
	case len(cfg.Volumes) > 0:
		why = "it has volumes (their contents would not match the saved guest's caches)"
	case len(cfg.Binds) > 0:
		why = "it shares host directories (virtiofs cannot be saved)"
	case networks > 0:
		why = "it is on private networks (the saved guest holds another instance's address)"
	case cfg.Stdin || cfg.TTY:
		why = "it is interactive (-i/-t)"
	case cfg.WritableRoot:
		why = "its root is writable"
	}
	if why != "" {
		return fmt.Errorf("--snapshot: %s %w: %s: %w", cfg.Image, ErrNoSnapshot, why, ErrBadFlag)
	}
	return nil
}

// snapshotMeta is the record beside a saved state.
type snapshotMeta struct {
	Key         string    `json:"key"`
	Image       string    `json:"image"`
	ImageDigest string    `json:"imageDigest"`
	Hypervisor  string    `json:"hypervisor"`
	Saved       time.Time `json:"saved"`
	Bytes       int64     `json:"bytes"`
	SaveMS      int64     `json:"saveMs"`
}

// snapshotKey hashes what a saved state of mach depends on: what it
// booted, the machine's shape and the hypervisor's build. What it booted
// is the image, by its manifest's digest, which covers the kernel, the
// initramfs and the root disk (the only disk a snapshot may have: see
// checkSnapshot); without a digest the files themselves are hashed. So a
// changed kernel or initramfs never loads an old state. Published ports,
// names and the environment are not in it: the first are the host's side
// of the network, the others are the guest's to take again.
func snapshotKey(mach vmm.Machine, hypervisor, imageDigest string) (string, error) {
	h := sha256.New()
	content := func(path string) (string, error) { return "", nil }
	if imageDigest != "" {
		fmt.Fprintf(h, "image %s\n", imageDigest)
	} else {
		content = func(path string) (string, error) {
			sum := sha256.New()
			if err := hashFile(sum, path); err != nil {
				return "", err
			}
			return hex.EncodeToString(sum.Sum(nil)), nil
		}
		for _, f := range []string{mach.Kernel, mach.Initrd} {
			if err := hashFile(h, f); err != nil {
				return "", err
			}
		}
	}
	shape := struct {
		Accel, Cmdline          string
		MemoryMiB, CPUs, TCGMiB int
		Channels, Disks         []string
		NICs                    int
		Proxy                   vmm.Proxy
		Hypervisor              string
	}{Accel: mach.Accel, Cmdline: mach.Cmdline, MemoryMiB: mach.MemoryMiB, CPUs: mach.CPUs, TCGMiB: mach.TCGBufferMiB, NICs: len(mach.NICs), Hypervisor: hypervisor}
	if len(mach.NICs) > 0 && mach.NICs[0].User != nil {
		shape.Proxy = mach.NICs[0].User.Proxy
	}
	for _, c := range mach.Channels {
		shape.Channels = append(shape.Channels, c.Name) // not its socket: the host's side
	}
	for _, d := range mach.Disks {
		sum, err := content(d.Path)
		if err != nil {
			return "", err
		}
		shape.Disks = append(shape.Disks, fmt.Sprintf("%s %v %s %s", d.Serial, d.ReadOnly, d.Format, sum))
	}
	b, _ := json.Marshal(shape)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}

// hypervisorCache is hypervisorBuild's file in the snapshots directory.
const hypervisorCache = "hypervisor.cache"

// hypervisorBuild identifies the QEMU that runs the VM: its version line
// and its binary's size and time (a rebuilt package of the same version
// may lay devices out differently). The version line is kept in cache,
// under the binary's identity (path, inode, size, time), so that a start
// from a snapshot does not run QEMU once more just to ask it.
func hypervisorBuild(ctx context.Context, cache string) (string, error) {
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	ino := uint64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	id := fmt.Sprintf("%s %d %d %d", bin, ino, fi.Size(), fi.ModTime().UnixNano())
	var seen struct{ ID, Line string }
	if b, err := os.ReadFile(cache); err == nil && json.Unmarshal(b, &seen) == nil && seen.ID == id && seen.Line != "" {
		return fmt.Sprintf("%s %d %d", seen.Line, fi.Size(), fi.ModTime().UnixNano()), nil
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	seen.ID, seen.Line = id, string(line)
	_ = fsutil.WriteJSON(cache, seen) // a cache: the next start asks QEMU again
	return fmt.Sprintf("%s %d %d", line, fi.Size(), fi.ModTime().UnixNano()), nil
}

// snapshotPlan is one boot's use of the cache: the state to load, if
// there is one, and where to save one otherwise.
type snapshotPlan struct {
	dir, key   string
	hypervisor string
	restore    *os.File // nil: boot cold, then save
}

func (p *snapshotPlan) statePath() string { return filepath.Join(p.dir, p.key+".state") }
func (p *snapshotPlan) metaPath() string  { return filepath.Join(p.dir, p.key+".json") }

func (p *snapshotPlan) close() {
	if p != nil && p.restore != nil {
		p.restore.Close()
	}
}

// discard removes a state that did not load.
func (p *snapshotPlan) discard() {
	os.Remove(p.statePath())
	os.Remove(p.metaPath())
}

// planSnapshot finds the saved state of mach, if any.
func (m *monitor) planSnapshot(ctx context.Context, mach vmm.Machine) (*snapshotPlan, error) {
	dir := m.home.Snapshots()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hv, err := hypervisorBuild(ctx, filepath.Join(dir, hypervisorCache))
	if err != nil {
		return nil, err
	}
	key, err := snapshotKey(mach, hv, m.cfg.ImageDigest)
	if err != nil {
		return nil, err
	}
	p := &snapshotPlan{dir: dir, key: key, hypervisor: hv}
	var meta snapshotMeta
	b, err := os.ReadFile(p.metaPath())
	if err == nil && json.Unmarshal(b, &meta) == nil && meta.Key == key && meta.Hypervisor == hv {
		if f, err := os.Open(p.statePath()); err == nil {
			p.restore = f
		}
	}
	return p, nil
}

// readyProbe is what tells that the app is ready to be saved: its health
// check, else a TCP connect to its first published port; nil when it has
// neither (then the save waits snapshotSettle after the start).
func (m *monitor) readyProbe() *guestapi.Probe {
	if hc := m.cfg.Health; hc != nil {
		return &guestapi.Probe{Port: hc.Port, HTTPPath: hc.HTTPPath, TimeoutMS: int(hc.Timeout / time.Millisecond)}
	}
	if len(m.cfg.Publish) > 0 && m.cfg.Publish[0].Proto == "tcp" {
		return &guestapi.Probe{Port: m.cfg.Publish[0].GuestPort, TimeoutMS: 2000}
	}
	return nil
}

// snapshotSettle is how long after its start an app with neither a
// health check nor a published port is given before it is saved.
const snapshotSettle = 2 * time.Second

// saveWhenReady saves vm's state once its app is ready (see readyProbe).
func (m *monitor) saveWhenReady(ctx context.Context, vm *vmm.VM, p *snapshotPlan) {
	probe := m.readyProbe()
	deadline := time.Now().Add(5 * time.Minute)
	if probe == nil {
		select {
		case <-time.After(snapshotSettle):
		case <-ctx.Done():
			return
		}
	}
	for probe != nil {
		if err := vm.Probe(ctx, *probe); err == nil {
			break
		}
		if time.Now().After(deadline) {
			m.log.Warn("snapshot: the app never became ready: not saved")
			return
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
	if err := m.save(ctx, vm, p); err != nil {
		m.log.Warn("snapshot: not saved", "err", err)
		return
	}
	m.update(ctx, "snapshot saved", func(s *State) { s.Snapshot = SnapshotSaved })
}

func (m *monitor) save(ctx context.Context, vm *vmm.VM, p *snapshotPlan) error {
	suffix := make([]byte, 6)
	rand.Read(suffix)
	tmp := p.statePath() + ".tmp-" + hex.EncodeToString(suffix)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // a no-op once renamed
	defer f.Close()
	st, err := vm.Snapshot(ctx, f)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.statePath()); err != nil {
		return err
	}
	meta := snapshotMeta{Key: p.key, Image: m.cfg.Image, ImageDigest: m.cfg.ImageDigest, Hypervisor: p.hypervisor,
		Saved: time.Now().UTC(), Bytes: st.Bytes, SaveMS: st.Duration.Milliseconds()}
	b, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(p.metaPath()+".tmp", b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(p.metaPath()+".tmp", p.metaPath()); err != nil {
		return err
	}
	m.log.Info("snapshot saved", "bytes", st.Bytes, "took", st.Duration.Round(time.Millisecond), "key", p.key[:12])
	return nil
}

// PruneSnapshots removes from dir the saved states of images that keep
// does not know any more (by their manifest digest), those whose record
// is unreadable, and what interrupted saves left (temporary files
// untouched for 10 minutes); it returns how many
// states it removed and the bytes freed.
func PruneSnapshots(dir string, keep func(imageDigest string) bool) (int, int64, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	n, freed := 0, int64(0)
	remove := func(name string) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil {
			if os.Remove(p) == nil {
				freed += fi.Size()
			}
		}
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case filepath.Ext(name) == ".state":
			key := name[:len(name)-len(".state")]
			var meta snapshotMeta
			b, err := os.ReadFile(filepath.Join(dir, key+".json"))
			if err != nil || json.Unmarshal(b, &meta) != nil || !keep(meta.ImageDigest) {
				remove(name)
				remove(key + ".json")
				n++
			}
		case name == hypervisorCache:
		case filepath.Ext(name) == ".json":
			if _, err := os.Stat(filepath.Join(dir, name[:len(name)-len(".json")]+".state")); errors.Is(err, os.ErrNotExist) {
				remove(name)
			}
		default: // an interrupted save's temporary file, unless a save may still be writing it
			if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > 10*time.Minute {
				remove(name)
			}
		}
	}
	return n, freed, nil
}
