package instance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nosproject/nos/bootable"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/store"
	"github.com/nosproject/nos/vmm"
	"github.com/nosproject/nos/vmm/accel"
)

// Create makes a new instance of an image from the run options: it checks
// everything that can be checked before booting (image, QEMU, ports, name,
// accelerator) and writes the instance's directory. Nothing is written
// when a check fails.
func Create(ctx context.Context, st *store.Store, is *Instances, o Options) (*Instance, string, error) {
	im, err := bootable.Load(ctx, st, o.Image)
	if err != nil {
		return nil, "", err
	}
	icfg := im.Config
	kernelPath, err := im.Kernel(ctx, is.home.UnpackedKernels())
	if err != nil {
		return nil, "", err
	}
	drv, err := driver(DefaultHypervisor)
	if err != nil {
		return nil, "", err
	}
	if err := drv.Check(ctx); err != nil {
		return nil, "", err
	}
	if o.Health != nil && o.Health.Port == 0 {
		o.Health.Port = healthPort(o, icfg)
		if o.Health.Port == 0 {
			return nil, "", fmt.Errorf("health check: no guest port to probe; give --health-port, or publish or expose one: %w", ErrBadFlag)
		}
	}
	if o.Health != nil && icfg.InitAPI < image.InitAPIProbes {
		return nil, "", fmt.Errorf("image %s was built by an older nos, whose init cannot run health checks (they run inside the guest now): build it again with this nos: %w", o.Image, ErrBadFlag)
	}
	if icfg.Kernel.NoNetwork && (len(o.Publish) > 0 || o.Health != nil) {
		return nil, "", fmt.Errorf("image %s runs a kernel without networking (%s): -p and health checks need one built with `nos kernel build --features net`: %w", o.Image, icfg.Kernel.Version, ErrBadFlag)
	}
	if err := checkVolumes(o.Volumes, o.Binds, icfg, o.Image); err != nil {
		return nil, "", err
	}
	if err := checkNetworks(o, icfg, o.Image); err != nil {
		return nil, "", err
	}
	if o.NoNIC && len(o.Publish) > 0 {
		return nil, "", fmt.Errorf("--network none gives the instance no NIC: -p has nothing to publish: %w", ErrBadFlag)
	}
	if err := checkHosts(o, icfg); err != nil {
		return nil, "", err
	}
	if (o.Stdin || o.TTY) && icfg.InitAPI < image.InitAPIInteractive {
		return nil, "", fmt.Errorf("image %s was built by an older nos, whose init has no stdin or terminal for the application (-i, -t): build it again with this nos: %w", o.Image, ErrBadFlag)
	}
	writable, rootNote, err := rootMode(o, icfg)
	if err != nil {
		return nil, "", err
	}
	if o.AutoRemove && o.Restart.Name != "" && o.Restart.Name != RestartNo {
		return nil, "", fmt.Errorf("--rm and --restart %s conflict: an instance that restarts is never removed: %w", o.Restart.Name, ErrBadFlag)
	}
	acc, note, err := accel.Choose(ctx, o.Accel, is.home.Cache())
	if errors.Is(err, accel.ErrUnknown) {
		return nil, "", fmt.Errorf("%w: %w", err, ErrBadFlag)
	}
	if err != nil {
		return nil, "", err
	}

	unlock, err := is.lockAll(ctx)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	all, err := is.List()
	if err != nil {
		return nil, "", err
	}
	if err := checkConflicts(all, o); err != nil {
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
	l := launchSpec(icfg, o, hostname)
	cfg := Config{
		ID: id, Name: o.Name, Image: im.Ref.Name + ":" + im.Ref.Tag, ImageDigest: im.Ref.Manifest.Digest.String(),
		Created:    time.Now().UTC(),
		Entrypoint: l.Argv, Env: l.Env, WorkingDir: icfg.WorkingDir,
		Hypervisor:  DefaultHypervisor,
		Publish:     o.Publish,
		MemoryMiB:   firstNonZero(o.MemoryMiB, icfg.MemoryMiB, image.DefaultMemoryMiB),
		CPUs:        firstNonZero(o.CPUs, icfg.CPUs, image.DefaultCPUs),
		Accel:       acc,
		Cmdline:     cmdline(icfg.KernelCmdline, acc),
		NoNetwork:   icfg.Kernel.NoNetwork || o.NoNIC,
		RootFS:      icfg.RootFS,
		User:        icfg.User,
		Caps:        append(slices.Clone(icfg.Caps), o.CapAdd...),
		Restart:     o.Restart,
		Health:      o.Health,
		AutoRemove:  o.AutoRemove,
		StopTimeout: o.StopTimeout,
		Labels:      maps.Clone(o.Labels),
		Hosts:       slices.Clone(o.AddHosts),
		HostPorts:   slices.Clone(o.HostPorts),
		InitAPI:     icfg.InitAPI,
		NoExec:      icfg.NoExec,
		Stdin:       o.Stdin,
		TTY:         o.TTY,
		Rows:        o.Rows,
		Cols:        o.Cols,
		Snapshot:    o.Snapshot,
	}
	if err := checkFits(drv, cfg.MemoryMiB, o.MemoryMiB != 0, kernelPath, im.Initrd, o.Image); err != nil {
		return nil, "", err
	}
	if cfg.Snapshot {
		cfg.Cmdline += " " + SnapshotCmdline
	}
	cfg.WritableRoot, cfg.Tmpfs = writable, o.Tmpfs
	if writable {
		cfg.RootTmpfsSize = o.RootTmpfsSize
	}
	if o.User != nil {
		cfg.User = o.User
	}
	cfg.Volumes, cfg.Binds = o.Volumes, o.Binds
	if cfg.Snapshot {
		if err := checkSnapshot(&cfg, len(o.Networks)); err != nil { // before the networks are joined
			return nil, "", err
		}
	}
	if err := is.prepareVolumes(ctx, cfg.Volumes, cfg.User); err != nil {
		return nil, "", err
	}
	cfg.Caps = slices.Compact(slices.Sorted(slices.Values(cfg.Caps)))
	if cfg.Restart.Name == "" {
		cfg.Restart.Name = RestartNo
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if os.Geteuid() == 0 {
		if cfg.JailUID, err = freeJailUID(all); err != nil {
			return nil, "", err
		}
	}
	if !cfg.NoNetwork && len(o.Networks) == 0 {
		if cfg.UserProxy, err = userProxy(cfg); err != nil {
			return nil, "", err
		}
	}
	if cfg.Networks, err = is.joinNetworks(ctx, cfg.ID, cfg.Name, o.Networks); err != nil {
		return nil, "", err
	}
	in, err := is.write(cfg, kernelPath, im.Initrd, im.RootDisk)
	if err != nil {
		if len(cfg.Networks) > 0 {
			_ = is.leaveNetworks(context.WithoutCancel(ctx), &Instance{Config: cfg})
		}
		return nil, "", err
	}
	return in, joinNotes(note, rootNote), nil
}

// rootMode decides whether the image's root disk is writable: yes unless
// --read-only, for an image whose init can make it so. Images without a
// root disk run from the initramfs, already writable RAM, where the flags
// that shape a root disk mean nothing and are refused; images of an older
// init keep the read-only root they had, with a note.
func rootMode(o Options, icfg image.Config) (writable bool, note string, err error) {
	if o.ReadOnlyRoot && o.RootTmpfsSize != 0 {
		return false, "", fmt.Errorf("--read-only and --tmpfs-size conflict: a read-only root has no writable layer to size: %w", ErrBadFlag)
	}
	if icfg.RootFS == "" {
		if o.ReadOnlyRoot || o.RootTmpfsSize != 0 {
			return false, "", fmt.Errorf("image %s has no root disk: its files are in the initramfs, in RAM, always writable and lost at stop; --read-only and --tmpfs-size apply to images with a root disk (dynamic programs, root trees, container images): %w", o.Image, ErrBadFlag)
		}
	}
	if icfg.InitAPI < image.InitAPIWritableRoot {
		if o.RootTmpfsSize != 0 || len(o.Tmpfs) > 0 {
			return false, "", fmt.Errorf("image %s was built by an older nos, whose init cannot mount a tmpfs or a writable root: build it again with this nos: %w", o.Image, ErrBadFlag)
		}
		if icfg.RootFS != "" && !o.ReadOnlyRoot {
			note = fmt.Sprintf("note: image %s was built by an older nos, whose init keeps the root read-only: build it again with this nos for a writable root", o.Image)
		}
		return false, note, nil
	}
	return icfg.RootFS != "" && !o.ReadOnlyRoot, "", nil
}

func joinNotes(notes ...string) string {
	var out []string
	for _, n := range notes {
		if n != "" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "\n")
}

// checkConflicts refuses a name or a host port another of all (every
// instance, read under the instances lock) holds.
// Called with the instances lock held.
func checkConflicts(all []*Instance, o Options) error {
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
	// A jailed hypervisor reads the kernel and initramfs as its own user,
	// through descriptors nos opens: it gets copies it owns, as
	// Firecracker's jailer gives its VMs (the store's blobs stay private).
	// The root disk is read through a descriptor alone.
	place := linkOrCopy
	if cfg.JailUID != 0 {
		place = func(src, dst string) error { return copyOwned(src, dst, cfg.JailUID) }
	}
	if err := place(kernelPath, filepath.Join(dir, kernelFile)); err != nil {
		return fail(err)
	}
	if err := place(initrdPath, filepath.Join(dir, initrdFile)); err != nil {
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

// copyOwned copies src to dst, readable by uid alone.
func copyOwned(src, dst string, uid uint32) error {
	if err := fsutil.CopyFile(src, dst, 0o400); err != nil {
		return err
	}
	return os.Chown(dst, int(uid), int(uid))
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
	if err := removeDir(in.Dir); err != nil {
		return in, err
	}
	return in, is.leaveNetworks(ctx, in)
}

// removeDir deletes an instance directory so that a crash halfway leaves
// nothing List would show: the config goes first.
func removeDir(dir string) error {
	if err := os.Remove(filepath.Join(dir, configFile)); err != nil && !os.IsNotExist(err) {
		return err
	}
	// A killed monitor's socket, where the directory's path was too long
	// for one.
	if sock := socketPath(dir, monitorSocket); filepath.Dir(sock) != dir {
		_ = os.Remove(sock)
		removeSocketDir(dir)
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
			if err := is.leaveNetworks(ctx, in); err != nil {
				return removed, err
			}
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

// checkHosts refuses --add-host and --host-port where they cannot work.
func checkHosts(o Options, icfg image.Config) error {
	if len(o.AddHosts) > 0 && icfg.InitAPI < image.InitAPIHosts {
		return fmt.Errorf("image %s was built by an older nos, whose init writes no --add-host entries: build it again with this nos: %w", o.Image, ErrBadFlag)
	}
	gw := reachesHost(o.AddHosts)
	switch {
	case len(o.HostPorts) > 0 && !gw:
		return fmt.Errorf("--host-port opens host ports to an instance that reaches the host: add --add-host NAME:%s: %w", HostGateway, ErrBadFlag)
	case gw && (o.NoNIC || icfg.Kernel.NoNetwork):
		return fmt.Errorf("--add-host NAME:%s: the instance has no network to reach the host on: %w", HostGateway, ErrBadFlag)
	case gw && len(o.Networks) > 0:
		return fmt.Errorf("--add-host NAME:%s works on the default user-mode network only: instances on private networks cannot reach the host's addresses (the network's resolver excepted); publish the host's service on another instance, or run without --network: %w", HostGateway, ErrBadFlag)
	}
	return nil
}

// checkFits refuses a guest too small for the hypervisor to load the
// image's kernel and initramfs into: it would not fail, it would corrupt
// itself and hang until the boot timeout.
func checkFits(drv vmm.Driver, mib int, flag bool, kernel, initrd, image string) error {
	l, ok := drv.(vmm.Loader)
	if !ok {
		return nil
	}
	least, err := l.LeastMemory(kernel, initrd)
	if err != nil {
		return err
	}
	if int64(mib)<<20 >= least {
		return nil
	}
	what := fmt.Sprintf("-m %dm", mib)
	if !flag {
		what = fmt.Sprintf("image %s's memory (%d MiB)", image, mib)
	}
	return fmt.Errorf("%s is too small for image %s: its kernel and initramfs load only into %d MiB or more; give -m %dm or more: %w", what, image, least>>20, least>>20, ErrBadFlag)
}
