// Package export writes a stored image out for engines other than nos's
// own runner: libvirt (Libvirt), a domain XML and the files it names;
// UEFI disks (WriteDisk); and KubeVirt (WriteKubeVirt), a containerDisk
// and a kernel-boot image pushed to a registry and a VirtualMachine and
// Service naming them by digest. Each guest configures itself, because no
// nos host is beside it.
//
// An export is written into a temporary directory or file beside its
// destination and renamed into place when complete: a failed export
// leaves nothing under the destination's name. A KubeVirt export writes
// its manifest only once its images are wholly in the registry.
package export
