package guest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/guestapi"
)

// maxProbes caps the probes in flight, so a host cannot make the init
// spawn goroutines without bound; more are answered with an error at once.
const maxProbes = 4

// errAppNotRunning answers a probe that arrives before the application
// started or after it ended.
var errAppNotRunning = errors.New("application not running")

// control is the init's end of the control port. Its reader answers probes
// itself, each in its own goroutine, and passes every other message on
// msgs: a slow probe never holds up a signal or the exit report.
type control struct {
	// mu serialises writes: probe results come from their own goroutines.
	mu  sync.Mutex
	enc *json.Encoder

	msgs chan guestapi.Message
	// running is true from the application's start to its end.
	running atomic.Bool
	// exited is closed when the application has ended; from then on
	// nobody reads msgs and the reader drops what it would put there.
	exited chan struct{}
	// probes holds one token per probe in flight.
	probes chan struct{}
	// exec, once the application runs, starts exec sessions.
	exec atomic.Pointer[func(guestapi.Message)]
	// port holds the port's writes while the VM's state is saved; nil
	// where the ports cannot (one port per channel).
	port quiescer
	// quiesced is set from TypeSnapshot to TypeRestore, while mu is held.
	quiesced bool
	// app is the application's PID once it runs.
	app atomic.Int64
}

func newControl(rw io.ReadWriter, port quiescer) *control {
	c := &control{
		port:   port,
		enc:    json.NewEncoder(rw),
		msgs:   make(chan guestapi.Message, 16),
		exited: make(chan struct{}),
		probes: make(chan struct{}, maxProbes),
	}
	go c.read(rw)
	return c
}

func (c *control) read(r io.Reader) {
	dec := json.NewDecoder(r)
	for {
		var m guestapi.Message
		if err := dec.Decode(&m); err != nil {
			if !errors.Is(err, io.EOF) {
				logf("control port: %v", err)
			}
			close(c.msgs)
			return
		}
		if m.Type == guestapi.TypeProbe {
			c.probe(m)
			continue
		}
		if m.Type == guestapi.TypeSnapshot || m.Type == guestapi.TypeRestore {
			c.snapshot(m)
			continue
		}
		if m.Type == guestapi.TypeExec {
			if fn := c.exec.Load(); fn != nil && c.running.Load() {
				go (*fn)(m)
			} else {
				logf("exec request while the application is not running: ignored")
			}
			continue
		}
		select {
		case c.msgs <- m:
		case <-c.exited:
		}
	}
}

// send writes one message to the host; it is safe for concurrent use.
// Only the fields a report has go out: the init fills no others.
func (c *control) send(m guestapi.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.enc.Encode(toReport(m)); err != nil {
		logf("control port: %v", err)
	}
}

// report is a guestapi.Message as the init sends one, with the only
// fields it ever fills. Encoding a guestapi.Message itself would first
// make encoding/json build an encoder for every type its Config reaches,
// which took 25 to 80 ms of each boot under TCG, before the host even
// heard Ready. TestReportIsAMessage keeps the two in step.
type report struct {
	Type  string `json:"type"`
	PID   int    `json:"pid,omitempty"`
	Code  int    `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	ID    int    `json:"id,omitempty"`
}

func toReport(m guestapi.Message) report {
	return report{Type: m.Type, PID: m.PID, Code: m.Code, Error: m.Error, ID: m.ID}
}

// snapshot answers the host's TypeSnapshot and TypeRestore (read's
// goroutine only). Between the two, every write to the host waits.
func (c *control) snapshot(m guestapi.Message) {
	if m.Type == guestapi.TypeSnapshot {
		if c.quiesced {
			return
		}
		b, _ := json.Marshal(report{Type: guestapi.TypeQuiesced})
		c.mu.Lock()
		if c.port == nil || !c.running.Load() {
			c.mu.Unlock()
			c.send(guestapi.Message{Type: guestapi.TypeQuiesced, Error: "this guest cannot be saved: no single port, or the application is not running"})
			return
		}
		// Every process but the init stops until the restore is applied:
		// no copy of the app runs on with the saved time, entropy or name.
		_ = unix.Kill(-1, unix.SIGSTOP)
		unix.Sync()
		if err := c.port.Quiesce(guestapi.MuxControl, append(b, '\n')); err != nil {
			_ = unix.Kill(-1, unix.SIGCONT)
			c.mu.Unlock()
			logf("snapshot: %v", err)
			return
		}
		c.quiesced = true
		logf("snapshot: quiesced")
		return
	}
	var err error
	if m.Restore == nil {
		err = errors.New("restore message without its data")
	} else {
		err = applyRestore(m.Restore, int(c.app.Load()))
	}
	if c.quiesced {
		c.quiesced = false
		c.port.Unquiesce()
		c.mu.Unlock()
	}
	r := guestapi.Message{Type: guestapi.TypeRestored}
	if err != nil {
		r.Error = err.Error()
		logf("restore: %v", err)
	} else if m.Restore.Generation > 0 {
		logf("restored from a saved state (generation %d)", m.Restore.Generation)
	}
	_ = unix.Kill(-1, unix.SIGCONT) // the processes stopped at the snapshot
	c.send(r)
}

// onExec sets what starts exec sessions.
func (c *control) onExec(fn func(guestapi.Message)) { c.exec.Store(&fn) }

// appStarted and appExited bracket the application's life, for probes.
// appExited must be called once.
func (c *control) appStarted(pid int) {
	c.app.Store(int64(pid))
	c.running.Store(true)
}

func (c *control) appExited() {
	c.running.Store(false)
	close(c.exited)
}

// probe answers a probe request: at once with an error if it cannot run,
// otherwise from a goroutine when the probe is done.
func (c *control) probe(m guestapi.Message) {
	reply := func(err error) {
		r := guestapi.Message{Type: guestapi.TypeProbeResult, ID: m.ID}
		if err != nil {
			r.Error = err.Error()
		}
		c.send(r)
	}
	switch {
	case m.Probe == nil:
		reply(fmt.Errorf("%w: probe message without a probe", errInvalidProbe))
		return
	case !c.running.Load():
		reply(errAppNotRunning)
		return
	}
	select {
	case c.probes <- struct{}{}:
	default:
		reply(fmt.Errorf("%d probes already in flight", maxProbes))
		return
	}
	go func() {
		defer func() { <-c.probes }()
		reply(runProbe(context.Background(), *m.Probe))
	}()
}

func (c *control) waitConfig(ctx context.Context) (*guestapi.Config, error) {
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return nil, errors.New("control port closed before config arrived")
			}
			if m.Type == guestapi.TypeConfig && m.Config != nil {
				return m.Config, nil
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for config: %w", ctx.Err())
		}
	}
}
