// Package assemble turns an application into a nos image: a Go main
// package, a static or dynamically linked program, a root directory or a
// container image becomes a kernel, an initramfs with the guest init and,
// for a tree of files, a read-only erofs root disk, stored with its config
// and manifest as content-addressed blobs tagged name:tag.
//
// The pipeline is detect → stage → pack → store: a Source (one type per
// kind of input, tried in the order of the sources list) says whether it
// applies to the options; it stages its files into the initramfs or a root
// tree and completes the image config; the files are packed into an
// initramfs (pack_initramfs.go) and an erofs disk (pack_erofs.go); and the
// store writes the blobs, config, manifest and tag in one locked step
// (store.WriteImage).
//
// The same inputs give the same bytes, hence the same image digest.
package assemble
