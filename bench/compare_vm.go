package main

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/nosproject/nos/vmm/qemu"
)

// The comparison starts two of its four variants (the conventional VM and
// the floor) with QEMU directly. vmProcs tracks those processes so that
// every one is killed on failure or on a signal.

type vmProcs struct {
	mu    sync.Mutex
	procs map[*directVM]bool
}

func newVMProcs() *vmProcs { return &vmProcs{procs: map[*directVM]bool{}} }

// directVM is one QEMU process the comparison started.
type directVM struct {
	cmd      *exec.Cmd
	start    time.Time // just before exec
	serial   *serialWatch
	stderr   *cappedBuffer
	done     chan struct{}
	waitErr  error
	exitedAt time.Time
	set      *vmProcs
}

// start execs qemu-system-x86_64 with args. Its stdout, where the args
// must send the serial console, is watched for marker (may be empty) and
// for a kernel panic.
func (p *vmProcs) start(args []string, marker string) (*directVM, error) {
	v := &directVM{
		serial: newSerialWatch(marker),
		stderr: &cappedBuffer{max: 64 << 10},
		done:   make(chan struct{}),
		set:    p,
	}
	v.cmd = exec.Command(qemu.Binary, args...)
	v.cmd.Stdout, v.cmd.Stderr = v.serial, v.stderr
	// QEMU dies with the benchmark, whatever kills it.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.procs == nil {
		return nil, errors.New("the benchmark is shutting down")
	}
	v.start = time.Now()
	if err := v.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", qemu.Binary, err)
	}
	p.procs[v] = true
	go func() {
		v.waitErr = v.cmd.Wait()
		v.exitedAt = time.Now()
		close(v.done)
		p.mu.Lock()
		if p.procs != nil {
			delete(p.procs, v)
		}
		p.mu.Unlock()
	}()
	return v, nil
}

// kill ends the VM (SIGKILL) and waits for QEMU to be gone.
func (v *directVM) kill() {
	select {
	case <-v.done:
		return
	default:
	}
	_ = v.cmd.Process.Kill()
	<-v.done
}

// exited reports whether QEMU has exited.
func (v *directVM) exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// describe tells how QEMU ended, or that it still runs, with the end of
// the serial console and QEMU's own messages.
func (v *directVM) describe() string {
	status := "still running"
	if v.exited() {
		status = "exited: exit status 0"
		if v.waitErr != nil {
			status = "exited: " + v.waitErr.Error()
		}
	}
	s := fmt.Sprintf("QEMU %s\nserial console (last lines):\n%s", status, tailLines(v.serial.String(), 12))
	if e := v.stderr.String(); e != "" {
		s += "\nQEMU stderr:\n" + tailLines(e, 5)
	}
	return s
}

// killAll kills every QEMU still running and says how many there were.
// Later starts fail.
func (p *vmProcs) killAll() int {
	p.mu.Lock()
	var vs []*directVM
	for v := range p.procs {
		vs = append(vs, v)
	}
	p.procs = nil
	p.mu.Unlock()
	for _, v := range vs {
		v.kill()
	}
	return len(vs)
}

// serialWatch receives a VM's serial console. It records when marker first
// appeared and when the kernel first reported a panic, and keeps the
// output (up to a cap) to explain failures.
type serialWatch struct {
	marker []byte
	ready  chan struct{} // closed when marker appears
	panic  chan struct{} // closed when a kernel panic appears

	mu      sync.Mutex
	buf     cappedBuffer
	tail    []byte // the last bytes, for markers that straddle writes
	readyAt time.Time
}

// panicText is what Linux prints when it panics.
const panicText = "Kernel panic - not syncing"

func newSerialWatch(marker string) *serialWatch {
	return &serialWatch{marker: []byte(marker), ready: make(chan struct{}), panic: make(chan struct{}), buf: cappedBuffer{max: 1 << 20}}
}

func (w *serialWatch) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.tail = append(w.tail, p...)
	if len(w.marker) > 0 && w.readyAt.IsZero() && bytes.Contains(w.tail, w.marker) {
		w.readyAt = now
		close(w.ready)
	}
	if !closed(w.panic) && bytes.Contains(w.tail, []byte(panicText)) {
		close(w.panic)
	}
	if keep := max(len(w.marker), len(panicText)); len(w.tail) > keep {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-keep:]...)
	}
	return len(p), nil
}

// readyTime is when the marker appeared; zero when it has not.
func (w *serialWatch) readyTime() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.readyAt
}

func (w *serialWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// cappedBuffer keeps the first max bytes written and counts the rest.
type cappedBuffer struct {
	max     int
	mu      sync.Mutex
	b       bytes.Buffer
	dropped int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - c.b.Len()
	if room >= len(p) {
		c.b.Write(p)
	} else {
		if room > 0 {
			c.b.Write(p[:room])
		}
		c.dropped += len(p) - max(room, 0)
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dropped > 0 {
		return c.b.String() + fmt.Sprintf("\n[%d more bytes not kept]", c.dropped)
	}
	return c.b.String()
}
