package guest

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// fakeHost is the host's end of a control port joined to a control by a pipe.
type fakeHost struct {
	t       *testing.T
	enc     *json.Encoder
	results chan guestapi.Message
}

func newFakeHost(t *testing.T) (*fakeHost, *control) {
	// Real pipes, as the virtio port is a file: a write larger than
	// PIPE_BUF may be split, so unserialised writes would interleave.
	toGuest, fromHost := pipe(t)
	toHost, fromGuest := pipe(t)
	h := &fakeHost{t: t, enc: json.NewEncoder(fromHost), results: make(chan guestapi.Message, 64)}
	go func() {
		// Every line must decode: interleaved writes would break one.
		dec := json.NewDecoder(toHost)
		for {
			var m guestapi.Message
			if err := dec.Decode(&m); err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
					t.Errorf("host reading the control port: %v", err)
				}
				close(h.results)
				return
			}
			h.results <- m
		}
	}()
	return h, newControl(struct {
		io.Reader
		io.Writer
	}{toGuest, fromGuest}, nil)
}

// waitIdle waits until no probe holds a slot.
func waitIdle(t *testing.T, c *control) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); len(c.probes) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d probes still in flight", len(c.probes))
		}
	}
}

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); r.Close() })
	return r, w
}

func (h *fakeHost) send(m guestapi.Message) {
	h.t.Helper()
	if err := h.enc.Encode(m); err != nil {
		h.t.Fatalf("host writing the control port: %v", err)
	}
}

func (h *fakeHost) probe(id int, p guestapi.Probe) {
	h.t.Helper()
	h.send(guestapi.Message{Type: guestapi.TypeProbe, ID: id, Probe: &p})
}

// result waits for the next probe result.
func (h *fakeHost) result() guestapi.Message {
	h.t.Helper()
	select {
	case m := <-h.results:
		if m.Type != guestapi.TypeProbeResult {
			h.t.Fatalf("host got %+v, want a probe result", m)
		}
		return m
	case <-time.After(5 * time.Second):
		h.t.Fatal("no probe result within 5s")
		return guestapi.Message{}
	}
}

func TestControlProbes(t *testing.T) {
	h, c := newFakeHost(t)

	tcp := listen(t)
	go func() {
		for {
			conn, err := tcp.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	// slow answers 200 to every request once release is closed.
	slow := listen(t)
	release := make(chan struct{})
	go func() {
		for {
			conn, err := slow.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				<-release
				io.WriteString(conn, "HTTP/1.0 200 OK\r\n\r\n")
			}()
		}
	}()

	h.probe(1, guestapi.Probe{Port: port(tcp)})
	if m := h.result(); m.ID != 1 || m.Error != errAppNotRunning.Error() {
		t.Errorf("probe before the app started: %+v, want %q", m, errAppNotRunning)
	}

	c.appStarted(1)
	h.probe(2, guestapi.Probe{Port: port(tcp)})
	if m := h.result(); m.ID != 2 || m.Error != "" {
		t.Errorf("TCP probe of a listening port: %+v, want healthy", m)
	}
	h.send(guestapi.Message{Type: guestapi.TypeProbe, ID: 3})
	if m := h.result(); m.ID != 3 || m.Error == "" {
		t.Errorf("probe message without a probe: %+v, want an error", m)
	}
	h.probe(4, guestapi.Probe{Port: 0})
	if m := h.result(); m.ID != 4 || !strings.Contains(m.Error, "port 0") {
		t.Errorf("probe of port 0: %+v, want an error naming the port", m)
	}

	// A slot is freed just after its result is written.
	waitIdle(t, c)
	// maxProbes slow probes fill every slot; one more is refused at once,
	// and a signal still gets through while they run.
	for id := 10; id < 10+maxProbes; id++ {
		h.probe(id, guestapi.Probe{Port: port(slow), HTTPPath: "/", TimeoutMS: 30000})
	}
	h.probe(99, guestapi.Probe{Port: port(tcp)})
	if m := h.result(); m.ID != 99 || !strings.Contains(m.Error, "in flight") {
		t.Errorf("probe over the cap: %+v, want an in-flight error", m)
	}
	h.send(guestapi.Message{Type: guestapi.TypeSignal, Signal: 15})
	select {
	case m := <-c.msgs:
		if m.Type != guestapi.TypeSignal || m.Signal != 15 {
			t.Errorf("supervisor got %+v, want signal 15", m)
		}
	case <-time.After(2 * time.Second):
		t.Error("a signal waited behind slow probes")
	}
	close(release)
	seen := map[int]bool{}
	for range maxProbes {
		m := h.result()
		if m.Error != "" {
			t.Errorf("slow probe %d: %q, want healthy", m.ID, m.Error)
		}
		seen[m.ID] = true
	}
	for id := 10; id < 10+maxProbes; id++ {
		if !seen[id] {
			t.Errorf("no result for probe %d", id)
		}
	}
	// The slots are free again.
	waitIdle(t, c)
	h.probe(100, guestapi.Probe{Port: port(tcp)})
	if m := h.result(); m.ID != 100 || m.Error != "" {
		t.Errorf("probe after the slow ones finished: %+v, want healthy", m)
	}

	// Once the app has ended nobody reads msgs; the reader must still
	// answer probes, even behind more messages than msgs can buffer.
	c.appExited()
	for range cap(c.msgs) + 4 {
		h.send(guestapi.Message{Type: guestapi.TypeSignal, Signal: 15})
	}
	h.probe(200, guestapi.Probe{Port: port(tcp)})
	if m := h.result(); m.ID != 200 || m.Error != errAppNotRunning.Error() {
		t.Errorf("probe after the app exited: %+v, want %q", m, errAppNotRunning)
	}
}

// TestControlSendConcurrent: results of concurrent probes and the init's
// own messages share the port; every line must stay whole and the race
// detector must find nothing. (Go's os.File happens to hold a lock across
// one Write, so this passes without control.mu too; the mutex is what the
// json.Encoder's contract asks for, and this guards against a writer that
// buffers.)
func TestControlSendConcurrent(t *testing.T) {
	h, c := newFakeHost(t)
	const n = 20
	done := make(chan struct{})
	for i := range n {
		go func() {
			c.send(guestapi.Message{Type: guestapi.TypeProbeResult, ID: i, Error: strings.Repeat("x", 100000)})
			done <- struct{}{}
		}()
	}
	got := 0
	for got < n {
		select {
		case m := <-h.results:
			if len(m.Error) != 100000 {
				t.Fatalf("message %d cut to %d bytes", m.ID, len(m.Error))
			}
			got++
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d messages arrived", got, n)
		}
	}
	for range n {
		<-done
	}
}

// TestReportIsAMessage: every field of report is the guestapi.Message
// field of that name with the same type and tag, so the host decodes a
// report as the Message the init meant; and a Message with only those
// fields set encodes as its report does.
func TestReportIsAMessage(t *testing.T) {
	rt, mt := reflect.TypeFor[report](), reflect.TypeFor[guestapi.Message]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		mf, ok := mt.FieldByName(f.Name)
		if !ok || mf.Type != f.Type || mf.Tag != f.Tag {
			t.Errorf("report.%s (%v %q) is not guestapi.Message's field of that name", f.Name, f.Type, f.Tag)
		}
	}
	for _, m := range []guestapi.Message{
		{Type: guestapi.TypeReady},
		{Type: guestapi.TypeStarted, PID: 42},
		{Type: guestapi.TypeExit, Code: 3},
		{Type: guestapi.TypeProbeResult, ID: 7, Error: "refused"},
	} {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(toReport(m))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("report of %+v = %s, want %s", m, got, want)
		}
	}
}
