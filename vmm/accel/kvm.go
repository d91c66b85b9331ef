package accel

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultTimeout is the time Probe gives the test guest when it is called
// with a timeout of zero or less.
const DefaultTimeout = 2 * time.Second

// ErrTimeout is wrapped by the error Probe returns when the test guest did
// not complete in time.
var ErrTimeout = errors.New("guests hang under KVM on this machine")

// Probe reports whether KVM can run a guest on this machine: it returns nil
// if it can, and otherwise an error telling why not.
//
// Probe opens /dev/kvm, checks that the KVM API version is 12, creates a VM
// with one vCPU and one page of guest memory holding real-mode code, runs
// it, and expects the guest to exit to user space with the byte 0x42 written
// to I/O port 0xf4. The code first counts down a loop of spinIterations,
// which takes a few milliseconds when the CPU really runs the guest but far
// longer than any sensible timeout where KVM only emulates guest
// instructions (as on hosts that expose no VMX or SVM and load a software
// KVM such as kvm-pvm, under which ordinary guests seem to hang), then does
// "mov al, 0x42; out 0xf4, al; hlt".
//
// If the guest has not exited after timeout (DefaultTimeout if timeout is
// not positive), or ctx is done first, Probe interrupts the vCPU and returns
// an error; on a timeout it wraps ErrTimeout. A missing /dev/kvm gives an
// error wrapping fs.ErrNotExist, a device the caller may not open one
// wrapping fs.ErrPermission. Probe releases every file descriptor and
// mapping it made before returning, except when KVM_RUN has not yet returned
// shortly after being interrupted (some KVM implementations take seconds to
// notice a signal): Probe then returns anyway and they are released in the
// background as soon as KVM_RUN returns.
func ProbeKVM(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kvm: probe not started: %w", err)
	}
	return probe(ctx, timeout, testCode)
}

// spinIterations is how many times the test guest goes round its loop
// first: 2^25, about 67 million instructions. At about one iteration a
// clock cycle, a CPU that really runs the guest takes some 10 to 40 ms; the
// kvm-pvm emulator measured on a nos development machine ran about 1.3
// million guest instructions a second (a million iterations took 1.5 s), so
// it would take close to a minute.
const spinIterations = 1 << 25

// testCode is the test guest, in 16-bit real mode:
//
//	mov ecx, spinIterations
//	loop: dec ecx
//	jnz loop
//	mov al, 0x42
//	out 0xf4, al
//	hlt
var testCode = append([]byte{
	0x66, 0xb9, spinIterations & 0xff, spinIterations >> 8 & 0xff, spinIterations >> 16 & 0xff, spinIterations >> 24 & 0xff,
	0x66, 0x49,
	0x75, 0xfc,
}, shortCode...)

// shortCode is "mov al, 0x42; out 0xf4, al; hlt" alone.
var shortCode = []byte{0xb0, 0x42, 0xe6, 0xf4, 0xf4}
