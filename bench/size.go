package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nosproject/nos/image"
)

// imageSizes are the sizes, in bytes, of the example's image and of the
// application alone.
type imageSizes struct {
	Kernel    int64 `json:"kernel_layer_bytes"`
	Initramfs int64 `json:"initramfs_layer_bytes"`
	// InitramfsFormat is the initramfs layer's compression: "lz4" or
	// "gzip", from its media type.
	InitramfsFormat string `json:"initramfs_layer_format"`
	// Total is what nos reports: manifest + config + layers.
	Total int64 `json:"image_total_bytes"`
	// App is the plain `go build -trimpath` output; AppStripped is built
	// with the flags nos uses for the application it packages.
	App         int64 `json:"app_binary_bytes"`
	AppStripped int64 `json:"app_binary_stripped_bytes"`
}

// inspected is the part of `nos inspect` output the benchmark reads.
type inspected struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Config struct {
		KernelCmdline string `json:"kernelCmdline"`
		MemoryMiB     int    `json:"memoryMiB"`
		CPUs          int    `json:"cpus"`
		Kernel        struct {
			Version string `json:"version"`
		} `json:"kernel"`
	} `json:"config"`
	Manifest struct {
		Layers []struct {
			MediaType string `json:"mediaType"`
			Size      int64  `json:"size"`
		} `json:"layers"`
	} `json:"manifest"`
}

// inspect runs `nos inspect ref` and decodes its one image.
func (h *harness) inspect(ctx context.Context, ref string) (inspected, error) {
	out, err := h.runNos(ctx, "inspect", ref)
	if err != nil {
		return inspected{}, err
	}
	return parseInspect([]byte(out))
}

func parseInspect(b []byte) (inspected, error) {
	var imgs []inspected
	if err := json.Unmarshal(b, &imgs); err != nil {
		return inspected{}, fmt.Errorf("decoding nos inspect output: %w", err)
	}
	if len(imgs) != 1 {
		return inspected{}, fmt.Errorf("nos inspect: got %d images, want 1", len(imgs))
	}
	return imgs[0], nil
}

// layerSizes returns the kernel and initramfs layer sizes; the image must
// have exactly one of each.
func layerSizes(im inspected) (kernelSize, initrdSize int64, err error) {
	var nk, ni int
	for _, l := range im.Manifest.Layers {
		switch l.MediaType {
		case image.MediaTypeKernel, image.MediaTypeKernelGzip:
			kernelSize, nk = l.Size, nk+1
		case image.MediaTypeInitramfs, image.MediaTypeInitramfsGzip:
			initrdSize, ni = l.Size, ni+1
		}
	}
	if nk != 1 || ni != 1 {
		return 0, 0, fmt.Errorf("image has %d kernel and %d initramfs layers, want one of each", nk, ni)
	}
	if kernelSize <= 0 || initrdSize <= 0 || im.Size < kernelSize+initrdSize {
		return 0, 0, fmt.Errorf("implausible sizes: kernel %d, initramfs %d, total %d", kernelSize, initrdSize, im.Size)
	}
	return kernelSize, initrdSize, nil
}

// appSizes builds the application alone, plainly and stripped as nos
// builds it, and returns both sizes.
func (h *harness) appSizes(ctx context.Context) (plain, stripped int64, err error) {
	dir := filepath.Join(h.tmp, "app-size")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, 0, err
	}
	p := filepath.Join(dir, "plain")
	if _, err := h.goBuild(ctx, p, appPkg); err != nil {
		return 0, 0, err
	}
	s := filepath.Join(dir, "stripped")
	if _, err := h.goBuild(ctx, s, appPkg, "-buildvcs=false", "-ldflags=-s -w -buildid="); err != nil {
		return 0, 0, err
	}
	if plain, err = fileSize(p); err != nil {
		return 0, 0, err
	}
	if stripped, err = fileSize(s); err != nil {
		return 0, 0, err
	}
	return plain, stripped, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if fi.Size() == 0 {
		return 0, fmt.Errorf("%s is empty", path)
	}
	return fi.Size(), nil
}

// initramfsFormat names the compression of im's initramfs layer.
func initramfsFormat(im inspected) string {
	for _, l := range im.Manifest.Layers {
		switch l.MediaType {
		case image.MediaTypeInitramfs:
			return "lz4"
		case image.MediaTypeInitramfsGzip:
			return "gzip"
		}
	}
	return "none"
}
