package assemble

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"
	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/store"
)

// Options say what to build and how the image should run by default.
type Options struct {
	// Source is a Go main package (a directory, ./cmd/x or an import path,
	// resolved in Dir) or the path of a static Linux amd64 executable.
	Source string
	// Dir is where Go package paths are resolved; "" is the current directory.
	Dir string
	// Name and Tag name the image; Name defaults to the program's name.
	Name, Tag string

	Args      []string
	Env       []string // KEY=VALUE
	Ports     []string // exposed, "80" or "80/tcp"
	MemoryMiB int
	CPUs      int
	WorkDir   string

	// Kernel finds the kernel to boot.
	Kernel kernel.Finder
	// Needs lists the kernel features the application needs (see
	// kernel/config), nil for the default. Without "net" the image gets no
	// network even on a kernel that has one.
	Needs []string
	// KernelFor, when set, replaces Kernel: it finds a kernel with the
	// features the image needs (Needs, or the default for its kind: net,
	// and blk for a root disk).
	KernelFor func(needs []string) kernel.Finder
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string

	// Rootfs is a directory holding the application's root filesystem,
	// and FromOCI a container image reference (see package oci); with
	// either, Source is empty and the files go on a root disk.
	Rootfs, FromOCI string
	// RootDisk puts a one-program source (a Go package, a static
	// executable) on a read-only root disk instead of the initramfs: the
	// guest then holds only the pages of the program it reads, not a copy
	// of the whole file in RAM (less memory, a larger image and kernel:
	// BENCHMARKS.md, "The app on a root disk").
	RootDisk bool
	// Adds are HOST_PATH[:GUEST_PATH] files or directories to add.
	Adds []string
	// Entrypoint replaces the program's path (or the container image's
	// entrypoint) as the command.
	Entrypoint []string
	// User is who the application runs as: USER[:GROUP], by name (looked
	// up in the image's /etc/passwd) or number.
	User string
	// Caps are the capabilities the application keeps (none by default).
	Caps []string
	// NoExec refuses nos exec in instances of the image.
	NoExec bool
	// Packages tells which distribution package the files taken from the
	// host for a dynamically linked program came from (see HostPackages);
	// nil records the files without their packages.
	Packages PackageDB
	// Init is the path of the nos-init binary (see FindInit).
	Init string
	// Created is recorded in the store's index, not in the image, so that
	// it does not change the digest; zero means now.
	Created time.Time
	Log     *slog.Logger
}

// Result describes a stored image.
type Result struct {
	Name, Tag string
	Digest    string
	Size      int64
	Kernel    *kernel.Kernel
	// Warnings are what the user should know about the image, such as the
	// files of a container image that could not be kept as they were.
	Warnings []string
}

// DefaultCmdline is the kernel command line of nos images: the console on
// the serial port (kept in a log, not shown to the user), quiet (warnings,
// errors and panics only: every byte through the emulated UART costs boot
// time; --kernel-arg loglevel=7 brings the messages back), reboot on panic
// (QEMU runs with -no-reboot, so a panic ends the VM and is reported), no
// legacy BSD ptys (pty.legacy_count=0: creating the default 256 pairs was
// the slowest step of the kernel's boot, 157 ms of initcalls under TCG;
// Unix98 ptys remain), and no waiting for a root device: the initramfs is
// the root. vm.overcommit_memory=1: the Go runtime maps a 32 MiB heap
// arena index at start, which the default heuristic refuses in a guest
// with little more RAM (a do-nothing Go init died below about 46 MiB; the
// example app needs 44 MiB with it, 46 without). rcupdate.rcu_expedited=1:
// the kernel applies sysctl.* arguments just before running init and
// unmounts its internal proc mount with a normal RCU grace period; under
// heavy TCG load (50 guests started at once on 2 cores) 2 to 6 of 50
// guests hung there, idle, and never ran init; with expedited grace
// periods, and without the sysctl, none of 50 did (BENCHMARKS.md).
// rootfstype=ramfs: the kernel unpacks the initramfs into a tmpfs limited
// to half the guest's memory, so an image whose files take 10 MB (the
// example's) failed to unpack ("write error") below 36 MiB; ramfs has no
// limit, and the places an app writes to (/tmp, /run, /dev/shm) are
// tmpfs mounts of their own with theirs.
const DefaultCmdline = "console=ttyS0 quiet panic=-1 random.trust_cpu=on pty.legacy_count=0 sysctl.vm.overcommit_memory=1 rcupdate.rcu_expedited=1 rootfstype=ramfs"

// Image builds the application o describes into an image and stores it in
// st: detect the source, stage its files, pack them into a root disk and,
// once the kernel is found, an initramfs with its modules, and store.
func Image(ctx context.Context, st *store.Store, o Options) (*Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := newPlan(o)
	if err != nil {
		return nil, err
	}
	cfg, src := p.cfg, p.src

	tmp, err := os.MkdirTemp("", "nos-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	sg, err := newStaging(o.Init, tmp, src.Layout(), o, log)
	if err != nil {
		return nil, err
	}
	defer sg.close()
	if err := sg.stageSource(ctx, src, &cfg); err != nil {
		return nil, err
	}
	disk, err := packRootDisk(ctx, sg, tmp, log)
	if err != nil {
		return nil, err
	}
	ref, err := imageRef(o, src)
	if err != nil {
		return nil, err
	}

	k, mods, err := findKernel(ctx, p.finder, src.Layout(), p.needs, log)
	if err != nil {
		return nil, err
	}
	if err := setKernel(&cfg, k, mods, p.needs, o.Needs); err != nil {
		return nil, err
	}
	initrd := filepath.Join(tmp, "initramfs")
	comp, mt := initramfsFormat(k)
	if err := packInitramfs(sg.archive, mods, comp, initrd); err != nil {
		return nil, err
	}
	log.Debug("initramfs written", "path", initrd, "compression", comp)
	res, err := storeImage(ctx, st, cfg, k, append([]store.LayerFile{{Path: initrd, MediaType: mt}}, disk...), tmp, ref)
	if err != nil {
		return nil, err
	}
	res.Warnings = sg.warnings
	return res, nil
}

// plan is what the options decide before any file is made: the source,
// the config they give, and the kernel features and finder.
type plan struct {
	src    Source
	cfg    image.Config
	needs  []string
	finder kernel.Finder
}

func newPlan(o Options) (*plan, error) {
	if err := checkInit(o.Init); err != nil {
		return nil, err
	}
	cfg, err := configFromOptions(o)
	if err != nil {
		return nil, err
	}
	src, err := detect(o)
	if err != nil {
		return nil, err
	}
	if o.RootDisk && src.Layout() == InInitramfs {
		src = onRootDisk{src}
	}
	needs, err := kernelNeeds(o, src.Layout())
	if err != nil {
		return nil, err
	}
	finder, err := kernelFinder(o, needs)
	if err != nil {
		return nil, err
	}
	return &plan{src: src, cfg: cfg, needs: needs, finder: finder}, nil
}

// imageRef is the image's name and tag, as given, else the source's name
// and the default tag, with the creation time.
func imageRef(o Options, src Source) (store.ImageParts, error) {
	ref := store.ImageParts{Name: o.Name, Tag: o.Tag, Created: o.Created}
	if ref.Name == "" {
		ref.Name = src.Name()
	}
	if ref.Tag == "" {
		ref.Tag = image.DefaultTag
	}
	if _, _, err := store.ParseReference(ref.Name + ":" + ref.Tag); err != nil {
		return ref, fmt.Errorf("%w (name the image with -t)", err)
	}
	return ref, nil
}

// storeImage stores the kernel, the packed layers and the config, which
// records the kernel's digest, under ref's name and tag.
func storeImage(ctx context.Context, st *store.Store, cfg image.Config, k *kernel.Kernel, packed []store.LayerFile, tmp string, ref store.ImageParts) (*Result, error) {
	kl, kdigest, err := kernelLayer(k, tmp)
	if err != nil {
		return nil, fmt.Errorf("storing kernel: %w", err)
	}
	cfg.Kernel.Digest = kdigest
	if ref.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	ref.Layers = append([]store.LayerFile{kl}, packed...)
	if efi := efiKernelLayer(k); efi != nil {
		ref.Layers = append(ref.Layers, *efi)
	}
	img, err := st.WriteImage(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &Result{Name: img.Name, Tag: img.Tag, Digest: img.Manifest.Digest.String(), Size: img.Size, Kernel: k}, nil
}

// initramfsFormat is how the initramfs is compressed for kernel k, and
// the media type of that layer: LZ4, which the guest unpacks several
// times faster under TCG, where k can unpack it; gzip otherwise (a nos
// kernel built before 2026-12-04, a kernel whose configuration nos
// cannot read).
//
// $NOS_INITRAMFS_COMPRESSION=gzip asks for gzip whatever the kernel: the
// knob scripts/bench-initramfs.sh compares the two with.
func initramfsFormat(k *kernel.Kernel) (initramfs.Compression, string) {
	if k.UnpacksLZ4() && os.Getenv("NOS_INITRAMFS_COMPRESSION") != "gzip" {
		return initramfs.LZ4, image.MediaTypeInitramfs
	}
	return initramfs.Gzip, image.MediaTypeInitramfsGzip
}
