// Package qemu is nos's QEMU driver (a vmm.Driver): Command turns a
// vmm.Machine into the qemu-system-x86_64 argv of a microvm (a pure
// function, tested against golden files), and Driver starts that process
// confined — seccomp sandbox, an unprivileged user given every file as an
// open descriptor, rlimits, a cgroup of its own — and hands back its guest
// channels.
package qemu
