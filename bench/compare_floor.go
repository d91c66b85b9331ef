package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nosproject/nos/initramfs"
	"github.com/nosproject/nos/vmm"
	"github.com/nosproject/nos/vmm/qemu"
)

// Variant d of -compare, the floor: nos's own kernel on nos's machine with
// an init (bench/floorinit) that only writes a readiness line to the
// console and powers off. Nothing a real guest does can take less.

// floorMarker is what bench/floorinit writes; a test checks the two agree.
const floorMarker = "nos-bench-floor: ready"

// floorPkg is the floor's init, a main package of its own.
const floorPkg = "./bench/floorinit"

// floorPowerOff is how long the floor may take to power off after its
// marker; it is not part of the measurement.
const floorPowerOff = 15 * time.Second

// prepareFloor builds floorinit and packs it as /init of a gzip'd newc
// initramfs with an empty /dev (floorinit mounts devtmpfs there).
func (c *compare) prepareFloor(ctx context.Context) error {
	dir := filepath.Join(c.h.tmp, "floor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(dir, "floorinit")
	// Static and stripped, as nos builds its init.
	if _, err := c.h.goBuild(ctx, bin, floorPkg, "-buildvcs=false", "-ldflags=-s -w -buildid="); err != nil {
		return err
	}
	var a initramfs.Archive
	if err := a.AddHostFile("/init", bin, 0o755); err != nil {
		return err
	}
	if err := a.AddDir("/dev", 0o755); err != nil {
		return err
	}
	c.floorInitrd = filepath.Join(dir, "initramfs.cpio.lz4")
	f, err := os.Create(c.floorInitrd)
	if err != nil {
		return err
	}
	if _, err := a.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	c.floorInit = bin
	return nil
}

// floorMachine is the machine nos would give an instance of an image with
// the floor's kernel and initramfs: the same qemu.Machine fields as nos's
// monitor sets, with the command line and CPU count nos gave variant a's
// instance. Only the paths differ: the console goes to QEMU's stdout,
// which the benchmark watches, and the channel's socket is the
// benchmark's own (QEMU needs someone listening on them).
func (c *compare) floorMachine(memMiB int, sockDir string) vmm.Machine {
	// nos's one port (guestapi.PortMux): each port costs the guest the
	// same kernel buffers, whoever listens.
	ch := vmm.MuxedChannels()
	ch[0].Socket = filepath.Join(sockDir, "mux")
	return vmm.Machine{
		Accel:      c.h.accel,
		MemoryMiB:  memMiB,
		CPUs:       c.nosCPUs,
		Kernel:     c.builtKernel.Path,
		Initrd:     c.floorInitrd,
		Cmdline:    c.nosCmdline,
		ConsoleLog: "/dev/stdout",
		Channels:   ch,
		NICs:       []vmm.NIC{{User: &vmm.UserNet{}}},
		// As the monitor sets them (instance/monitor.go's machine): the
		// floor's kernel probes the same balloon device.
		TCGBufferMiB:      vmm.DefaultTCGBufferMiB(),
		FreePageReporting: vmm.DefaultFreePageReporting(),
	}
}

// bootFloor boots the floor once and times QEMU's exec to the marker on
// the serial console, waiting at most timeout. The guest must then power
// off. A boot without the marker in time is a failed boot, not an error.
func (c *compare) bootFloor(ctx context.Context, memMiB int, timeout time.Duration) (bootOutcome, error) {
	if c.nosCmdline == "" {
		return bootOutcome{}, fmt.Errorf("the floor needs the command line nos gave variant a, and a has not run yet")
	}
	sockDir, err := os.MkdirTemp(c.h.tmp, "floor-vm-")
	if err != nil {
		return bootOutcome{}, err
	}
	defer os.RemoveAll(sockDir)
	m := c.floorMachine(memMiB, sockDir)
	socks, err := listenSinks(m.Channels[0].Socket)
	if err != nil {
		return bootOutcome{}, err
	}
	defer socks.close()
	v, err := c.procs.start(qemu.Command(m, qemu.Access{Sandbox: true}), floorMarker)
	if err != nil {
		return bootOutcome{}, err
	}
	defer v.kill()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-v.serial.ready:
	case <-v.serial.panic:
	case <-v.done:
	case <-timer.C:
	case <-ctx.Done():
		return bootOutcome{}, ctx.Err()
	}
	at := v.serial.readyTime()
	if at.IsZero() {
		return failedBoot(v, timeout), nil
	}
	select {
	case <-v.done:
	case <-time.After(floorPowerOff):
		return bootOutcome{}, fmt.Errorf("the floor wrote its marker but did not power off within %v\n%s", floorPowerOff, v.describe())
	case <-ctx.Done():
		return bootOutcome{}, ctx.Err()
	}
	if v.waitErr != nil {
		return bootOutcome{}, fmt.Errorf("the floor's QEMU after power-off: %w (want exit status 0)\n%s", v.waitErr, v.describe())
	}
	return bootOutcome{OK: true, Took: at.Sub(v.start)}, nil
}

// sinks are unix sockets that accept every connection and discard what
// arrives: the host ends of the virtio-serial ports nos's machine has,
// which QEMU connects to at start.
type sinks struct {
	ls     []net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func listenSinks(paths ...string) (*sinks, error) {
	s := &sinks{}
	for _, p := range paths {
		l, err := net.Listen("unix", p)
		if err != nil {
			s.close()
			return nil, err
		}
		s.ls = append(s.ls, l)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				s.mu.Lock()
				if s.closed {
					s.mu.Unlock()
					conn.Close()
					continue
				}
				s.conns = append(s.conns, conn)
				s.mu.Unlock()
				s.wg.Add(1)
				go func() { defer s.wg.Done(); _, _ = io.Copy(io.Discard, conn) }()
			}
		}()
	}
	return s, nil
}

func (s *sinks) close() {
	for _, l := range s.ls {
		l.Close()
	}
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
