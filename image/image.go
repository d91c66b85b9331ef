// Package image defines what a nos image is: the config that describes how
// to boot and start the application, and the media types of the blobs that
// make up an image in the store. It is the contract between the build, the
// store and the runner, and depends on nothing else in nos.
package image

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nosproject/nos/guestapi"
)

// Media types of the parts of a nos image. An image is an OCI image manifest
// whose config is a Config and whose layers are the kernel and the initramfs.
const (
	ArtifactType    = "application/vnd.nos.image.v1"
	MediaTypeConfig = "application/vnd.nos.image.config.v1+json"
	MediaTypeKernel = "application/vnd.nos.kernel.v1"
	// MediaTypeKernelGzip is a kernel stored gzip-compressed: an ELF
	// vmlinux, booted through its PVH entry point, which the runner
	// unpacks once per host.
	MediaTypeKernelGzip = "application/vnd.nos.kernel.v1+gzip"
	// MediaTypeInitramfs is the initramfs: a newc cpio archive, LZ4
	// compressed (legacy format, the kernel's), which the guest unpacks
	// several times faster than gzip under TCG.
	MediaTypeInitramfs = "application/vnd.nos.initramfs.v1.cpio+lz4"
	// MediaTypeInitramfsGzip is the initramfs as nos wrote it before
	// 2026-12-04: gzip-compressed. Such images still run and move.
	MediaTypeInitramfsGzip = "application/vnd.nos.initramfs.v1.cpio+gzip"
	// MediaTypeKernelEFI is the kernel's UEFI boot image (a bzImage with
	// the EFI stub) beside the ELF vmlinux the image boots under nos:
	// disk exports put it in their Unified Kernel Image. Images on a
	// kernel nos built with the cloud feature carry it.
	MediaTypeKernelEFI = "application/vnd.nos.kernel.efi.v1"
	// MediaTypeRootErofs is a read-only root filesystem image (erofs) the
	// guest mounts as its root.
	MediaTypeRootErofs = "application/vnd.nos.rootfs.v1.erofs"

	// AnnotationRefName is the OCI annotation that holds "name:tag" in index.json.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationCreated holds the RFC 3339 time an image was stored. It lives
	// in index.json, not in the manifest, so that identical inputs keep
	// giving identical digests.
	AnnotationCreated = "org.opencontainers.image.created"
)

// IsInitramfs tells whether a layer of this media type is the image's
// initramfs, in either compression.
func IsInitramfs(mediaType string) bool {
	return mediaType == MediaTypeInitramfs || mediaType == MediaTypeInitramfsGzip
}

// Defaults for images that do not say otherwise.
const (
	DefaultMemoryMiB = 256
	DefaultCPUs      = 1
	DefaultTag       = "latest"
)

// Config describes how to boot an image and start its application.
type Config struct {
	// Entrypoint is the application's path in the guest followed by fixed arguments.
	Entrypoint []string `json:"entrypoint"`
	// Args are appended to Entrypoint; `nos run IMAGE ARGS...` replaces them.
	Args []string `json:"args,omitempty"`
	// Env holds KEY=VALUE pairs; `nos run -e` adds to or overrides them.
	Env []string `json:"env,omitempty"`
	// WorkingDir is the application's working directory in the guest.
	WorkingDir string `json:"workingDir,omitempty"`
	// ExposedPorts lists "PORT/PROTO" the application listens on.
	ExposedPorts []string `json:"exposedPorts,omitempty"`
	// MemoryMiB and CPUs are the defaults for `nos run`.
	MemoryMiB int `json:"memoryMiB"`
	CPUs      int `json:"cpus"`
	// KernelCmdline is the kernel command line the image boots with; the
	// runner may append machine-specific options but never secrets.
	KernelCmdline string `json:"kernelCmdline"`
	// Kernel records which kernel the image was built with.
	Kernel KernelInfo `json:"kernel"`
	// Needs lists the kernel features the image declared it needs (nos
	// build --features); nil when it took the default.
	Needs []string `json:"needs,omitempty"`
	// Modules lists the kernel modules the init loads, in load order.
	Modules []string `json:"modules,omitempty"`
	// RootFS is the type of the root disk layer ("erofs") when the
	// application's files are on one rather than in the initramfs.
	RootFS string `json:"rootFS,omitempty"`
	// User is who the application runs as; nil is root.
	User *guestapi.User `json:"user,omitempty"`
	// Caps are the only capabilities the application has.
	Caps []string `json:"caps,omitempty"`
	// InitAPI is the version of the host↔guest protocol the image's init
	// speaks (see InitAPIProbes); 0 in images made before it was recorded.
	InitAPI int `json:"initApi,omitempty"`
	// NoExec: nos exec is refused for instances of the image (nos build
	// --no-exec); its init refuses too.
	NoExec bool `json:"noExec,omitempty"`

	// The fields below record where the image's files came from, for its
	// bill of materials (nos sbom); images made before they were recorded
	// have none of them and Provenance 0, which an SBOM reports as unknown.

	// Provenance is the version of what the build recorded of them:
	// ProvenanceV1 for Source, Packages, Added and Kernel.ConfigHash.
	Provenance int `json:"provenance,omitempty"`

	// Source is what the image was built from, when more than its files
	// tell (a container image's reference and digest); nil otherwise.
	Source *Source `json:"source,omitempty"`
	// Packages lists the files the build took from the build host for a
	// dynamically linked program (the program, its loader and libraries),
	// each with the distribution package it came from when the host's
	// package database knew it. Nil when the image has no such files or
	// predates the field.
	Packages []PackageRef `json:"packages,omitempty"`
	// Added lists the guest paths given with --add (files or directory
	// trees), in order; nil when none or when the image predates the field.
	Added []string `json:"added,omitempty"`
}

// ProvenanceV1: the config records Source, Packages, Added and the
// kernel's ConfigHash (each still empty when there is nothing to record).
const ProvenanceV1 = 1

// Source describes the input an image was built from.
type Source struct {
	// Type is "oci" for a container image.
	Type string `json:"type"`
	// Ref is the container image's registry reference, "" for a local
	// layout or archive (whose path says nothing about its content).
	Ref string `json:"ref,omitempty"`
	// Digest is the container image's manifest digest (for docker save
	// output, its config digest).
	Digest string `json:"digest,omitempty"`
}

// PackageRef is a file of the image and the package it came from.
type PackageRef struct {
	// Path is the file's guest path (the build host's path, too).
	Path string `json:"path"`
	// Package, Version and Arch name the Debian package (dpkg's name
	// without an architecture qualifier, its version and architecture);
	// empty when the build host's package database did not know the file
	// or the host had none.
	Package string `json:"package,omitempty"`
	Version string `json:"version,omitempty"`
	Arch    string `json:"arch,omitempty"`
}

// Versions of the protocol nos-init speaks on the control port.
const (
	// InitAPIProbes: the init runs health probes (guestapi.TypeProbe).
	InitAPIProbes = 1
	// InitAPIWritableRoot: the init makes a writable root over a root disk
	// (guestapi.Root.Writable) and extra tmpfs mounts (guestapi.Config.Tmpfs).
	InitAPIWritableRoot = 2
	// InitAPIShares: the init mounts host directories (virtiofs).
	InitAPIShares = 3
	// InitAPINetworks: the init configures several NICs (Networks), found
	// by MAC address.
	InitAPINetworks = 4
	// InitAPIStandalone: the init runs without a host when its config is
	// in the initramfs (guestapi.StandaloneConfig), and stops the
	// application on the power button.
	InitAPIStandalone = 5
	// InitAPIDisk: the init boots from an exported disk: a DHCP network
	// (guestapi.Network.DHCP), the platform's metadata and user-data
	// (guestapi.UserData), the root found by partition label
	// (guestapi.Root.PartLabel).
	InitAPIDisk = 6
	// InitAPISharedRoot: the init takes its root from a host directory
	// shared over virtiofs (guestapi.Root.Tag), as nos-runtime runs an OCI
	// bundle's rootfs.
	InitAPISharedRoot = 7
	// InitAPIInteractive: the init has the interactive streams on
	// guestapi.PortIO: the application's stdin and terminal
	// (guestapi.Config.Stdin, TTY) and processes started beside it
	// (guestapi.TypeExec).
	InitAPIInteractive = 8
	// InitAPIHosts: the init writes the extra /etc/hosts entries of
	// guestapi.Config.Hosts (nos run --add-host).
	InitAPIHosts = 9
	// InitAPIMux: the init talks to the host over one port,
	// guestapi.PortMux, instead of one per channel.
	InitAPIMux = 10
	// InitAPISnapshot: the init quiesces for a saved state and takes the
	// time, entropy and name again after it (guestapi.TypeSnapshot).
	InitAPISnapshot = 11
	// InitAPI is what the nos-init of this nos speaks.
	InitAPI = InitAPISnapshot
)

// KernelInfo identifies the kernel an image carries.
type KernelInfo struct {
	Version string `json:"version,omitempty"`
	Origin  string `json:"origin,omitempty"`
	// Digest is the kernel blob's digest: the exact kernel the image boots.
	Digest string `json:"digest,omitempty"`
	// Features of a nos-built kernel (nil when unknown).
	Features []string `json:"features,omitempty"`
	// ConfigHash digests the merged configuration fragments a nos-built
	// kernel was configured from ("" when unknown).
	ConfigHash string `json:"configHash,omitempty"`
	// NoNetwork is set when the kernel has no network stack or the image
	// declared it needs none: the runner then attaches no NIC and the init
	// configures no network.
	NoNetwork bool `json:"noNetwork,omitempty"`
}

// InitPath is where the nos init lives in the initramfs; the kernel runs
// /init from an initramfs by default.
const InitPath = "/init"

// StandaloneModules are loaded only by a guest that runs standalone (nos
// export: a PCI machine stopped by its power button), not on nos's own
// microvm: virtio over PCI (and what it pulls in), ACPI's button, evdev.
// Measured: loading them costs the modules step about 300 ms under TCG.
var StandaloneModules = []string{"virtio_pci", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "button", "evdev"}

// ModuleOrderPath lists, one per line, the kernel modules the init loads in
// that order (paths relative to ModuleDir).
const (
	ModuleDir       = "/lib/modules"
	ModuleOrderPath = "/lib/modules/nos.order"
)

// ParsePort normalises an exposed port, "80" or "80/tcp" or "53/udp", to
// "PORT/PROTO".
func ParsePort(s string) (string, error) {
	port, proto, found := strings.Cut(s, "/")
	if !found {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || (proto != "tcp" && proto != "udp") {
		return "", fmt.Errorf("port %q: want PORT[/tcp|/udp] with PORT in 1-65535", s)
	}
	return strconv.Itoa(n) + "/" + proto, nil
}
