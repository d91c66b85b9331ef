package export

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// epoch is the time of every file in the images a KubeVirt export makes,
// and of the images themselves: the same input makes the same digests.
var epoch = time.Unix(0, 0).UTC()

// LayerFile is a host file and where a layer holds it.
type LayerFile struct {
	// Src is the host file.
	Src string
	// Path is its absolute path in the image, e.g. /disk/disk.qcow2.
	Path string
	// Mode is its permissions.
	Mode int64
}

// ContainerDiskImage is KubeVirt's containerDisk of the disk file qcow2:
// an image with no base (FROM scratch) and one layer holding it at
// ContainerDiskPath, owned by KubeVirtUID (as KubeVirt documents:
// ADD --chown=107:107 disk.qcow2 /disk/). The layer is written, gzip'd,
// into dir.
func ContainerDiskImage(ctx context.Context, dir, qcow2 string) (v1.Image, error) {
	return ScratchImage(ctx, dir, "containerdisk", []LayerFile{{Src: qcow2, Path: ContainerDiskPath, Mode: 0o440}})
}

// KernelBootImage is the image KubeVirt's firmware.kernelBoot.container
// names: no base, one layer with the kernel at KernelBootKernel and the
// initrd at KernelBootInitrd, owned by KubeVirtUID. The layer is written,
// gzip'd, into dir.
func KernelBootImage(ctx context.Context, dir, kernel, initrd string) (v1.Image, error) {
	return ScratchImage(ctx, dir, "kernelboot", []LayerFile{
		{Src: kernel, Path: KernelBootKernel, Mode: 0o444},
		{Src: initrd, Path: KernelBootInitrd, Mode: 0o444},
	})
}

// ScratchImage is an OCI image for linux/amd64 with no base and one layer
// holding files (and their parent directories), every entry owned by
// KubeVirtUID and dated epoch, as is the image: its digest depends on
// the files' contents, paths and modes only. The layer is written into
// dir as NAME.tar.gz.
func ScratchImage(ctx context.Context, dir, name string, files []LayerFile) (v1.Image, error) {
	layerPath := filepath.Join(dir, name+".tar.gz")
	if err := writeWith(layerPath, func(w io.Writer) error { return writeLayer(ctx, w, files) }); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(layerPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("%s layer: %w", name, err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	var what []string
	for _, f := range files {
		what = append(what, f.Path)
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "nos export --format kubevirt",
			Comment:   strings.Join(what, " "),
		},
	})
}

// writeLayer writes a gzip'd tar of files to w, directories first.
func writeLayer(ctx context.Context, w io.Writer, files []LayerFile) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	hdr := func(name string, mode, size int64, typ byte) *tar.Header {
		return &tar.Header{
			Typeflag: typ, Name: name, Mode: mode, Size: size,
			Uid: KubeVirtUID, Gid: KubeVirtUID, ModTime: epoch, Format: tar.FormatPAX,
		}
	}
	dirs := map[string]bool{}
	for _, f := range files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return fmt.Errorf("layer path %q: want an absolute, clean path", f.Path)
		}
		var parents []string
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(hdr(d[1:]+"/", 0o555, 0, tar.TypeDir)); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		src, err := os.Open(f.Src)
		if err != nil {
			return err
		}
		fi, err := src.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", f.Src)
		}
		if err == nil {
			err = tw.WriteHeader(hdr(f.Path[1:], f.Mode, fi.Size(), tar.TypeReg))
		}
		if err == nil {
			var n int64
			n, err = io.Copy(tw, src)
			if err == nil && n != fi.Size() {
				err = fmt.Errorf("%s changed size while being read", f.Src)
			}
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
