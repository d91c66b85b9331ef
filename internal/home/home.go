// Package home is the layout of nos's data directory ($NOS_HOME): the one
// place that knows where each part lives.
//
//	$NOS_HOME/
//	  images/                   the store: an OCI image layout (package store)
//	  instances/<id>/           one directory per instance (package instance)
//	  cache/kernels/            distribution kernels fetched by `nos kernel fetch`
//	  cache/kernels-built/      kernels built or imported by `nos kernel build|import`
//	  cache/kernels-unpacked/   ELF kernels of images, unpacked once (package bootable)
//	  cache/kvm-probe           the KVM probe's verdict for this host boot
//	  volumes/<name>/           named volumes (package volume)
package home

import (
	"fmt"
	"os"
	"path/filepath"
)

// Layout is a nos data directory.
type Layout struct {
	Root string
}

// Default is $NOS_HOME, else $XDG_DATA_HOME/nos, else ~/.local/share/nos.
func Default() (Layout, error) {
	if dir := os.Getenv("NOS_HOME"); dir != "" {
		return Layout{Root: dir}, nil
	}
	if dir := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(dir) {
		return Layout{Root: filepath.Join(dir, "nos")}, nil
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return Layout{}, fmt.Errorf("finding nos's data directory: %w", err)
	}
	return Layout{Root: filepath.Join(h, ".local", "share", "nos")}, nil
}

// Images is the store's OCI image layout.
func (l Layout) Images() string { return filepath.Join(l.Root, "images") }

// Instances holds one directory per instance.
func (l Layout) Instances() string { return filepath.Join(l.Root, "instances") }

// Volumes holds the named volumes.
func (l Layout) Volumes() string { return filepath.Join(l.Root, "volumes") }

// Signatures holds the images' signatures, by manifest digest (package
// signature), and Policy the trusted keys.
func (l Layout) Signatures() string { return filepath.Join(l.Root, "signatures") }

// Policy is the signature policy file: which keys must have signed which
// images before they run or are pulled.
func (l Layout) Policy() string { return filepath.Join(l.Root, "policy.json") }

// Networks holds the private networks' records (package network) and
// their resolvers' locks and logs.
func (l Layout) Networks() string { return filepath.Join(l.Root, "networks") }

// Cache holds what nos can make again: kernels, probe verdicts.
func (l Layout) Cache() string { return filepath.Join(l.Root, "cache") }

// Snapshots holds saved VM states (nos run --snapshot).
func (l Layout) Snapshots() string { return filepath.Join(l.Cache(), "snapshots") }

// FetchedKernels holds distribution kernels (`nos kernel fetch`).
func (l Layout) FetchedKernels() string { return filepath.Join(l.Cache(), "kernels") }

// BuiltKernels holds kernels nos built or imported.
func (l Layout) BuiltKernels() string { return filepath.Join(l.Cache(), "kernels-built") }

// UnpackedKernels holds images' compressed kernels, unpacked.
func (l Layout) UnpackedKernels() string { return filepath.Join(l.Cache(), "kernels-unpacked") }
