package export

// This file stands in for the disk export (export.WriteDisk), which lands
// on main separately; the merge of main deletes it.

import (
	"context"
	"errors"

	"github.com/nosproject/nos/bootable"
)

// Disk is an exported disk (stand-in).
type Disk struct {
	Format string
	Output string
	Force  bool
	Name   string
}

// RootPartLabel is the GPT name of an exported disk's root partition (stand-in).
const RootPartLabel = "nos-root"

// WriteDisk writes im as a bootable disk (stand-in).
func WriteDisk(ctx context.Context, im *bootable.Image, kernelPath string, d Disk) error {
	return errors.New("the disk export is not merged yet")
}
