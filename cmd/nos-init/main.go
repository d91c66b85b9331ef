// Command nos-init is the PID 1 of every nos image. nos copies it into the
// initramfs as /init; it is not meant to be run on a host.
package main

import (
	"fmt"
	"os"

	"github.com/nosproject/nos/guest"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "nos-init: this is the init of nos guests; it runs as PID 1 inside a nos VM, not on a host")
		os.Exit(2)
	}
	guest.Main()
}
