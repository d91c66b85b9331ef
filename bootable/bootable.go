// Package bootable turns an image in the store into the host files a
// hypervisor boots: its config, kernel (unpacked when the image stores it
// compressed), initramfs and root disk. A runner, an exporter or an OCI
// runtime loads images through it rather than reading the store's layers
// itself.
package bootable

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/store"
)

// Image is a stored nos image, as files.
type Image struct {
	Ref    store.Image
	Config image.Config
	// KernelBlob is the kernel layer's blob; KernelGzip is set when it is
	// compressed (see Kernel).
	KernelBlob string
	KernelGzip bool
	Initrd     string
	// RootDisk is the root filesystem image, "" when there is none.
	RootDisk string
	// EFIKernel is the kernel's UEFI boot image (image.MediaTypeKernelEFI),
	// "" when the image has none.
	EFIKernel string
}

// Load resolves ref in the store and checks that it is a nos image.
func Load(ctx context.Context, st *store.Store, ref string) (*Image, error) {
	img, err := st.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	man, err := st.Manifest(img.Manifest.Digest)
	if err != nil {
		return nil, err
	}
	b, err := st.ReadBlob(man.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading image config: %w", err)
	}
	im := &Image{Ref: img}
	if err := json.Unmarshal(b, &im.Config); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	for _, l := range man.Layers {
		switch l.MediaType {
		case image.MediaTypeKernel, image.MediaTypeKernelGzip:
			im.KernelBlob = st.BlobPath(l.Digest)
			im.KernelGzip = l.MediaType == image.MediaTypeKernelGzip
		case image.MediaTypeInitramfs, image.MediaTypeInitramfsGzip:
			im.Initrd = st.BlobPath(l.Digest)
		case image.MediaTypeRootErofs:
			im.RootDisk = st.BlobPath(l.Digest)
		case image.MediaTypeKernelEFI:
			im.EFIKernel = st.BlobPath(l.Digest)
		}
	}
	if im.KernelBlob == "" || im.Initrd == "" {
		return nil, fmt.Errorf("image %s is not a nos image (no kernel or initramfs layer)", ref)
	}
	if (im.RootDisk == "") != (im.Config.RootFS == "") {
		return nil, fmt.Errorf("image %s is inconsistent: root filesystem %q with root disk layer %q", ref, im.Config.RootFS, im.RootDisk)
	}
	return im, nil
}

// Kernel returns the path of the kernel to boot: the blob itself, or its
// unpacked copy in unpackedDir (home.Layout.UnpackedKernels), made once.
func (im *Image) Kernel(ctx context.Context, unpackedDir string) (string, error) {
	if !im.KernelGzip {
		return im.KernelBlob, nil
	}
	p, err := Unpack(ctx, unpackedDir, im.KernelBlob)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", im.Ref.Name+":"+im.Ref.Tag, err)
	}
	return p, nil
}
