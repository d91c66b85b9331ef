package vmm

import (
	"context"
	"net"
	"os"
	"syscall"
	"time"
)

// Driver is a hypervisor: it checks that it can run here and starts
// machines. Implementations: qemu.Driver.
type Driver interface {
	// Name is how users know the hypervisor ("QEMU").
	Name() string
	// Check tells whether the hypervisor is usable on this host, with an
	// error saying what to install or change when it is not.
	Check(ctx context.Context) error
	// Start boots m and returns once the hypervisor runs and every guest
	// channel is connected. The process outlives ctx: cancelling ctx
	// after Start returned does not stop the VM (use Stop or Kill).
	Start(ctx context.Context, m Machine) (Process, error)
}

// Process is one running VM as its hypervisor process.
type Process interface {
	// PID is the hypervisor's process ID.
	PID() int
	// Channels are the connections to the guest's channels, one for each
	// of Machine.Channels, in order.
	Channels() []net.Conn
	// Wait blocks until the hypervisor has exited and says how. It may be
	// called more than once and from several goroutines.
	Wait() Exit
	// Done is closed when the hypervisor has exited.
	Done() <-chan struct{}
	// Stop asks the hypervisor to end the VM now, as a power cut would:
	// the guest is not told (graceful stops go through the guest init).
	Stop() error
	// Kill ends the hypervisor process at once.
	Kill() error
	// Confined says how the process is confined.
	Confined() Confined
}

// Exit is how a hypervisor process ended.
type Exit struct {
	// Err is nil when the hypervisor exited cleanly (the guest powered off).
	Err error
	// Signal is the signal that killed the hypervisor, 0 if none did.
	Signal syscall.Signal
	// Output is the last line the hypervisor printed, for its errors.
	Output string
}

// Saver is a Process of a Machine.Saveable whose state can be saved and
// that can be resumed after it was, or after a restore.
type Saver interface {
	// Save pauses the VM and writes its state (memory, devices) to f. The
	// VM stays paused: Resume goes on.
	Save(ctx context.Context, f *os.File) (SaveStats, error)
	// Resume runs the VM again: after Save, or once a Machine.Restore
	// has been loaded (it waits for that).
	Resume(ctx context.Context) error
}

// SaveStats says what a Save wrote.
type SaveStats struct {
	Bytes    int64
	Duration time.Duration
}

// Loader is a Driver that can tell, before a start, the least guest memory
// in which it loads a kernel and initramfs without one overwriting the
// other. Below it a guest does not fail cleanly: it corrupts itself.
type Loader interface {
	// LeastMemory returns that size in bytes, rounded up to a whole MiB.
	LeastMemory(kernel, initrd string) (int64, error)
}
