// Package instance runs images as instances, docker's containers: it turns
// an image (through package bootable) and the user's run options into an
// instance directory (config.json, state.json, logs), and runs each
// instance under a monitor process of its own that describes the VM as a
// vmm.Machine, boots it on a hypervisor driver, keeps state.json true,
// applies the restart policy and the health check, and answers stop and
// kill on a socket. It knows hypervisors only through package vmm; the one
// place naming a driver is hypervisor.go.
package instance
