package assemble

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"
	"github.com/nosproject/nos/kernel"
)

// packInitramfs adds the kernel modules to the staged initramfs (stored
// uncompressed, so the init can finit_module them without decompressors,
// and listed in load order) and writes it to out.
func packInitramfs(a *initramfs.Archive, mods []kernel.Module, c initramfs.Compression, out string) error {
	var order bytes.Buffer
	for _, m := range mods {
		b, err := kernel.OpenModule(m.Path)
		if err != nil {
			return fmt.Errorf("assembling initramfs: %w", err)
		}
		if err := a.AddFile(filepath.Join(image.ModuleDir, m.RelPath), 0o644, b); err != nil {
			return fmt.Errorf("assembling initramfs: %w", err)
		}
		fmt.Fprintln(&order, m.RelPath)
	}
	if len(mods) > 0 {
		if err := a.AddFile(image.ModuleOrderPath, 0o644, order.Bytes()); err != nil {
			return fmt.Errorf("assembling initramfs: %w", err)
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := a.WriteCompressed(f, c); err != nil {
		f.Close()
		return fmt.Errorf("writing initramfs: %w", err)
	}
	return f.Close()
}
