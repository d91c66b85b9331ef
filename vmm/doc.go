// Package vmm is nos's hypervisor layer: a neutral description of a machine
// (Machine: memory, CPUs, kernel, disks, network interfaces, shared
// directories, guest channels, console, confinement), the small Driver
// interface a hypervisor implements to start one, and Boot, which runs the
// guest side of a boot on any driver: it sends the guest init its runtime
// config over the control channel, streams the application's output,
// relays signals and health probes, and turns the end of the VM into an
// Outcome (exit code, or a classified crash).
//
// Drivers live in subpackages (vmm/qemu); vmm/accel chooses the
// accelerator. Nothing here knows about instances, images or the store.
package vmm
