package instance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/vmm/qemu"
)

// outcome is how one boot of a VM ended.
type outcome struct {
	ExitCode int
	// Crash explains a VM that ended without an application exit code
	// (kernel panic, QEMU killed or failed); empty when the app exited.
	Crash string
	// CrashKind classifies Crash (see the Crash* constants).
	CrashKind string
	// Forced is set when the VM was forced off (kill, stop timeout).
	Forced bool
}

// vmControl carries requests to a running VM.
type vmControl struct {
	// Signals are delivered to the application by the guest init.
	Signals chan syscall.Signal
	// Kill forces the VM off.
	Kill chan struct{}
}

func newVMControl() vmControl {
	return vmControl{Signals: make(chan syscall.Signal, 4), Kill: make(chan struct{}, 1)}
}

// vmRun is one boot: the machine, what to tell the guest, where its
// output goes, and a hook called once QEMU runs.
type vmRun struct {
	QEMU           string
	Machine        qemu.Machine
	Guest          *guestapi.Config
	Stdout, Stderr io.Writer
	Control        vmControl
	Started        func(qemuPID int)
}

// run boots the VM and serves the guest's control port until QEMU exits.
func (r vmRun) run() (outcome, error) {
	m := r.Machine
	names := []string{m.ControlSocket, m.StdoutSocket, m.StderrSocket}
	listeners := make(map[string]*net.UnixListener, len(names))
	for _, p := range names {
		_ = os.Remove(p)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			return outcome{}, fmt.Errorf("listening for the guest: %w", err)
		}
		defer l.Close()
		listeners[p] = l
	}

	var qout bytes.Buffer
	cmd := exec.Command(r.QEMU, qemu.Command(m)...)
	cmd.Stdout = &qout
	cmd.Stderr = &qout
	// Own process group: a terminal's Ctrl-C is for nos, which stops the
	// guest gracefully. Pdeathsig: QEMU must not outlive whoever watches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return outcome{}, fmt.Errorf("starting QEMU: %w", err)
	}
	if r.Started != nil {
		r.Started(cmd.Process.Pid)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	conns, err := acceptAll(listeners, names, exited)
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return outcome{}, fmt.Errorf("QEMU failed to start: %s", lastLine(qout.String(), err.Error()))
	}
	ctl, out, errc := conns[0], conns[1], conns[2]
	defer ctl.Close()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(r.Stdout, out); out.Close() }()
	go func() { defer wg.Done(); _, _ = io.Copy(r.Stderr, errc); errc.Close() }()

	msgs := make(chan guestapi.Message, 16)
	go readMessages(ctl, msgs)
	enc := json.NewEncoder(ctl)

	var (
		o        = outcome{ExitCode: -1}
		started  bool // the application runs: signals can reach it
		guestErr string
		waitErr  error
		deadline <-chan time.Time
	)
loop:
	for {
		select {
		case waitErr = <-exited:
			break loop
		case msg, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			switch msg.Type {
			case guestapi.TypeReady:
				r.Guest.Time = time.Now() // now, not when the boot began
				if err := enc.Encode(guestapi.Message{Type: guestapi.TypeConfig, Config: r.Guest}); err != nil {
					guestErr = "sending config: " + err.Error()
				}
			case guestapi.TypeStarted:
				started = true
			case guestapi.TypeExit:
				o.ExitCode = msg.Code
				// The guest powers off next; don't wait forever if it hangs.
				deadline = time.After(10 * time.Second)
			case guestapi.TypeError:
				guestErr = msg.Error
			}
		case sig := <-r.Control.Signals:
			if !started && (sig == syscall.SIGTERM || sig == syscall.SIGINT) {
				// Nothing runs yet that could stop gracefully.
				o.Forced = true
				_ = cmd.Process.Kill()
				continue
			}
			_ = enc.Encode(guestapi.Message{Type: guestapi.TypeSignal, Signal: int(sig)})
		case <-r.Control.Kill:
			o.Forced = true
			_ = cmd.Process.Kill()
		case <-deadline:
			_ = cmd.Process.Kill()
		}
	}
	wg.Wait()
	switch {
	case o.ExitCode >= 0:
	case o.Forced:
		o.ExitCode = ExitKilled
	case guestErr != "":
		o.ExitCode = ExitGuestError
		o.Crash, o.CrashKind = "guest: "+guestErr, CrashGuestError
	default:
		o.ExitCode = ExitGuestError
		o.Crash, o.CrashKind = crashReason(waitErr, qout.String(), m.ConsoleLog)
		if sig := killedBy(waitErr); sig != 0 {
			o.ExitCode = 128 + int(sig)
		}
	}
	return o, nil
}

// Kinds of crash, recorded in State.CrashKind.
const (
	CrashKernelPanic = "kernel-panic"
	CrashQEMUKilled  = "qemu-killed"
	CrashQEMUFailed  = "qemu-failed"
	CrashGuestError  = "guest-error"  // the init could not start the app
	CrashNoExitCode  = "no-exit-code" // the guest powered off without one
	CrashMonitorDied = "monitor-died"
)

// crashReason explains a VM that ended without an exit code.
func crashReason(waitErr error, qemuOut, consoleLog string) (string, string) {
	if sig := killedBy(waitErr); sig != 0 {
		return fmt.Sprintf("QEMU was killed by signal %d (%s)", int(sig), sig), CrashQEMUKilled
	}
	if waitErr != nil {
		return "QEMU failed: " + lastLine(qemuOut, waitErr.Error()), CrashQEMUFailed
	}
	if panicLine, ok := kernelPanic(consoleLog); ok {
		return panicLine, CrashKernelPanic
	}
	return consoleTail(consoleLog), CrashNoExitCode
}

func killedBy(err error) syscall.Signal {
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

// acceptAll waits for QEMU to connect to each socket, or to exit trying.
func acceptAll(ls map[string]*net.UnixListener, order []string, exited <-chan error) ([]net.Conn, error) {
	conns := make([]net.Conn, len(order))
	for i, p := range order {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() { c, err := ls[p].Accept(); ch <- result{c, err} }()
		select {
		case r := <-ch:
			if r.err != nil {
				return nil, r.err
			}
			conns[i] = r.c
		case err := <-exited:
			if err == nil {
				err = errors.New("QEMU exited")
			}
			return nil, err
		case <-time.After(30 * time.Second):
			return nil, errors.New("QEMU did not connect to the guest ports within 30s")
		}
	}
	return conns, nil
}

func readMessages(r io.Reader, out chan<- guestapi.Message) {
	defer close(out)
	dec := json.NewDecoder(r)
	for {
		var m guestapi.Message
		if err := dec.Decode(&m); err != nil {
			return
		}
		out <- m
	}
}

// lastLine returns the last non-empty line of s, or fallback.
func lastLine(s, fallback string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return fallback
}

// kernelPanic returns the kernel's panic line from the console log.
func kernelPanic(path string) (string, bool) {
	b, err := os.ReadFile(path)
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
	b, err := os.ReadFile(path)
	if err != nil {
		return "no console log"
	}
	return "last console line: " + lastLine(string(b), "(empty)")
}
