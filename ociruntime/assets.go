package ociruntime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nosproject/nos/assemble"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/initramfs"
	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/kernel/kbuild"
)

// Environment variables that point nos-runtime at its guest's parts.
const (
	// EnvKernel is the guest kernel image (bzImage or vmlinux); it needs
	// virtiofs. Default: the nos-built kernel with the blk and net
	// features in the nos home's cache ($NOS_HOME, else
	// ~/.local/share/nos, of the user nos-runtime runs as).
	EnvKernel = "NOS_RUNTIME_KERNEL"
	// EnvInit is the nos-init binary. Default: $NOS_INIT, then nos-init
	// beside the nos-runtime executable, then on PATH (as nos build
	// finds it).
	EnvInit = "NOS_RUNTIME_INIT"
)

// kernelFeatures are what the guest kernel needs: virtiofs is in blk;
// net is for the networking slice (tap in the container's netns).
var kernelFeatures = []string{"blk", "net"}

// findKernel locates the guest kernel.
func findKernel() (string, error) {
	if p := os.Getenv(EnvKernel); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvKernel, p, err)
		}
		return p, nil
	}
	l, err := home.Default()
	if err != nil {
		return "", err
	}
	e, err := kbuild.Cache{Dir: l.BuiltKernels()}.Match(kernelFeatures)
	if err != nil {
		return "", fmt.Errorf("no guest kernel: %w; build one with `nos kernel build --features net,blk`, or set %s", err, EnvKernel)
	}
	if c := e.ConfigPath(); c != "" {
		if b, err := os.ReadFile(c); err == nil && !strings.Contains(string(b), "\nCONFIG_VIRTIO_FS=y") {
			return "", fmt.Errorf("the built kernel %s has no virtiofs (built by an older nos): build it again with `nos kernel build --features net,blk`, or set %s", e.ShortID(), EnvKernel)
		}
	}
	return e.Path(), nil
}

// findInit locates nos-init.
func findInit() (string, error) {
	if p := os.Getenv(EnvInit); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvInit, p, err)
		}
		return p, nil
	}
	return assemble.FindInit()
}

// guestInitrd returns the initramfs of every nos-runtime guest: nos-init
// and the directories it mounts on, nothing else (the app comes from the
// shared root). It is made once per nos-init, in root.
func guestInitrd(root, initPath string) (string, error) {
	f, err := os.Open(initPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	path := filepath.Join(root, "initrd-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	var a initramfs.Archive
	if err := a.AddHostFile(image.InitPath, initPath, 0o755); err != nil {
		return "", err
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/root", "/etc"} {
		if err := a.AddDir(d, fs.ModeDir|0o755); err != nil {
			return "", err
		}
	}
	tmp, err := os.CreateTemp(root, ".initrd-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	// gzip: the guest kernel may be any (NOS_RUNTIME_KERNEL), and every
	// kernel nos boots unpacks gzip; this archive holds nos-init alone.
	if _, err := a.WriteCompressed(tmp, initramfs.Gzip); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}
