//go:build linux

// Command floorinit is the init of the comparison benchmark's floor
// (go run ./bench -compare): the least a guest can do. As PID 1 of an
// initramfs that holds nothing else, it mounts devtmpfs on /dev to reach
// the console, writes one readiness line there and powers the machine off.
// The time from QEMU's start to that line is the floor of a boot with
// nos's kernel and machine.
package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// Marker is the line the benchmark waits for on the serial console.
const Marker = "nos-bench-floor: ready"

func main() {
	// The initramfs has no device nodes, so the kernel could not give
	// init a console: mount devtmpfs and open one.
	_ = unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	for _, dev := range []string{"/dev/console", "/dev/ttyS0"} {
		f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		_, werr := f.WriteString("\n" + Marker + "\n")
		_ = f.Close()
		if werr == nil {
			break
		}
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Reboot returns only on failure; PID 1 must not exit (the kernel
	// would panic), so wait for the benchmark to kill the machine.
	for {
		_ = unix.Pause()
	}
}
