package instance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/store"
	"github.com/nosproject/nos/vmm/qemu"
)

// Create makes a new instance of an image from the run options: it checks
// everything that can be checked before booting (image, QEMU, ports, name,
// accelerator) and writes the instance's directory. Nothing is written
// when a check fails.
func Create(ctx context.Context, st *store.Store, is *Instances, o Options) (*Instance, string, error) {
	img, icfg, files, err := loadImage(ctx, st, o.Image)
	if err != nil {
		return nil, "", err
	}
	kernelPath, initrdPath := files.kernel, files.initrd
	if files.kernelGzip {
		if kernelPath, err = unpackedKernel(ctx, is.unpackedDir(), files.kernel); err != nil {
			return nil, "", fmt.Errorf("image %s: %w", o.Image, err)
		}
	}
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		return nil, "", fmt.Errorf("%s not found: install QEMU with `sudo apt-get install qemu-system-x86`: %w", qemu.Binary, ErrQEMUMissing)
	}
	if o.Health != nil && o.Health.Port == 0 {
		o.Health.Port = healthPort(o, icfg)
		if o.Health.Port == 0 {
			return nil, "", fmt.Errorf("health check: no guest port to probe; give --health-port, or publish or expose one: %w", ErrBadFlag)
		}
	}
	if icfg.Kernel.NoNetwork && (len(o.Publish) > 0 || o.Health != nil) {
		return nil, "", fmt.Errorf("image %s runs a kernel without networking (%s): -p and health checks need one built with `nos kernel build --features net`: %w", o.Image, icfg.Kernel.Version, ErrBadFlag)
	}
	if o.AutoRemove && o.Restart.Name != "" && o.Restart.Name != RestartNo {
		return nil, "", fmt.Errorf("--rm and --restart %s conflict: an instance that restarts is never removed: %w", o.Restart.Name, ErrBadFlag)
	}
	accel, note, err := ChooseAccel(ctx, o.Accel, filepath.Join(o.Home, "cache"))
	if err != nil {
		return nil, "", err
	}

	unlock, err := is.lockAll(ctx)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	if err := is.checkConflicts(o); err != nil {
		return nil, "", err
	}
	for _, f := range o.Publish {
		if err := checkHostPort(f); err != nil {
			return nil, "", err
		}
	}

	id := newID()
	hostname := o.Name
	if hostname == "" {
		hostname = id[:12]
	}
	g := guestConfig(icfg, o, hostname)
	cfg := Config{
		ID: id, Name: o.Name, Image: img.Name + ":" + img.Tag, ImageDigest: img.Manifest.Digest.String(),
		Created:    time.Now().UTC(),
		Entrypoint: g.Argv, Env: g.Env, WorkingDir: g.WorkingDir,
		Publish:     o.Publish,
		MemoryMiB:   firstNonZero(o.MemoryMiB, icfg.MemoryMiB, image.DefaultMemoryMiB),
		CPUs:        firstNonZero(o.CPUs, icfg.CPUs, image.DefaultCPUs),
		Accel:       accel,
		Cmdline:     cmdline(icfg.KernelCmdline, accel),
		NoNetwork:   icfg.Kernel.NoNetwork,
		RootFS:      icfg.RootFS,
		User:        icfg.User,
		Caps:        append(slices.Clone(icfg.Caps), o.CapAdd...),
		Restart:     o.Restart,
		Health:      o.Health,
		AutoRemove:  o.AutoRemove,
		StopTimeout: o.StopTimeout,
	}
	if o.User != nil {
		cfg.User = o.User
	}
	cfg.Caps = slices.Compact(slices.Sorted(slices.Values(cfg.Caps)))
	if cfg.Restart.Name == "" {
		cfg.Restart.Name = RestartNo
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	in, err := is.write(cfg, kernelPath, initrdPath, files.rootDisk)
	if err != nil {
		return nil, "", err
	}
	return in, note, nil
}

// checkConflicts refuses a name or a host port another instance holds.
// Called with the instances lock held.
func (is *Instances) checkConflicts(o Options) error {
	all, err := is.List()
	if err != nil {
		return err
	}
	for _, in := range all {
		if o.Name != "" && in.Config.Name == o.Name {
			return fmt.Errorf("name %q is used by instance %s: remove it (nos rm %s) or choose another --name: %w", o.Name, in.Config.ID[:12], o.Name, ErrNameInUse)
		}
		if !in.Running() {
			continue
		}
		for _, mine := range o.Publish {
			for _, theirs := range in.Config.Publish {
				if mine.HostPort == theirs.HostPort && mine.Proto == theirs.Proto {
					return fmt.Errorf("-p %d: host port is published by instance %s: choose another host port: %w", mine.HostPort, in.Config.ID[:12], ErrPortInUse)
				}
			}
		}
	}
	return nil
}

// write creates the instance directory. The image's kernel and initramfs
// are hard-linked into it, so removing the image later cannot break the
// instance. The config is written last: until then List skips the
// directory, and a crash leaves only an ignorable leftover.
func (is *Instances) write(cfg Config, kernelPath, initrdPath, rootDisk string) (*Instance, error) {
	dir := is.dir(cfg.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating instance directory: %w", err)
	}
	fail := func(err error) (*Instance, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("creating instance: %w", err)
	}
	if err := linkOrCopy(kernelPath, filepath.Join(dir, kernelFile)); err != nil {
		return fail(err)
	}
	if err := linkOrCopy(initrdPath, filepath.Join(dir, initrdFile)); err != nil {
		return fail(err)
	}
	if rootDisk != "" {
		if err := linkOrCopy(rootDisk, filepath.Join(dir, rootDiskFile)); err != nil {
			return fail(err)
		}
	}
	st := State{Status: StatusCreated, Accel: cfg.Accel}
	if err := writeJSON(filepath.Join(dir, stateFile), st); err != nil {
		return fail(err)
	}
	if err := writeJSON(filepath.Join(dir, configFile), cfg); err != nil {
		return fail(err)
	}
	return &Instance{Config: cfg, State: st, Dir: dir}, nil
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst)
}

// copyFile copies src to dst, replacing dst; never a link.
func copyFile(src, dst string) error {
	_ = os.Remove(dst)
	return fsutil.CopyFile(src, dst, 0o600)
}

// healthPort picks the guest port a health check probes when none is given:
// the first published guest port, else the image's first exposed TCP port.
func healthPort(o Options, icfg image.Config) int {
	for _, f := range o.Publish {
		if f.Proto == "tcp" {
			return f.GuestPort
		}
	}
	for _, p := range icfg.ExposedPorts {
		var n int
		if _, err := fmt.Sscanf(p, "%d/tcp", &n); err == nil {
			return n
		}
	}
	return 0
}

// Remove deletes a stopped instance; with force, a running one is killed
// first.
func (is *Instances) Remove(ctx context.Context, ref string, force bool) (*Instance, error) {
	unlock, err := is.lockAll(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	in, err := is.Get(ref)
	if err != nil {
		return nil, err
	}
	// A start in progress finishes first, so its monitor is either alive
	// (and killed below) or never ran; then nothing writes into the
	// directory while it is removed.
	unlockStart, err := lockfile.Lock(ctx, filepath.Join(in.Dir, startLock), false)
	if err != nil {
		return nil, err
	}
	defer unlockStart()
	in.MonitorAlive = lockfile.Held(filepath.Join(in.Dir, monitorLock))
	if in.MonitorAlive {
		if !force {
			return nil, fmt.Errorf("instance %s: %w: stop it first (nos stop %s) or use rm -f", displayName(in), ErrRunning, ref)
		}
		if err := Kill(ctx, in, 0); err != nil && !errors.Is(err, ErrNotRunning) {
			return nil, err
		}
		if err := waitMonitor(ctx, in.Dir, 30*time.Second); err != nil {
			return nil, err
		}
	}
	return in, removeDir(in.Dir)
}

// removeDir deletes an instance directory so that a crash halfway leaves
// nothing List would show: the config goes first.
func removeDir(dir string) error {
	if err := os.Remove(filepath.Join(dir, configFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	var err error
	for i := 0; i < 3; i++ { // a file appearing meanwhile fails the final rmdir
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

func displayName(in *Instance) string {
	if in.Config.Name != "" {
		return in.Config.Name
	}
	return in.Config.ID[:12]
}

// Prune removes every instance that is not running, and leftovers of
// instances whose creation or removal was interrupted.
func (is *Instances) Prune(ctx context.Context) ([]string, error) {
	unlock, err := is.lockAll(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ents, err := os.ReadDir(is.Dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if !e.IsDir() || !isID(e.Name()) {
			continue
		}
		in, err := is.read(e.Name())
		switch {
		case errors.Is(err, ErrNotFound): // no config: a leftover
			if !lockfile.Held(filepath.Join(is.dir(e.Name()), monitorLock)) {
				_ = os.RemoveAll(is.dir(e.Name()))
			}
			continue
		case err != nil:
			return removed, err
		case in.MonitorAlive:
			continue
		}
		gone, err := removeIfStopped(ctx, in)
		if err != nil {
			return removed, err
		}
		if gone {
			removed = append(removed, in.Config.ID[:12])
		}
	}
	return removed, nil
}

// removeIfStopped removes an instance unless a start, finished under its
// start lock, left it running.
func removeIfStopped(ctx context.Context, in *Instance) (bool, error) {
	unlock, err := lockfile.Lock(ctx, filepath.Join(in.Dir, startLock), false)
	if err != nil {
		return false, err
	}
	defer unlock()
	if lockfile.Held(filepath.Join(in.Dir, monitorLock)) {
		return false, nil
	}
	return true, removeDir(in.Dir)
}
