package vmm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// Guest is what Boot tells the guest init and where the application's
// output goes.
type Guest struct {
	// Config is sent when the init says it is ready; its Time is set then.
	Config *guestapi.Config
	Stdout io.Writer
	Stderr io.Writer
	// Restore is what a VM started from a saved state (Machine.Restore)
	// is told first, and a VM that runs on after VM.Snapshot is told
	// after it (with Generation 0); its time and seed are filled in then.
	Restore *guestapi.Restore
	// Hold, when set, holds Config back until it yields: nil lets it go
	// (at once if the init has already said it is ready), an error stops
	// the VM, and the outcome's Crash and HoldError say why. The init
	// starts nothing and brings no NIC up before it has its config, so
	// what the caller still sets up for the guest meanwhile (the host's
	// firewall table) is in place before the guest can use it. Not for a
	// VM started from a saved state, whose app runs at once.
	Hold <-chan error
}

// Errors of a VM's requests, for errors.Is.
var (
	ErrNotStarted  = errors.New("the application has not started")
	ErrVMExited    = errors.New("the VM has exited")
	ErrProbesBusy  = errors.New("too many health probes in flight")
	ErrBadChannels = errors.New("a nos guest needs the control, stdout and stderr channels (and maybe the I/O one)")
	ErrNotSaveable = errors.New("this VM cannot be saved: it was not started saveable, on one port, by a driver that can")
)

// quiesceWait bounds how long a snapshot waits for the guest to stop
// writing.
const quiesceWait = 10 * time.Second

const (
	// maxPendingProbes bounds the probes waiting for the guest's answer.
	maxPendingProbes = 8
	// powerOffWait is how long the guest may take to power off once the
	// application's exit code is in.
	powerOffWait = 10 * time.Second
	// defaultBootWait bounds the time from the hypervisor's start to the
	// init's first message (ready): a kernel that hangs before running
	// the init, seen under heavy TCG load, would otherwise leave an
	// instance "running" that never starts. NOS_BOOT_TIMEOUT overrides it.
	defaultBootWait = 5 * time.Minute
)

// VM is a booted machine: its hypervisor process and the session with
// the guest init on its control channel.
type VM struct {
	proc    Process
	driver  string
	console string

	signals chan syscall.Signal
	kill    chan struct{}
	probes  chan probeRequest
	execs   chan execRequest
	saves   chan saveRequest
	io      *ioMux        // nil without the interactive streams
	chans   []net.Conn    // control, stdout, stderr (and I/O): ports or a PortMux's channels
	mux     *guestapi.Mux // nil with one port per channel
	saver   Saver         // nil unless the VM can be saved
	// restoring: the VM starts from a saved state.
	restoring bool
	// badMessages counts control lines from the guest that were not
	// messages (Outcome.BadMessages).
	badMessages atomic.Int64
	done        chan struct{}
	outcome     Outcome
}

type saveRequest struct {
	to    *os.File
	reply chan saveReply
}

type saveReply struct {
	stats SaveStats
	err   error
}

type probeRequest struct {
	probe guestapi.Probe
	reply chan error
}

// Boot starts m on d and runs the guest session: the init gets g.Config,
// the application's output goes to g's writers. m must have the channels
// of GuestChannels, or of InteractiveChannels. Cancelling ctx forces the
// VM off.
func Boot(ctx context.Context, d Driver, m Machine, g Guest) (*VM, error) {
	if len(m.Channels) != 3 && len(m.Channels) != 4 && !m.Muxed() {
		return nil, ErrBadChannels
	}
	if m.Restore != nil && (!m.Saveable || !m.Muxed() || g.Restore == nil) {
		return nil, ErrNotSaveable
	}
	if m.Restore != nil && g.Hold != nil {
		return nil, errors.New("vmm: a VM started from a saved state runs its app at once: nothing can hold its config")
	}
	p, err := d.Start(ctx, m)
	if err != nil {
		return nil, err
	}
	v := &VM{
		proc: p, driver: d.Name(), console: m.ConsoleLog,
		signals: make(chan syscall.Signal, 4),
		kill:    make(chan struct{}, 1),
		probes:  make(chan probeRequest),
		execs:   make(chan execRequest),
		saves:   make(chan saveRequest),
		done:    make(chan struct{}),
	}
	if m.Saveable && m.Muxed() {
		v.saver, _ = p.(Saver)
	}
	v.restoring = m.Restore != nil
	v.chans = p.Channels()
	if m.Muxed() {
		v.mux = guestapi.NewMux(v.chans[0])
		v.chans = nil
		for ch := range guestapi.MuxChannels {
			v.chans = append(v.chans, v.mux.Conn(ch))
		}
	}
	if len(v.chans) == 4 {
		v.io = &ioMux{conn: v.chans[3], sessions: map[uint32]*ExecSession{}}
	}
	go v.serve(ctx, g)
	return v, nil
}

// PID is the hypervisor's process ID.
func (v *VM) PID() int { return v.proc.PID() }

// Confined says how the hypervisor is confined.
func (v *VM) Confined() Confined { return v.proc.Confined() }

// Signal delivers sig to the application through the init. SIGTERM or
// SIGINT before the application started forces the VM off: nothing runs
// yet that could stop gracefully.
func (v *VM) Signal(sig syscall.Signal) {
	select {
	case v.signals <- sig:
	default: // a burst of signals: the ones queued already do the job
	}
}

// Kill forces the VM off.
func (v *VM) Kill() {
	select {
	case v.kill <- struct{}{}:
	default:
	}
}

// Done is closed when the VM has ended and Outcome is known.
func (v *VM) Done() <-chan struct{} { return v.done }

// Wait blocks until the VM has ended and returns how.
func (v *VM) Wait() Outcome {
	<-v.done
	return v.outcome
}

// Probe runs a health probe inside the guest and returns its verdict: nil
// when the application is healthy.
func (v *VM) Probe(ctx context.Context, p guestapi.Probe) error {
	req := probeRequest{probe: p, reply: make(chan error, 1)}
	select {
	case v.probes <- req:
	case <-v.done:
		return ErrVMExited
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-v.done:
		return ErrVMExited
	case <-ctx.Done():
		return ctx.Err()
	}
}

// session is the state of serve's loop.
type session struct {
	enc      *json.Encoder
	started  bool // the application runs: signals and probes can reach it
	guestErr string
	nextID   int
	pending  map[int]chan error
	ready    bool // the init has spoken
	held     bool // Guest.Hold has not yielded yet
	// restoreErr is what the guest said it could not take again after a
	// save or restore ("" when all went well).
	restoreErr string
}

// bootWait is defaultBootWait or NOS_BOOT_TIMEOUT (a Go duration).
func bootWait() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("NOS_BOOT_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return defaultBootWait
}

// serve runs the guest session until the hypervisor exits.
func (v *VM) serve(ctx context.Context, g Guest) {
	defer close(v.done)
	ctl, out, errc := v.chans[0], v.chans[1], v.chans[2]
	defer ctl.Close()
	if v.io != nil {
		defer v.io.conn.Close()
		go v.io.read()
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(g.Stdout, out); out.Close() }()
	go func() { defer wg.Done(); _, _ = io.Copy(g.Stderr, errc); errc.Close() }()

	msgs := make(chan guestapi.Message, 16)
	go readMessages(ctl, msgs, &v.badMessages)
	s := &session{enc: json.NewEncoder(ctl), pending: map[int]chan error{}}
	o := Outcome{ExitCode: -1}
	var deadline <-chan time.Time
	cancelled := ctx.Done()
	wait := bootWait()
	bootTimer := time.NewTimer(wait)
	defer bootTimer.Stop()
	bootTimedOut := false
	restoreFailed := false
	hold := g.Hold
	s.held = hold != nil
	var holdErr error
	if v.restoring {
		// The saved guest was running its app: no config exchange.
		s.ready, s.started = true, true
		if err := v.saver.Resume(ctx); err != nil {
			s.guestErr = "restore: " + err.Error()
			restoreFailed = true
			_ = v.proc.Kill()
		} else {
			s.sendRestore(g.Restore, g.Restore.Generation)
		}
	}
loop:
	for {
		select {
		case <-v.proc.Done():
			break loop
		case msg, ok := <-msgs:
			if !ok {
				msgs = nil
				continue
			}
			if code, exited := s.handle(msg, g); exited {
				if o.ExitCode < 0 { // the first report counts; a guest's second is ignored
					o.ExitCode = code
				}
				// The guest powers off next; don't wait forever if it hangs.
				deadline = time.After(powerOffWait)
			}
		case sig := <-v.signals:
			if !s.started && (sig == syscall.SIGTERM || sig == syscall.SIGINT) {
				o.Forced = true
				_ = v.proc.Kill()
				continue
			}
			_ = s.enc.Encode(guestapi.Message{Type: guestapi.TypeSignal, Signal: int(sig)})
		case err := <-hold:
			hold, s.held = nil, false
			if err != nil {
				holdErr = err
				_ = v.proc.Kill()
				continue
			}
			if s.ready {
				s.sendConfig(g)
			}
		case req := <-v.probes:
			s.probe(req)
		case req := <-v.saves:
			req.reply <- v.save(ctx, s, msgs, req.to, g)
		case req := <-v.execs:
			if !s.started {
				req.reply <- ErrNotStarted
				continue
			}
			req.reply <- s.enc.Encode(req.msg)
		case <-v.kill:
			o.Forced = true
			_ = v.proc.Kill()
		case <-cancelled:
			cancelled = nil
			o.Forced = true
			_ = v.proc.Kill()
		case <-deadline:
			_ = v.proc.Kill()
		case <-bootTimer.C:
			if !s.ready {
				bootTimedOut = true
				_ = v.proc.Kill()
			}
		}
	}
	// What the guest said just before the end (its exit code) may still be
	// on its way: the channel ends with the process, so read it out.
	drain := time.After(2 * time.Second)
	for msgs != nil {
		select {
		case msg, ok := <-msgs:
			if !ok {
				msgs = nil
				break
			}
			if code, exited := s.handle(msg, g); exited && o.ExitCode < 0 {
				o.ExitCode = code
			}
		case <-drain:
			msgs = nil
		}
	}
	wg.Wait()
	for _, reply := range s.pending {
		reply <- ErrVMExited
	}
	x := v.proc.Wait()
	switch {
	case holdErr != nil:
		o.ExitCode, o.Crash, o.HoldError = ExitGuestError, holdErr.Error(), holdErr.Error()
	case o.ExitCode >= 0:
	case o.Forced:
		o.ExitCode = ExitKilled
	case s.guestErr != "":
		o.ExitCode = ExitGuestError
		o.Crash, o.CrashKind = "guest: "+s.guestErr, CrashGuestError
	case bootTimedOut:
		o.ExitCode = ExitGuestError
		o.Crash = fmt.Sprintf("boot: the guest's init did not report within %v (the kernel hung or never ran it: see nos logs --console); forced off", wait)
		o.CrashKind = CrashBootTimeout
	default:
		o.ExitCode = ExitGuestError
		o.Crash, o.CrashKind = classify(v.driver, x, v.console)
		if x.Signal != 0 {
			o.ExitCode = 128 + int(x.Signal)
		}
	}
	o.BadMessages = int(v.badMessages.Load())
	o.RestoreError = s.restoreErr
	o.RestoreFailed = restoreFailed
	if v.mux != nil {
		o.DroppedFrames = int(v.mux.Dropped())
		if err := v.mux.Err(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			o.StreamError = err.Error()
		}
	}
	v.outcome = o
}

// Snapshot saves the VM's state to f once its app runs: the guest stops
// writing, the VM is paused and saved, then runs on and is told to take
// new entropy (copies restored from f must not share its random state).
func (v *VM) Snapshot(ctx context.Context, f *os.File) (SaveStats, error) {
	if v.saver == nil {
		return SaveStats{}, ErrNotSaveable
	}
	req := saveRequest{to: f, reply: make(chan saveReply, 1)}
	select {
	case v.saves <- req:
	case <-v.done:
		return SaveStats{}, ErrVMExited
	case <-ctx.Done():
		return SaveStats{}, ctx.Err()
	}
	r := <-req.reply
	return r.stats, r.err
}

// save runs in serve's loop: nothing else is sent to the guest meanwhile.
// Messages other than the quiesced one are handled as usual.
func (v *VM) save(ctx context.Context, s *session, msgs <-chan guestapi.Message, f *os.File, g Guest) saveReply {
	if !s.started {
		return saveReply{err: ErrNotStarted}
	}
	if err := s.enc.Encode(guestapi.Message{Type: guestapi.TypeSnapshot}); err != nil {
		return saveReply{err: err}
	}
	timeout := time.After(quiesceWait)
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				return saveReply{err: ErrVMExited}
			}
			if msg.Type != guestapi.TypeQuiesced {
				s.handle(msg, g)
				continue
			}
			if msg.Error != "" {
				return saveReply{err: errors.New("the guest: " + msg.Error)}
			}
			st, err := v.saver.Save(ctx, f)
			if rerr := v.saver.Resume(ctx); rerr != nil && err == nil {
				err = fmt.Errorf("resuming after the save: %w", rerr)
			}
			s.sendRestore(g.Restore, 0)
			return saveReply{stats: st, err: err}
		case <-timeout:
			s.sendRestore(g.Restore, 0) // lets a slow guest write again
			return saveReply{err: fmt.Errorf("the guest did not stop writing within %v", quiesceWait)}
		case <-v.proc.Done():
			return saveReply{err: ErrVMExited}
		}
	}
}

// sendRestore tells the guest its new time and entropy (and name).
func (s *session) sendRestore(r *guestapi.Restore, generation int) {
	m := guestapi.Restore{UnixNano: time.Now().UnixNano(), Seed: make([]byte, 64), Generation: generation}
	if r != nil {
		m.Hostname, m.Signal = r.Hostname, r.Signal
	}
	if _, err := rand.Read(m.Seed); err != nil {
		s.guestErr = "entropy for the guest: " + err.Error()
		return
	}
	_ = s.enc.Encode(guestapi.Message{Type: guestapi.TypeRestore, Restore: &m})
}

// sendConfig sends the guest its config, once the init is ready and
// nothing holds it back.
func (s *session) sendConfig(g Guest) {
	g.Config.Time = time.Now() // now, not when the boot began
	if err := s.enc.Encode(guestapi.Message{Type: guestapi.TypeConfig, Config: g.Config}); err != nil {
		s.guestErr = "sending config: " + err.Error()
	}
}

// handle acts on one message from the guest; it returns the application's
// exit code when the message reports it.
func (s *session) handle(msg guestapi.Message, g Guest) (int, bool) {
	switch msg.Type {
	case guestapi.TypeReady:
		s.ready = true
		if !s.held {
			s.sendConfig(g)
		}
	case guestapi.TypeStarted:
		s.started = true
	case guestapi.TypeExit:
		s.started = false
		return msg.Code, true
	case guestapi.TypeError:
		s.guestErr = msg.Error
	case guestapi.TypeRestored:
		s.restoreErr = msg.Error
	case guestapi.TypeProbeResult:
		reply, ok := s.pending[msg.ID]
		if !ok {
			return 0, false // late, or not ours
		}
		delete(s.pending, msg.ID)
		if msg.Error != "" {
			reply <- errors.New(msg.Error)
		} else {
			reply <- nil
		}
	}
	return 0, false
}

// probe sends a health probe to the guest; the reply comes with its result.
func (s *session) probe(req probeRequest) {
	switch {
	case !s.started:
		req.reply <- ErrNotStarted
		return
	case len(s.pending) >= maxPendingProbes:
		req.reply <- ErrProbesBusy
		return
	}
	s.nextID++
	p := req.probe
	if err := s.enc.Encode(guestapi.Message{Type: guestapi.TypeProbe, ID: s.nextID, Probe: &p}); err != nil {
		req.reply <- fmt.Errorf("sending the probe: %w", err)
		return
	}
	s.pending[s.nextID] = req.reply
}

// maxMessage bounds one control message from the guest, which is
// untrusted: a flood without newlines must not grow the host's memory.
const maxMessage = 64 << 10

// readMessages passes the guest's control messages to out, one JSON
// object per line, until the channel ends or a line passes maxMessage.
// A line that is not a message is skipped and counted in bad: a guest
// that sends garbage loses that line, not the session.
func readMessages(r net.Conn, out chan<- guestapi.Message, bad *atomic.Int64) {
	defer close(out)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxMessage)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m guestapi.Message
		if err := json.Unmarshal(line, &m); err != nil {
			if bad != nil {
				bad.Add(1)
			}
			continue
		}
		out <- m
	}
}
