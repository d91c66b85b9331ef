package guest

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// hostChannels are the init's channels to a host: control, the app's
// stdout and stderr (files the app writes directly), and the I/O
// streams, opened on demand. A host of InitAPIMux gives one port
// (guestapi.PortMux) and the channels run over it; an older one gives a
// port per channel.
type hostChannels struct {
	ctl            io.ReadWriter
	stdout, stderr *os.File
	openIO         func(ctx context.Context) (io.ReadWriter, error)
	// flush closes stdout and stderr and waits (briefly) until what the
	// app wrote reached the host; called before the exit report.
	flush func()
	// quiescer holds the port's writes while the VM is saved (one port only).
	quiescer quiescer
}

// connectHost waits for the host's ports to appear and opens them.
func connectHost(ctx context.Context) (*hostChannels, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, ok := findPort(guestapi.PortMux); ok {
			return muxChannels(ctx)
		}
		if _, ok := findPort(guestapi.PortControl); ok {
			return portChannels(ctx)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("virtio port %s (or %s) did not appear: %w", guestapi.PortMux, guestapi.PortControl, ctx.Err())
		case <-tick.C:
		}
	}
}

// portChannels: a port per channel.
func portChannels(ctx context.Context) (*hostChannels, error) {
	ctl, err := openPort(ctx, guestapi.PortControl, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	stdout, err := openPort(ctx, guestapi.PortStdout, os.O_WRONLY)
	if err != nil {
		return nil, err
	}
	stderr, err := openPort(ctx, guestapi.PortStderr, os.O_WRONLY)
	if err != nil {
		return nil, err
	}
	return &hostChannels{
		ctl: ctl, stdout: stdout, stderr: stderr,
		openIO: func(ctx context.Context) (io.ReadWriter, error) {
			return openPort(ctx, guestapi.PortIO, os.O_RDWR)
		},
		flush: func() { stdout.Close(); stderr.Close() },
	}, nil
}

// flushWait bounds how long the exit report waits for the app's last
// output: a process the init could not kill may hold a pipe open.
const flushWait = 2 * time.Second

// muxChannels: one port, guestapi.PortMux. The app's stdout and stderr
// are pipes the init copies into their channels.
func muxChannels(ctx context.Context) (*hostChannels, error) {
	f, err := openPort(ctx, guestapi.PortMux, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	mux := guestapi.NewMux(f)
	var wg sync.WaitGroup
	pipe := func(ch int) (*os.File, error) {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := mux.Conn(ch)
			_, _ = io.Copy(c, r)
			r.Close()
			_ = c.CloseWrite()
		}()
		return w, nil
	}
	stdout, err := pipe(guestapi.MuxStdout)
	if err != nil {
		return nil, err
	}
	stderr, err := pipe(guestapi.MuxStderr)
	if err != nil {
		return nil, err
	}
	return &hostChannels{
		ctl: mux.Conn(guestapi.MuxControl), stdout: stdout, stderr: stderr, quiescer: mux,
		openIO: func(context.Context) (io.ReadWriter, error) { return mux.Conn(guestapi.MuxIO), nil },
		flush: func() {
			stdout.Close()
			stderr.Close()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(flushWait):
				logf("the application's output did not drain in %v: a process still holds it", flushWait)
			}
		},
	}, nil
}
