// Package instance runs images: it turns an image and the user's run
// options into a QEMU machine, starts it, feeds the guest init its runtime
// config over the control port, streams the application's output and
// returns its exit code.
package instance
