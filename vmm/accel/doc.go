// Package accel chooses the accelerator a VM runs with: hardware
// virtualisation through Linux KVM when it really works here, else TCG,
// QEMU's software emulation. It is a check of the host, not a hypervisor.
//
// The presence of /dev/kvm is not enough: on some hosts (nested setups that
// do not expose VMX or SVM to the host, for one) the device exists and a VM
// can be created, but guests never run at any useful speed. ProbeKVM
// therefore runs a tiny real-mode guest directly through the KVM ioctl
// interface, with a busy loop that real hardware finishes in milliseconds
// and an emulator does not, and checks that it completes, giving up after a
// timeout.
package accel
