package guest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nosproject/nos/image"
	"golang.org/x/sys/unix"
)

// loadModules loads, in order, the modules listed in the image's order
// file; those only a standalone guest needs (image.StandaloneModules) are
// skipped unless standalone. Parameters for a module come from the kernel command line in the
// form module.param=value, as modprobe would pass them (QEMU's microvm puts
// virtio_mmio.device=… there when ACPI is off).
func loadModules(cmdline string, standalone bool) error {
	f, err := os.Open(image.ModuleOrderPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil // module-free kernel
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || (!standalone && slices.Contains(image.StandaloneModules, moduleName(rel))) {
			continue
		}
		if err := loadModule(filepath.Join(image.ModuleDir, rel), moduleParams(cmdline, moduleName(rel))); err != nil {
			return err
		}
	}
	return sc.Err()
}

func loadModule(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("loading module: %w", err)
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), params, 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loading module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// moduleName turns kernel/drivers/virtio/virtio_mmio.ko into virtio_mmio.
func moduleName(rel string) string {
	base := filepath.Base(rel)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// moduleParams collects name.key=value words from a kernel command line.
func moduleParams(cmdline, name string) string {
	var params []string
	for _, w := range strings.Fields(cmdline) {
		mod, param, ok := strings.Cut(w, ".")
		if ok && strings.ReplaceAll(mod, "-", "_") == name && param != "" {
			params = append(params, param)
		}
	}
	return strings.Join(params, " ")
}
