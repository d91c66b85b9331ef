// Package qemu drives QEMU: Command turns a machine description into the
// qemu-system-x86_64 argv (a pure function, tested against golden files),
// and the rest starts and watches the process.
package qemu
