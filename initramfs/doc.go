// Package initramfs builds the initial RAM file system that the Linux kernel
// unpacks as its root file system at boot.
//
// An Archive collects files, directories and symbolic links under absolute
// guest paths and writes them as an LZ4-compressed cpio archive in the "newc"
// format, the format the kernel's initramfs unpacker reads. NewReader reads
// these and the gzip-compressed archives nos wrote before.
//
// The output is reproducible: the same set of entries gives the same bytes
// whatever the order in which they were added and whatever the host they came
// from. To that end entries are written sorted by path, every parent directory
// is created implicitly, timestamps, owners and device numbers are zero, inode
// numbers are assigned in output order, permission bits are normalised (0755
// for directories and executables, 0644 for other regular files, 0777 for
// symbolic links) and the LZ4 stream has no header but its magic. The bytes
// depend only on the entries and on the version of the compression library.
package initramfs
