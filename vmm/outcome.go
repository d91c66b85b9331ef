package vmm

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// Outcome is how one boot of a VM ended.
type Outcome struct {
	ExitCode int
	// Crash explains a VM that ended without an application exit code
	// (kernel panic, hypervisor killed or failed); empty when the app
	// exited.
	Crash string
	// CrashKind classifies Crash (see the Crash* constants).
	CrashKind string
	// Forced is set when the VM was forced off (kill, stop timeout).
	Forced bool
	// BadMessages counts lines on the control channel that were not
	// messages: skipped, as a hostile or broken guest's are.
	BadMessages int
	// DroppedFrames counts what the guest sent on a channel of the port
	// after closing it (a channel is not reopened).
	DroppedFrames int
	// StreamError is why the host stopped reading the guest's port before
	// the VM ended: a frame the guest should never send. The VM runs on
	// (its app may be fine); the host no longer hears it.
	StreamError string
	// RestoreError is what the guest could not take again (time, entropy,
	// name) after its state was saved or restored.
	RestoreError string
	// RestoreFailed: the VM was to start from a saved state that the
	// hypervisor could not load (a cold boot is the remedy).
	RestoreFailed bool
	// HoldError is what Guest.Hold yielded when it stopped the VM (then
	// also Crash).
	HoldError string
}

// Exit codes nos gives when the application gave none, as docker does.
const (
	ExitKilled     = 137 // forced off
	ExitGuestError = 125 // the VM died without an application exit code
)

// Kinds of crash.
const (
	CrashKernelPanic      = "kernel-panic"
	CrashHypervisorKilled = "hypervisor-killed"
	CrashHypervisorFailed = "hypervisor-failed"
	CrashGuestError       = "guest-error"  // the init could not start the app
	CrashNoExitCode       = "no-exit-code" // the guest powered off without one
	CrashBootTimeout      = "boot-timeout" // the init never reported (see defaultBootWait)
)

// classify explains a VM that ended without an exit code: the
// hypervisor's exit first, then the console log.
func classify(driver string, x Exit, consoleLog string) (string, string) {
	if x.Signal != 0 {
		return fmt.Sprintf("%s was killed by signal %d (%s)", driver, int(x.Signal), x.Signal), CrashHypervisorKilled
	}
	if x.Err != nil {
		return driver + " failed: " + LastLine(x.Output, x.Err.Error()), CrashHypervisorFailed
	}
	if panicLine, ok := kernelPanic(consoleLog); ok {
		return panicLine, CrashKernelPanic
	}
	return consoleTail(consoleLog), CrashNoExitCode
}

// LastLine returns the last non-empty line of s, or fallback.
func LastLine(s, fallback string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return fallback
}

// consoleReadMax bounds what is read of a console log to explain a crash:
// the log is written by the guest.
const consoleReadMax = 4 << 20

func readConsole(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > consoleReadMax {
		if _, err := f.Seek(fi.Size()-consoleReadMax, 0); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, consoleReadMax))
}

// kernelPanic returns the kernel's panic line from the console log.
func kernelPanic(path string) (string, bool) {
	b, err := readConsole(path)
	if err != nil {
		return "", false
	}
	i := strings.Index(string(b), "Kernel panic")
	if i < 0 {
		return "", false
	}
	line, _, _ := strings.Cut(string(b[i:]), "\n")
	return strings.TrimSpace(line), true
}

// consoleTail quotes the end of the console log.
func consoleTail(path string) string {
	b, err := readConsole(path)
	if err != nil {
		return "no console log"
	}
	return "last console line: " + LastLine(string(b), "(empty)")
}
