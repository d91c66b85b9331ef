package assemble

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/kernel"
	"github.com/nosproject/nos/kernel/config"
)

// Modules nos loads on a modular kernel: the virtio transport and the
// devices nos machines have. What they depend on comes along.
// virtio_pci, ACPI's power button and evdev are for the PCI machines an
// exported image boots on (nos export --format libvirt), where the power
// button is how the hypervisor asks the guest to stop.
var wantedModules = []string{"virtio_mmio", "virtio_console", "virtio_net", "virtio_rng", "virtio_pci", "button", "evdev"}

// rootDiskModules are what a modular kernel needs to mount a root disk,
// put a writable overlay over it, mount volumes and host directories.
var rootDiskModules = []string{"virtio_blk", "erofs", "overlay", "ext4", "virtiofs"}

// kernelNeeds are the kernel features an image of layout l needs: the
// ones the options ask for, which must include the layout's, or by default
// net and the layout's.
func kernelNeeds(o Options, l Layout) ([]string, error) {
	if o.Needs == nil {
		needs := append([]string{"net"}, l.Features()...)
		slices.Sort(needs)
		return needs, nil
	}
	for _, f := range l.Features() {
		if !slices.Contains(o.Needs, f) {
			return nil, fmt.Errorf("--features %s: %s, which needs the %s feature: add it: %w", config.Describe(o.Needs), l.why(), f, ErrBadSource)
		}
	}
	return o.Needs, nil
}

// kernelFinder is the finder of the kernel with the features needed.
func kernelFinder(o Options, needs []string) (kernel.Finder, error) {
	finder := o.Kernel
	if o.KernelFor != nil {
		finder = o.KernelFor(needs)
	}
	if finder == nil {
		return nil, fmt.Errorf("no kernel given: %w", ErrBadSource)
	}
	return finder, nil
}

// findKernel finds the kernel and, on a modular kernel, the modules an
// image of layout l loads.
func findKernel(ctx context.Context, finder kernel.Finder, l Layout, needs []string, log *slog.Logger) (*kernel.Kernel, []kernel.Module, error) {
	k, err := finder.Find(ctx)
	if err != nil {
		return nil, nil, err
	}
	log.Debug("kernel", "version", k.Version, "path", k.Path, "origin", k.Origin)
	if k.ModulesDir == "" {
		if l == OnRootDisk && k.Features != nil && !slices.Contains(k.Features, "blk") {
			return nil, nil, fmt.Errorf("kernel %s has no block devices (features %s): this image needs one built with `nos kernel build --features net,blk`: %w", k.Version, config.Describe(k.Features), ErrBadSource)
		}
		return k, nil, nil
	}
	want := wantedModules
	// An image that declares blk gets what block devices need, for the
	// volumes `nos run -v` attaches, whatever its layout.
	if l == OnRootDisk || slices.Contains(needs, "blk") {
		want = append(slices.Clone(want), rootDiskModules...)
	}
	mods, err := kernel.Modules(k.ModulesDir, want)
	if err != nil {
		return nil, nil, fmt.Errorf("kernel %s: %w", k.Version, err)
	}
	return k, mods, nil
}

// setKernel records the kernel and its modules in the config and checks
// that the image's ports can be reached: the kernel has networking and
// the image does not say it needs none.
func setKernel(cfg *image.Config, k *kernel.Kernel, mods []kernel.Module, needs, asked []string) error {
	cfg.Kernel = image.KernelInfo{Version: k.Version, Origin: k.Origin, Features: k.Features, ConfigHash: k.ConfigHash, NoNetwork: !k.HasNetwork()}
	cfg.Needs = asked
	if cfg.Kernel.NoNetwork && len(cfg.ExposedPorts) > 0 {
		return fmt.Errorf("--port %s: kernel %s has no networking; build one with `nos kernel build --features net`: %w", cfg.ExposedPorts[0], k.Version, ErrBadSource)
	}
	if !slices.Contains(needs, "net") {
		if len(cfg.ExposedPorts) > 0 {
			return fmt.Errorf("--port %s: the image declares it needs no networking (--features %s); add net: %w", cfg.ExposedPorts[0], config.Describe(needs), ErrBadSource)
		}
		cfg.Kernel.NoNetwork = true
	}
	for _, m := range mods {
		cfg.Modules = append(cfg.Modules, m.Name)
	}
	return nil
}
