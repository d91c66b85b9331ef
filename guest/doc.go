// Package guest is what runs inside the VM as PID 1: it mounts the
// pseudo-filesystems, loads the kernel modules the image carries, opens the
// control port to the host, applies the runtime config (clock, entropy,
// hostname, network), starts the application, forwards signals to it, runs
// the host's health probes against it, reaps zombies, reports the exit code
// and powers the machine off.
//
// It is linked into the static nos-init binary and must stay small: it
// imports only the standard library, x/sys, netlink and guestapi.
package guest
