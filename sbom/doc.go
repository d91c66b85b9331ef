// Package sbom makes the bill of materials of a nos image, from the image
// alone: its config, its layers and the files in them, without the build
// host.
//
// What it lists, and where each part comes from:
//
//   - Go programs (nos-init at /init, the application, any Go binary on the
//     root disk): their Go version, main module and dependencies, from the
//     build information the Go linker embeds (debug/buildinfo). The files
//     are read from the initramfs (a gzip-compressed cpio archive, read in
//     process) and from the root disk, which is an LZ4-compressed erofs
//     image: no pure-Go reader of compressed erofs exists (the module
//     proxy's github.com/erofs/go-erofs v0.3 reads uncompressed images
//     only), so the disk is unpacked into a temporary directory with
//     erofs-utils' `fsck.erofs --extract`, which also checks it.
//   - The files a dynamically linked program brought from the build host
//     (itself, its loader and its libraries), each with the Debian package
//     and version it came from, as the build recorded them in the config
//     (image.Config.Packages) where the host's dpkg knew them; their
//     checksums are those of the image's own files.
//   - The files added with --add (image.Config.Added), with their
//     checksums.
//   - The kernel: version, origin, nos features, configuration hash and
//     digest, from the config.
//   - For an image built from a container image, its reference and digest.
//
// Images built before nos recorded packages and --add paths get an SBOM
// that says these are unknown.
//
// The output is SPDX 2.3 JSON (github.com/spdx/tools-golang) or CycloneDX
// 1.6 JSON (github.com/CycloneDX/cyclonedx-go), with package URLs for Go
// modules (pkg:golang) and Debian packages (pkg:deb). It is reproducible:
// the same image gives the same bytes. The document's time is
// Options.Created (the Unix epoch when zero: an image has no time of its
// own), and its SPDX namespace and CycloneDX serial number derive from
// the image's digest.
package sbom
