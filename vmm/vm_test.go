package vmm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// fakeDriver starts fake processes whose guest ends the test plays.
type fakeDriver struct{ procs chan *fakeProcess }

func (fakeDriver) Name() string                { return "Fake" }
func (fakeDriver) Check(context.Context) error { return nil }
func (d fakeDriver) Start(_ context.Context, m Machine) (Process, error) {
	p := &fakeProcess{done: make(chan struct{})}
	for range m.Channels {
		host, guest := net.Pipe()
		p.host = append(p.host, host)
		p.guest = append(p.guest, guest)
	}
	d.procs <- p
	return p, nil
}

type fakeProcess struct {
	host, guest []net.Conn
	once        sync.Once
	done        chan struct{}
	exit        Exit
	killed      bool
}

func (p *fakeProcess) PID() int              { return 42 }
func (p *fakeProcess) Channels() []net.Conn  { return p.host }
func (p *fakeProcess) Done() <-chan struct{} { return p.done }
func (p *fakeProcess) Wait() Exit            { <-p.done; return p.exit }
func (p *fakeProcess) Confined() Confined    { return Confined{} }
func (p *fakeProcess) Stop() error           { return p.Kill() }
func (p *fakeProcess) Kill() error {
	p.end(Exit{Err: errors.New("signal: killed"), Signal: syscall.SIGKILL}, true)
	return nil
}

// end is the hypervisor exiting: the guest's ends close.
func (p *fakeProcess) end(x Exit, killed bool) {
	p.once.Do(func() {
		p.exit, p.killed = x, killed
		for _, c := range p.guest {
			c.Close()
		}
		close(p.done)
	})
}

// guest is the test's side of the control channel.
type guest struct {
	t   *testing.T
	p   *fakeProcess
	enc *json.Encoder
	in  *bufio.Scanner
}

func (g *guest) send(m guestapi.Message) {
	g.t.Helper()
	if err := g.enc.Encode(m); err != nil {
		g.t.Fatalf("guest send: %v", err)
	}
}

func (g *guest) recv() guestapi.Message {
	g.t.Helper()
	if !g.in.Scan() {
		g.t.Fatalf("guest recv: %v", g.in.Err())
	}
	var m guestapi.Message
	if err := json.Unmarshal(g.in.Bytes(), &m); err != nil {
		g.t.Fatalf("guest recv: %v", err)
	}
	return m
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// boot starts a VM on the fake driver and returns it with the guest side.
func boot(t *testing.T, console string) (*VM, *guest, *syncBuffer) {
	t.Helper()
	return bootHeld(t, console, nil)
}

// bootHeld is boot with Guest.Hold set to hold.
func bootHeld(t *testing.T, console string, hold <-chan error) (*VM, *guest, *syncBuffer) {
	t.Helper()
	d := fakeDriver{procs: make(chan *fakeProcess, 1)}
	out := &syncBuffer{}
	m := Machine{Channels: GuestChannels(), ConsoleLog: console}
	vm, err := Boot(context.Background(), d, m, Guest{Config: &guestapi.Config{Argv: []string{"/app"}}, Stdout: out, Stderr: out, Hold: hold})
	if err != nil {
		t.Fatal(err)
	}
	p := <-d.procs
	g := &guest{t: t, p: p, enc: json.NewEncoder(p.guest[0]), in: bufio.NewScanner(p.guest[0])}
	// The output channels: the application writes, then they close with
	// the process.
	return vm, g, out
}

func TestBootSession(t *testing.T) {
	vm, g, out := boot(t, "")
	g.send(guestapi.Message{Type: guestapi.TypeReady})
	if m := g.recv(); m.Type != guestapi.TypeConfig || m.Config == nil || m.Config.Argv[0] != "/app" || m.Config.Time.IsZero() {
		t.Fatalf("after ready the guest got %+v", m)
	}
	// A probe before the app started is answered by the host.
	if err := vm.Probe(context.Background(), guestapi.Probe{Port: 80}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("probe before start: %v", err)
	}
	g.send(guestapi.Message{Type: guestapi.TypeStarted, PID: 7})
	go func() { _, _ = g.p.guest[1].Write([]byte("hello\n")) }()

	// Probes go to the guest with an ID; the result comes back to the caller.
	res := make(chan error, 1)
	go func() { res <- vm.Probe(context.Background(), guestapi.Probe{Port: 80, HTTPPath: "/h"}) }()
	pm := g.recv()
	if pm.Type != guestapi.TypeProbe || pm.Probe == nil || pm.Probe.Port != 80 || pm.Probe.HTTPPath != "/h" || pm.ID == 0 {
		t.Fatalf("probe message %+v", pm)
	}
	g.send(guestapi.Message{Type: guestapi.TypeProbeResult, ID: pm.ID + 100, Error: "not ours"}) // ignored
	g.send(guestapi.Message{Type: guestapi.TypeProbeResult, ID: pm.ID, Error: "HTTP 503"})
	if err := <-res; err == nil || err.Error() != "HTTP 503" {
		t.Errorf("probe result %v, want HTTP 503", err)
	}

	// Signals reach the guest once the app runs.
	vm.Signal(syscall.SIGTERM)
	if m := g.recv(); m.Type != guestapi.TypeSignal || m.Signal != int(syscall.SIGTERM) {
		t.Fatalf("signal message %+v", m)
	}
	g.send(guestapi.Message{Type: guestapi.TypeExit, Code: 3})
	waitFor(t, func() bool { return strings.Contains(out.String(), "hello") })
	g.p.end(Exit{}, false) // the guest powers off
	if o := vm.Wait(); o.ExitCode != 3 || o.Crash != "" || o.Forced {
		t.Errorf("outcome %+v, want exit 3", o)
	}
	if err := vm.Probe(context.Background(), guestapi.Probe{Port: 80}); !errors.Is(err, ErrVMExited) {
		t.Errorf("probe after exit: %v", err)
	}
}

// TestBootHold: the config waits for Guest.Hold; an error there stops
// the VM with it.
func TestBootHold(t *testing.T) {
	hold := make(chan error, 1)
	_, g, _ := bootHeld(t, "", hold)
	got := make(chan guestapi.Message, 1)
	g.send(guestapi.Message{Type: guestapi.TypeReady})
	go func() { got <- g.recv() }()
	select {
	case m := <-got:
		t.Fatalf("the guest got %+v before the hold yielded", m)
	case <-time.After(200 * time.Millisecond):
	}
	released := time.Now()
	hold <- nil
	if m := <-got; m.Type != guestapi.TypeConfig || m.Config == nil || m.Config.Time.Before(released) {
		t.Fatalf("after the hold yielded the guest got %+v, want its config timed after %v", m, released)
	}
	g.p.end(Exit{}, false)

	// Yielding before the init is ready: the config goes when it is.
	hold = make(chan error, 1)
	hold <- nil
	_, g, _ = bootHeld(t, "", hold)
	time.Sleep(50 * time.Millisecond)
	g.send(guestapi.Message{Type: guestapi.TypeReady})
	if m := g.recv(); m.Type != guestapi.TypeConfig {
		t.Fatalf("the guest got %+v, want its config", m)
	}
	g.p.end(Exit{}, false)

	hold = make(chan error, 1)
	vm, g, _ := bootHeld(t, "", hold)
	g.send(guestapi.Message{Type: guestapi.TypeReady})
	hold <- errors.New("no firewall")
	o := vm.Wait()
	if !g.p.killed || o.HoldError != "no firewall" || o.Crash != "no firewall" || o.ExitCode != ExitGuestError {
		t.Errorf("a hold that failed: killed %v, outcome %+v", g.p.killed, o)
	}
}

func TestBootTermBeforeStartForcesOff(t *testing.T) {
	vm, g, _ := boot(t, "")
	g.send(guestapi.Message{Type: guestapi.TypeReady})
	g.recv()
	vm.Signal(syscall.SIGTERM) // nothing runs yet that could stop gracefully
	if o := vm.Wait(); !o.Forced || o.ExitCode != ExitKilled || !g.p.killed {
		t.Errorf("outcome %+v (killed %v), want forced off with %d", o, g.p.killed, ExitKilled)
	}
}

func TestBootCrashes(t *testing.T) {
	dir := t.TempDir()
	panicLog := filepath.Join(dir, "console.log")
	os.WriteFile(panicLog, []byte("boot\nKernel panic - not syncing: VFS: Unable to mount root\nmore\n"), 0o600)
	quietLog := filepath.Join(dir, "quiet.log")
	os.WriteFile(quietLog, []byte("a\nthe last words\n"), 0o600)
	for _, c := range []struct {
		name, console string
		guestErr      string
		exit          Exit
		kind, crash   string
		code          int
	}{
		{"kernel panic", panicLog, "", Exit{}, CrashKernelPanic, "Kernel panic - not syncing: VFS: Unable to mount root", ExitGuestError},
		{"no exit code", quietLog, "", Exit{}, CrashNoExitCode, "last console line: the last words", ExitGuestError},
		{"hypervisor killed", quietLog, "", Exit{Err: errors.New("killed"), Signal: syscall.SIGSEGV}, CrashHypervisorKilled, "Fake was killed by signal 11 (segmentation fault)", 128 + 11},
		{"hypervisor failed", quietLog, "", Exit{Err: errors.New("exit status 1"), Output: "qemu: could not load kernel"}, CrashHypervisorFailed, "Fake failed: qemu: could not load kernel", ExitGuestError},
		{"guest error", quietLog, "exec /app: no such file", Exit{}, CrashGuestError, "guest: exec /app: no such file", ExitGuestError},
	} {
		t.Run(c.name, func(t *testing.T) {
			vm, g, _ := boot(t, c.console)
			if c.guestErr != "" {
				g.send(guestapi.Message{Type: guestapi.TypeError, Error: c.guestErr})
				time.Sleep(50 * time.Millisecond) // the message is read before the exit
			}
			g.p.end(c.exit, false)
			o := vm.Wait()
			if o.CrashKind != c.kind || o.Crash != c.crash || o.ExitCode != c.code {
				t.Errorf("outcome %+v, want kind %s, crash %q, exit %d", o, c.kind, c.crash, c.code)
			}
		})
	}
}

// TestHostileControlLine: what the guest sends is untrusted. A line that
// never ends must stop the host's reader once it passes maxMessage, while
// the guest is still sending, rather than grow the host's memory; the VM
// can then still be forced off.
func TestHostileControlLine(t *testing.T) {
	host, guest := net.Pipe()
	defer guest.Close()
	msgs := make(chan guestapi.Message, 1)
	go readMessages(host, msgs, nil)
	go func() {
		// Valid JSON so far, and never complete: a decoder alone would wait.
		if _, err := guest.Write([]byte(`{"type":"`)); err != nil {
			return
		}
		junk := bytes.Repeat([]byte("x"), 4096)
		for {
			if _, err := guest.Write(junk); err != nil {
				return
			}
		}
	}()
	select {
	case _, ok := <-msgs:
		if ok {
			t.Fatal("a message out of an endless line")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader still reads an endless line after 5s")
	}
	host.Close()

	vm, _, _ := boot(t, "")
	vm.Kill()
	if o := vm.Wait(); !o.Forced || o.ExitCode != ExitKilled {
		t.Errorf("outcome %+v", o)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}

// FuzzControlMessages feeds whatever a hostile guest might send on the
// control channel to the host's reader: it must never panic, and must end
// when the channel does.
func FuzzControlMessages(f *testing.F) {
	for _, s := range []string{
		`{"type":"ready"}` + "\n",
		`{"type":"exit","code":3}` + "\n",
		`{"type":"probe-result","id":1,"error":"x"}` + "\n",
		`{"type":"started","pid":-1}{"type":"error","error":"` + strings.Repeat("e", 1000) + `"}`,
		"\x00\xff{\"type\":",
		`[1,2,3]` + "\n" + `{"type":"config","config":{"argv":null}}`,
		`{"type":"quiesced","error":"x"}` + "\n" + `{"type":"restored","restore":{"seed":"AAAA"}}` + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		host, guest := net.Pipe()
		msgs := make(chan guestapi.Message, 16)
		go readMessages(host, msgs, nil)
		go func() { _, _ = guest.Write(data); guest.Close() }()
		n := 0
		for range msgs {
			n++
		}
		if n > len(data) {
			t.Fatalf("%d messages from %d bytes", n, len(data))
		}
	})
}

// TestBootMuxed: the session over the one port (guestapi.PortMux), with a
// guest that misbehaves on it: malformed JSON, an exit report before the
// app started and a second one after, a flood on stdout. The host's
// outcome is the first exit report's code, the output arrives whole, and
// the VM ends with the process.
func TestBootMuxed(t *testing.T) {
	if m := (Machine{Channels: MuxedChannels()}); !m.Muxed() || !m.HasIO() {
		t.Fatalf("MuxedChannels: Muxed %v, HasIO %v", m.Muxed(), m.HasIO())
	}
	out, errb := &syncBuffer{}, &syncBuffer{}
	vm, p, mux, g := muxedBoot(t, out, errb)
	ctl := mux.Conn(guestapi.MuxControl)
	if _, err := ctl.Write([]byte("{not json\n")); err != nil {
		t.Fatal(err)
	}
	g.send(guestapi.Message{Type: guestapi.TypeExit, Code: 9}) // before started
	g.send(guestapi.Message{Type: guestapi.TypeStarted, PID: 7})
	flood := bytes.Repeat([]byte("o"), 4<<20)
	go func() {
		mux.Conn(guestapi.MuxStdout).Write(flood)
		mux.Conn(guestapi.MuxStdout).CloseWrite()
		mux.Conn(guestapi.MuxStderr).Write([]byte("err\n"))
		mux.Conn(guestapi.MuxStderr).CloseWrite()
	}()
	g.send(guestapi.Message{Type: guestapi.TypeExit, Code: 3}) // a second report
	waitFor(t, func() bool { return len(out.String()) == len(flood) && errb.String() == "err\n" })
	p.end(Exit{}, false)
	o := vm.Wait()
	t.Logf("outcome after a malformed line, an early exit report and a second one: %+v", o)
	if o.ExitCode != 9 || o.BadMessages != 1 || o.Crash != "" {
		t.Errorf("outcome %+v: want the first report's code (9) and the malformed line counted", o)
	}
}

// TestBootTimeout: a guest whose init never reports (a kernel that hung
// before running it) is forced off after the boot wait, and the outcome
// says why; a guest that reported ready in time is left alone.
func TestBootTimeout(t *testing.T) {
	t.Setenv("NOS_BOOT_TIMEOUT", "300ms")
	vm, _, _ := boot(t, "")
	o := vm.Wait()
	if o.CrashKind != CrashBootTimeout || o.ExitCode != ExitGuestError || !strings.Contains(o.Crash, "did not report within 300ms") {
		t.Errorf("outcome %+v, want a boot timeout", o)
	}
	vm, g, _ := boot(t, "")
	g.send(guestapi.Message{Type: guestapi.TypeReady})
	g.recv()
	time.Sleep(500 * time.Millisecond)
	select {
	case <-vm.Done():
		t.Fatalf("a guest that said ready was forced off: %+v", vm.Wait())
	default:
	}
	vm.Kill()
	vm.Wait()
}

// muxedBoot starts a VM over the one port and plays its init up to the
// config it gets.
func muxedBoot(t *testing.T, stdout, stderr io.Writer) (*VM, *fakeProcess, *guestapi.Mux, *guest) {
	t.Helper()
	d := fakeDriver{procs: make(chan *fakeProcess, 1)}
	vm, err := Boot(context.Background(), d, Machine{Channels: MuxedChannels()}, Guest{Config: &guestapi.Config{Argv: []string{"/app"}}, Stdout: stdout, Stderr: stderr})
	if err != nil {
		t.Fatal(err)
	}
	p := <-d.procs
	mux := guestapi.NewMux(p.guest[0])
	ctl := mux.Conn(guestapi.MuxControl)
	g := &guest{t: t, p: p, enc: json.NewEncoder(ctl), in: bufio.NewScanner(ctl)}
	g.send(guestapi.Message{Type: guestapi.TypeReady})
	if c := g.recv(); c.Type != guestapi.TypeConfig || c.Config == nil || c.Config.Argv[0] != "/app" {
		t.Fatalf("after ready: %+v", c)
	}
	return vm, p, mux, g
}

// startedBoot is muxedBoot up to the app's start.
func startedBoot(t *testing.T) (*VM, *fakeProcess, *guestapi.Mux) {
	t.Helper()
	vm, p, mux, g := muxedBoot(t, io.Discard, io.Discard)
	g.send(guestapi.Message{Type: guestapi.TypeStarted, PID: 7})
	return vm, p, mux
}

// rawFrame is a mux frame as a guest may write it, well-formed or not.
func rawFrame(kind, ch byte, data string) []byte {
	b := []byte{kind, ch, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[2:], uint32(len(data)))
	return append(b, data...)
}

// TestGuestClosesAndReopens: a guest that closes its control channel and
// then writes on it again (as if it had reopened it) is not heard: the
// exit report it sends afterwards does not count, the frames are counted
// as dropped, and the VM runs until its process ends.
func TestGuestClosesAndReopens(t *testing.T) {
	vm, p, mux := startedBoot(t)
	if err := mux.Conn(guestapi.MuxControl).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	exit, _ := json.Marshal(guestapi.Message{Type: guestapi.TypeExit, Code: 5})
	for range 3 {
		if _, err := p.guest[0].Write(rawFrame(0, guestapi.MuxControl, string(exit)+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case <-vm.Done():
		t.Fatal("the session ended while the VM runs")
	default:
	}
	p.end(Exit{Err: errors.New("exit status 0")}, false)
	o := vm.Wait()
	t.Logf("outcome: %+v", o)
	if o.ExitCode == 5 || o.DroppedFrames != 3 || o.StreamError != "" {
		t.Errorf("outcome %+v: want the reports after the close dropped (3) and not counted", o)
	}
}

// TestGuestBreaksTheStream: a frame no nos-init sends (an unknown kind)
// ends the host's reading of the port; the VM runs on, the outcome says
// why it was no longer heard, and signals still reach the process's end.
func TestGuestBreaksTheStream(t *testing.T) {
	vm, p, _ := startedBoot(t)
	// The host stops reading after the header: the pipe never takes the rest.
	go p.guest[0].Write(rawFrame(9, 0, "x"))
	time.Sleep(100 * time.Millisecond)
	select {
	case <-vm.Done():
		t.Fatal("the session ended while the VM runs")
	default:
	}
	vm.Kill()
	o := vm.Wait()
	t.Logf("outcome: %+v", o)
	if !o.Forced || o.ExitCode != ExitKilled || !strings.Contains(o.StreamError, "kind 9") {
		t.Errorf("outcome %+v: want forced off with the stream's error", o)
	}
}
