// Package e2e holds nos's integration tests: they build the nos and
// nos-init binaries, build real images and boot them under QEMU.
package e2e
