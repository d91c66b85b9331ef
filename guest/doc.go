// Package guest is what runs inside the VM as PID 1: it mounts the
// pseudo-filesystems, loads the kernel modules the image carries, opens the
// control port to the host, applies the runtime config (clock, entropy,
// hostname, network), starts the application, forwards signals to it, runs
// the host's health probes against it, reaps zombies, reports the exit code
// and powers the machine off.
//
// A standalone guest (an export, with guestapi.StandaloneConfig in its
// initramfs) has no host: it may take its address by DHCP, finds its
// platform from DMI (platform.go), reads a NoCloud disk or asks the
// platform's metadata service for a hostname and user-data
// (guestapi.UserData), and on Azure reports itself ready to the wire
// server (cloud_linux.go).
//
// It is linked into the static nos-init binary and must stay small: it
// imports only the standard library, x/sys, netlink, the DHCP client
// (insomniacslk/dhcp) and guestapi; it speaks HTTP with its own small
// client (httpc.go), without net/http.
package guest
