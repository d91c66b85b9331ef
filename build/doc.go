// Package build turns an application into a nos image: it compiles a Go
// main package (or takes a static ELF), assembles a reproducible initramfs
// holding the guest init, the application, CA certificates, zoneinfo and
// the kernel modules the kernel needs, and stores kernel, initramfs, config
// and manifest as content-addressed blobs tagged name:tag.
//
// The same inputs give the same bytes, hence the same image digest.
package build
