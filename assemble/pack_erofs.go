package assemble

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/store"
)

// packRootDisk packs the staged tree, if the image has one, into an erofs
// root disk and returns it as a layer.
func packRootDisk(ctx context.Context, sg *staging, tmp string, log *slog.Logger) ([]store.LayerFile, error) {
	if sg.tree == nil {
		return nil, nil
	}
	disk := filepath.Join(tmp, "rootfs.erofs")
	log.Debug("making the root disk", "tree", sg.tree.dir)
	if err := mkfsErofs(ctx, sg.tree.dir, disk, sg.tree.root); err != nil {
		return nil, err
	}
	return []store.LayerFile{{Path: disk, MediaType: image.MediaTypeRootErofs}}, nil
}

// mkfsErofs packs the tree into a read-only erofs image, LZ4-compressed,
// with fixed times and UUID so that the same tree gives the same image.
// Without root, owners are recorded as root (the files staged belong to
// the user running nos).
func mkfsErofs(ctx context.Context, dir, out string, asRoot bool) error {
	bin, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		return fmt.Errorf("mkfs.erofs not found: install erofs-utils (sudo apt-get install erofs-utils): %w", ErrBadSource)
	}
	args := []string{"-zlz4hc", "-T0", "-U", "6e6f7300-0000-4000-8000-000000000000", "-Enoinline_data"}
	if !asRoot {
		args = append(args, "--all-root")
	}
	cmd := exec.CommandContext(ctx, bin, append(args, out, dir)...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.erofs: %v: %s", err, tail(string(b), 10))
	}
	return nil
}
