package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nosproject/nos/internal/home"

	"github.com/cavaliergopher/cpio"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"
	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/store"
)

// -compare: the same example application as
//
//	a. a nos image with nos's own built kernel,
//	b. a nos image with the distribution kernel nos fetched,
//	c. a conventional VM (Debian by debootstrap, systemd, networkd),
//	d. the floor: nos's kernel and machine with an init that only says
//	   it is ready,
//
// each booted -runs times in rounds (a, b, c, d, then again), under the
// same QEMU and accelerator; then the image sizes, and the least guest
// memory each still boots and serves with, by bisection.

// compareOptions are the flags of -compare.
type compareOptions struct {
	memLo, memHi int  // MiB; lo is assumed to fail
	memBoots     int  // boots that must all succeed at a size
	skipMemory   bool // no memory search
}

// Memory search timeouts: at least this long, else four times the
// variant's median boot time.
const probeLeast = 30 * time.Second

// compare holds what the comparison's variants share.
type compare struct {
	h     *harness
	f     *fleet
	procs *vmProcs

	builtKernel *kernel.Kernel // a and d
	// builtKernelStored is the built kernel as stored compressed (its
	// bzImage), whose size counts for d.
	builtKernelStored string
	distroKernel      string // b
	app               string // the application binary, as nos builds it
	appSHA            string
	memMiB            int // guest memory of the timed boots: the images' default

	conv      *convEntry
	convBuilt bool
	disk      convDisk
	overlays  int

	floorInit, floorInitrd string
	// nosCmdline and nosCPUs are what nos gave variant a's first instance;
	// the floor boots with them.
	nosCmdline string
	nosCPUs    int
}

// Images of the two nos variants in the private nos home.
const (
	imageBuiltKernel  = "cmp-nos-kernel"
	imageDistroKernel = "cmp-distro-kernel"
)

func runCompare(ctx context.Context, o options) error {
	switch {
	case o.runs < 1:
		return fmt.Errorf("-runs %d: want at least 1", o.runs)
	case o.accel != "auto" && o.accel != "tcg" && o.accel != "kvm":
		return fmt.Errorf("-accel %q: want auto, tcg or kvm", o.accel)
	case o.cmp.memLo < 1 || o.cmp.memHi <= o.cmp.memLo:
		return fmt.Errorf("-mem-low %d, -mem-high %d: want 1 <= low < high (MiB)", o.cmp.memLo, o.cmp.memHi)
	case o.cmp.memBoots < 1:
		return fmt.Errorf("-mem-boots %d: want at least 1", o.cmp.memBoots)
	}
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()
	c := &compare{h: h, f: newFleet(h), procs: newVMProcs()}
	// On a panic; the normal path cleans up below and checks the result.
	defer c.f.Cleanup()
	defer c.procs.killAll()
	rep, err := c.measure(ctx)
	if n := c.procs.killAll(); n > 0 {
		progress("cleanup: killed %d QEMU process(es) the comparison had started", n)
	}
	cerr := c.f.Cleanup()
	if err != nil {
		return errors.Join(err, cerr)
	}
	if cerr != nil {
		return cerr
	}
	if o.json {
		return writeJSON(os.Stdout, rep)
	}
	return writeCompareTable(os.Stdout, rep)
}

// cmpVariant is one of a, b, c, d while it is measured.
type cmpVariant struct {
	rep   *cmpVariantReport
	boot  func(ctx context.Context, memMiB int, timeout time.Duration) (bootOutcome, error)
	floor int // least memory nos accepts, for a and b
	times []time.Duration
}

func (c *compare) measure(ctx context.Context) (*compareReport, error) {
	h := c.h
	rep := &compareReport{Date: time.Now().UTC(), Runs: h.opts.runs, App: appPkg, MemBoots: h.opts.cmp.memBoots}
	var err error
	if rep.Machine, err = h.hostInfo(ctx); err != nil {
		return nil, fmt.Errorf("describing the machine: %w", err)
	}
	if err := c.findKernels(ctx); err != nil {
		return nil, err
	}

	// The application, built once as nos builds it; c runs this binary.
	c.app = filepath.Join(h.tmp, "app", "httpserver")
	progress("building %s as nos builds it (static, stripped)", appPkg)
	if _, err := h.goBuild(ctx, c.app, appPkg, "-buildvcs=false", "-ldflags=-s -w -buildid="); err != nil {
		return nil, err
	}
	if rep.AppBinary, err = describeApp(c.app); err != nil {
		return nil, err
	}
	c.appSHA = rep.AppBinary.SHA256

	va, vb, err := c.nosVariants(ctx)
	if err != nil {
		return nil, err
	}
	vc, err := c.conventionalVariant(ctx)
	if err != nil {
		return nil, fmt.Errorf("conventional VM: %w", err)
	}
	vd, err := c.floorVariant(ctx)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	rep.GuestMemMiB = c.memMiB
	vs := []*cmpVariant{va, vb, vc, vd}

	// Boot times, in rounds, so that changes in load hit every variant.
	n := h.opts.runs
	for i := range n {
		for _, v := range vs {
			o, err := v.boot(ctx, c.memMiB, bootTimeout)
			if err != nil {
				return nil, fmt.Errorf("%s, boot %d/%d: %w", v.rep.ID, i+1, n, err)
			}
			if !o.OK {
				return nil, fmt.Errorf("%s (%s), boot %d/%d: %s\n%s", v.rep.ID, v.rep.Name, i+1, n, o.Note, o.Detail)
			}
			v.times = append(v.times, o.Took)
			progress("round %d/%d: %s ready after %v", i+1, n, v.rep.ID, o.Took.Round(time.Millisecond))
		}
	}
	for _, v := range vs {
		if v.rep.Boot, err = summarizeDurations(v.times); err != nil {
			return nil, err
		}
	}
	rep.LoadAfterBoots = loadAvg()

	if !h.opts.cmp.skipMemory {
		for _, v := range vs {
			if v.rep.Memory, err = c.memorySearch(ctx, v); err != nil {
				return nil, fmt.Errorf("%s (%s), minimum memory: %w", v.rep.ID, v.rep.Name, err)
			}
		}
	}
	rep.Machine.LoadEnd = loadAvg()
	for _, v := range vs {
		rep.Variants = append(rep.Variants, *v.rep)
	}
	rep.Ratios = compareRatios(va.rep, vc.rep, vd.rep)
	rep.Targets = evaluateTargets(va.rep, vc.rep, vd.rep)
	return rep, nil
}

// findKernels finds nos's built kernel (a, d) and the distribution kernel
// (b: -kernel, else the one nos fetched).
func (c *compare) findKernels(ctx context.Context) error {
	// The kernel nos build picks for an image that needs networking, booted
	// as nos boots it: its ELF vmlinux through the PVH entry point.
	e, err := builtKernel([]string{"net"})
	if err != nil {
		return fmt.Errorf("variants a and d boot nos's own kernel, and there is none: run `make kernel` (%w)", err)
	}
	k := e.Kernel()
	if !k.HasNetwork() {
		return fmt.Errorf("nos's default built kernel %s (%s) has no networking, and the example serves HTTP: run `make kernel`", k.Version, k.Path)
	}
	c.builtKernelStored = k.Path // the compressed form, for sizes
	if k.Vmlinux != "" {
		k.Path = k.Vmlinux
	}
	c.builtKernel = k
	c.distroKernel = c.h.kernel
	if c.h.opts.kernel == "" {
		if c.distroKernel, err = distroKernel(ctx); err != nil {
			return err
		}
	}
	progress("kernels: a and d %s (%s), b %s", k.Version, k.Path, c.distroKernel)
	return nil
}

// nosVariants builds the example into an image with each kernel and
// describes both.
func (c *compare) nosVariants(ctx context.Context) (*cmpVariant, *cmpVariant, error) {
	var out []*cmpVariant
	for _, v := range []struct{ id, name, tag, kernel string }{
		{"a", "nos image, nos's own kernel", imageBuiltKernel, c.builtKernel.Path},
		{"b", "nos image, distribution kernel", imageDistroKernel, c.distroKernel},
	} {
		progress("%s: nos build --kernel %s -t %s %s", v.id, v.kernel, v.tag, appPkg)
		if _, err := c.h.runNos(ctx, "build", "--kernel", v.kernel, "-t", v.tag, appPkg); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", v.id, err)
		}
		im, err := c.h.inspect(ctx, v.tag)
		if err != nil {
			return nil, nil, err
		}
		k, i, err := layerSizes(im)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", v.id, err)
		}
		if im.Config.MemoryMiB <= 0 {
			return nil, nil, fmt.Errorf("%s: nos inspect gives no memory size", v.tag)
		}
		if c.memMiB == 0 {
			c.memMiB = im.Config.MemoryMiB
		} else if c.memMiB != im.Config.MemoryMiB {
			return nil, nil, fmt.Errorf("the two nos images have different memory sizes, %d and %d MiB", c.memMiB, im.Config.MemoryMiB)
		}
		sha, err := c.appInImage(ctx, v.tag)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", v.id, err)
		}
		if sha != c.appSHA {
			return nil, nil, fmt.Errorf("%s: the application in the image (sha256 %s) differs from the one the benchmark built for the conventional VM (%s): the build flags no longer match nos's", v.id, sha[:12], c.appSHA[:12])
		}
		tag := v.tag
		out = append(out, &cmpVariant{
			rep: &cmpVariantReport{
				ID: v.id, Name: v.name,
				Kernel: im.Config.Kernel.Version + " (" + v.kernel + ")",
				How:    "nos run -d --accel " + c.h.accel + " -p PORT:8080 -m SIZE " + tag + " (QEMU microvm, the image's kernel command line plus what nos adds)",
				Clock:  "exec of `nos run -d` (which starts QEMU at once) to the first HTTP 200",
				Size: cmpSize{Bytes: im.Size, What: "image total as nos inspect reports it (manifest + config + layers)", Parts: []cmpSizePart{
					{"kernel layer", k}, {"initramfs layer (LZ4 cpio)", i},
				}},
			},
			boot: func(ctx context.Context, memMiB int, timeout time.Duration) (bootOutcome, error) {
				return c.bootNos(ctx, tag, memMiB, timeout)
			},
			floor: instance.MinMemoryMiB,
		})
	}
	return out[0], out[1], nil
}

// appInImage returns the sha256 of /app/httpserver in the image's
// initramfs.
func (c *compare) appInImage(ctx context.Context, ref string) (string, error) {
	st, err := store.Open(home.Layout{Root: c.h.home}.Images())
	if err != nil {
		return "", err
	}
	img, err := st.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	man, err := st.Manifest(img.Manifest.Digest)
	if err != nil {
		return "", err
	}
	for _, l := range man.Layers {
		if !image.IsInitramfs(l.MediaType) {
			continue
		}
		f, err := os.Open(st.BlobPath(l.Digest))
		if err != nil {
			return "", err
		}
		defer f.Close()
		zr, err := initramfs.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("reading the initramfs: %w", err)
		}
		r := cpio.NewReader(zr)
		want := "app/" + filepath.Base(appPkg)
		for {
			hdr, err := r.Next()
			if err == io.EOF {
				return "", fmt.Errorf("no /%s in the image's initramfs", want)
			}
			if err != nil {
				return "", fmt.Errorf("reading the initramfs: %w", err)
			}
			if strings.TrimPrefix(hdr.Name, "/") != want {
				continue
			}
			sum := sha256.New()
			if _, err := io.Copy(sum, r); err != nil {
				return "", err
			}
			return hex.EncodeToString(sum.Sum(nil)), nil
		}
	}
	return "", fmt.Errorf("image %s has no initramfs layer", ref)
}

// instConfig is the part of `nos inspect INSTANCE` the floor copies.
type instConfig struct {
	ID     string `json:"ID"`
	Config struct {
		Cmdline string `json:"cmdline"`
		CPUs    int    `json:"cpus"`
	} `json:"Config"`
}

// bootNos starts the image detached on a free port (with -m memMiB) and
// waits at most timeout for its first HTTP 200, timed from just before
// `nos run -d` is executed; then removes the instance. The guest not
// serving in time, or stopping first, is a failed boot, not an error.
func (c *compare) bootNos(ctx context.Context, ref string, memMiB int, timeout time.Duration) (bootOutcome, error) {
	f, h := c.f, c.h
	port, err := freePort()
	if err != nil {
		return bootOutcome{}, err
	}
	args := []string{"run", "-d", "--accel", h.accel, "-p", fmt.Sprintf("%d:%d", port, appPort), "-m", fmt.Sprintf("%dm", memMiB), ref}
	start := time.Now()
	out, err := h.runNos(ctx, args...)
	if err != nil {
		return bootOutcome{}, err
	}
	in := &inst{id: strings.TrimSpace(out), port: port, memMiB: memMiB}
	if !instanceID.MatchString(in.id) {
		return bootOutcome{}, fmt.Errorf("nos run -d printed %q, want an instance ID", out)
	}
	f.track(in.id)
	defer func() {
		if ctx.Err() == nil {
			if err := f.remove(ctx, in, true); err != nil {
				progress("removing instance %s: %v (removed at cleanup)", in.id[:12], err)
			}
		}
	}()
	if c.nosCmdline == "" && ref == imageBuiltKernel {
		if err := c.copyMachine(ctx, in.id); err != nil {
			return bootOutcome{}, err
		}
	}

	up, perr, ierr := f.pollWhileAlive(ctx, in, fmt.Sprintf("http://127.0.0.1:%d/", port), timeout)
	if perr == nil && ierr == nil {
		return bootOutcome{OK: true, Took: up.Sub(start)}, nil
	}
	if ctx.Err() != nil {
		return bootOutcome{}, ctx.Err()
	}
	// identify fails when the instance is no longer running; anything
	// else wrong with it is the benchmark's problem.
	st, serr := h.inspectInstance(ctx, in.id)
	if serr != nil {
		return bootOutcome{}, errors.Join(ierr, serr)
	}
	if ierr != nil && st.State.Status == "running" && st.MonitorAlive {
		return bootOutcome{}, ierr
	}
	note := fmt.Sprintf("no HTTP 200 within %v", timeout.Round(time.Second))
	if st.State.Status != "running" || !st.MonitorAlive {
		note = fmt.Sprintf("instance %s, exit code %d", st.State.Status, st.State.ExitCode)
		if st.State.Error != "" {
			note += ": " + st.State.Error
		}
	}
	if con, err := h.runNos(ctx, "logs", "--console", in.id); err == nil && !strings.Contains(note, panicText) {
		if last := lastLineWith(con, panicText); last != "" {
			note += "; " + last
		}
	}
	detail := f.explain(ctx, in, errors.New(note)).Error()
	return bootOutcome{Note: note, Detail: detail}, nil
}

// copyMachine takes the kernel command line and CPU count nos gave the
// instance, for the floor.
func (c *compare) copyMachine(ctx context.Context, id string) error {
	out, err := c.h.runNos(ctx, "inspect", id)
	if err != nil {
		return err
	}
	var all []instConfig
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		return fmt.Errorf("decoding nos inspect output: %w", err)
	}
	if len(all) != 1 || all[0].ID != id || all[0].Config.Cmdline == "" || all[0].Config.CPUs < 1 {
		return fmt.Errorf("nos inspect %s: no kernel command line or CPU count", id[:12])
	}
	c.nosCmdline, c.nosCPUs = all[0].Config.Cmdline, all[0].Config.CPUs
	progress("a's instance: kernel command line %q, %d vCPU (the floor boots with these)", c.nosCmdline, c.nosCPUs)
	return nil
}

// conventionalVariant prepares variant c: the cached root file system
// (built when missing), this run's application in it, the disk images.
func (c *compare) conventionalVariant(ctx context.Context) (*cmpVariant, error) {
	var err error
	if c.conv, c.convBuilt, err = conventionalRootfs(ctx); err != nil {
		return nil, err
	}
	if err := installApp(c.conv.rootfs(), c.app); err != nil {
		return nil, err
	}
	progress("c: making the disk (mke2fs -t ext4 -d ROOTFS, qemu-img convert -O qcow2)")
	if c.disk, err = makeDisk(ctx, c.conv.rootfs(), c.h.tmp); err != nil {
		return nil, err
	}
	kb, err := fileSize(c.conv.kernel())
	if err != nil {
		return nil, err
	}
	ib, err := fileSize(c.conv.initrd())
	if err != nil {
		return nil, err
	}
	d := c.disk
	return &cmpVariant{
		rep: &cmpVariantReport{
			ID: "c", Name: "conventional VM (Debian " + c.conv.Suite + ", systemd)",
			Kernel: c.conv.KernelVersion + " (linux-image-cloud-amd64 installed by debootstrap, with its initramfs-tools initrd)",
			How: "qemu-system-x86_64 -M q35 -accel " + c.h.accel + " -cpu max -smp 1, direct kernel boot (-kernel/-initrd from the disk's /boot, no bootloader), " +
				"-append \"" + convCmdline + "\", qcow2 disk on virtio-blk (a fresh overlay each boot), virtio-net-pci on user networking",
			Clock: "exec of QEMU to the first HTTP 200",
			Size: cmpSize{Bytes: d.QCOW2Bytes, What: "qcow2 disk image (holds /boot's kernel and initrd too)", Parts: []cmpSizePart{
				{"raw ext4 image, apparent size", d.RawBytes},
				{"raw ext4 image, used blocks (du)", d.RawUsed},
				{"regular files in the root file system", d.FilesBytes},
				{"kernel (vmlinuz)", kb},
				{"initrd", ib},
			}},
			Conventional: &convInfo{
				Suite: c.conv.Suite, Packages: "minbase + " + strings.Join(convPackages, ","), Cache: c.conv.dir, BuiltThisRun: c.convBuilt,
				Service: convUnit + " (" + convAppPath + ", WantedBy=multi-user.target, After=network.target)",
				Network: "systemd-networkd, en* DHCP=yes",
			},
		},
		boot: c.bootConventional,
	}, nil
}

// floorVariant prepares variant d.
func (c *compare) floorVariant(ctx context.Context) (*cmpVariant, error) {
	if err := c.prepareFloor(ctx); err != nil {
		return nil, err
	}
	kb, err := fileSize(c.builtKernelStored)
	if err != nil {
		return nil, err
	}
	ib, err := fileSize(c.floorInitrd)
	if err != nil {
		return nil, err
	}
	fb, err := fileSize(c.floorInit)
	if err != nil {
		return nil, err
	}
	return &cmpVariant{
		rep: &cmpVariantReport{
			ID: "d", Name: "floor (nos's kernel, an init that only says ready)",
			Kernel: c.builtKernel.Version + " (" + c.builtKernel.Path + ")",
			How:    "qemu-system-x86_64 with nos's argv (vmm/qemu.Command, microvm) and the command line nos gave a's instance; /init writes a line and powers off",
			Clock:  "exec of QEMU to the line " + fmt.Sprintf("%q", floorMarker) + " on the serial console",
			Size: cmpSize{Bytes: kb + ib, What: "kernel + initramfs", Parts: []cmpSizePart{
				{"kernel (bzImage)", kb}, {"initramfs (LZ4 cpio)", ib}, {"floorinit binary", fb},
			}},
		},
		boot: c.bootFloor,
	}, nil
}

// memorySearch bisects the variant's least working memory size; the
// timeout of each boot is four times its median boot time, at least 30 s.
func (c *compare) memorySearch(ctx context.Context, v *cmpVariant) (*memResult, error) {
	o := c.h.opts.cmp
	median := time.Duration(v.rep.Boot.Median * float64(time.Millisecond))
	timeout := probeTimeout(median, probeLeast)
	progress("%s: minimum memory, between %d (assumed too little) and %d MiB, %d of %d boots within %v",
		v.rep.ID, max(o.memLo, v.floor-1), o.memHi, o.memBoots, o.memBoots, timeout.Round(time.Second))
	boot := func(ctx context.Context, mib int) (bootOutcome, error) { return v.boot(ctx, mib, timeout) }
	log := func(mib, i int, b bootOutcome) {
		if b.OK {
			progress("%s: %d MiB, boot %d/%d ready after %v", v.rep.ID, mib, i+1, o.memBoots, b.Took.Round(time.Millisecond))
		} else {
			progress("%s: %d MiB, boot %d/%d failed: %s", v.rep.ID, mib, i+1, o.memBoots, b.Note)
		}
	}
	res, err := bisectMemory(ctx, o.memLo, o.memHi, v.floor, allOf(o.memBoots, boot, log))
	if err != nil {
		return nil, err
	}
	res.Boots, res.Timeout = o.memBoots, millis(timeout)
	return &res, nil
}

// appBinary describes the application binary every variant runs.
type appBinary struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Build  string `json:"build"`
}

func describeApp(path string) (appBinary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return appBinary{}, err
	}
	sum := sha256.Sum256(b)
	return appBinary{Bytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:]),
		Build: "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' (as nos build does)"}, nil
}
