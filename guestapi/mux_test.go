package guestapi

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func muxPair(t *testing.T) (*Mux, *Mux) {
	t.Helper()
	a, b := net.Pipe()
	ma, mb := NewMux(a), NewMux(b)
	t.Cleanup(func() { ma.Close(); mb.Close() })
	return ma, mb
}

func TestMuxChannels(t *testing.T) {
	host, guest := muxPair(t)
	big := bytes.Repeat([]byte("0123456789"), 20000) // several frames
	var wg sync.WaitGroup
	for ch := range MuxChannels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := append([]byte(strings.Repeat("x", ch)), big...)
			if _, err := guest.Conn(ch).Write(msg); err != nil {
				t.Error(err)
			}
			guest.Conn(ch).CloseWrite()
		}()
	}
	for ch := range MuxChannels {
		got, err := io.ReadAll(host.Conn(ch))
		if err != nil || len(got) != ch+len(big) || !bytes.Equal(got[ch:], big) {
			t.Errorf("channel %d: %d bytes, %v", ch, len(got), err)
		}
	}
	wg.Wait()
	// The other direction still works after the guest closed its writes.
	go host.Conn(MuxControl).Write([]byte("config\n"))
	b := make([]byte, 7)
	if _, err := io.ReadFull(guest.Conn(MuxControl), b); err != nil || string(b) != "config\n" {
		t.Errorf("host to guest: %q, %v", b, err)
	}
}

// TestMuxSlowReader: a channel nobody reads holds back the others once
// its buffer is full (no unbounded memory), and releases them when read.
func TestMuxSlowReader(t *testing.T) {
	host, guest := muxPair(t)
	go guest.Conn(MuxStdout).Write(make([]byte, 2*muxBuffer))
	time.Sleep(50 * time.Millisecond)
	go guest.Conn(MuxControl).Write([]byte("exit\n"))
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 5)
		io.ReadFull(host.Conn(MuxControl), b)
		got <- string(b)
	}()
	select {
	case s := <-got:
		t.Fatalf("control read %q while stdout's buffer was full: the mux buffered past its bound", s)
	case <-time.After(200 * time.Millisecond):
	}
	if n, _ := io.ReadFull(host.Conn(MuxStdout), make([]byte, 2*muxBuffer)); n != 2*muxBuffer {
		t.Fatalf("stdout: %d bytes", n)
	}
	if s := <-got; s != "exit\n" {
		t.Errorf("control: %q", s)
	}
}

func TestMuxCloseAndEnd(t *testing.T) {
	host, guest := muxPair(t)
	host.Conn(MuxIO).Close()
	if _, err := host.Conn(MuxIO).Read(make([]byte, 1)); err == nil {
		t.Error("a closed channel reads")
	}
	if n, err := io.ReadAll(guest.Conn(MuxIO)); err != nil || len(n) != 0 {
		t.Errorf("the peer of a closed channel: %q, %v", n, err)
	}
	guest.Close()
	for ch := range MuxIO { // MuxIO, closed here, reads net.ErrClosed

		if b, err := io.ReadAll(host.Conn(ch)); err != nil || len(b) != 0 {
			t.Errorf("channel %d after the stream ended: %q, %v", ch, b, err)
		}
	}
}

// TestMuxRefusesMalformed: a frame the guest should never send ends the
// mux with an error; every channel reads EOF.
func TestMuxRefusesMalformed(t *testing.T) {
	frame := func(kind, ch byte, n uint32, data string) []byte {
		b := []byte{kind, ch, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[2:], n)
		return append(b, data...)
	}
	for name, in := range map[string][]byte{
		"bad channel":     frame(muxData, MuxChannels, 1, "x"),
		"bad kind":        frame(7, 0, 1, "x"),
		"too long":        frame(muxData, 0, maxMuxData+1, ""),
		"close with data": frame(muxClose, 0, 1, "x"),
		"short header":    {0, 0, 0},
		"short data":      frame(muxData, 1, 10, "abc"),
	} {
		m := NewMux(rwc{bytes.NewReader(in)})
		if b, _ := io.ReadAll(m.Conn(MuxControl)); len(b) != 0 {
			t.Errorf("%s: control read %q", name, b)
		}
		if err := m.Err(); err == nil || err == io.EOF {
			t.Errorf("%s: Err() = %v, want an error", name, err)
		}
	}
}

type rwc struct{ io.Reader }

func (rwc) Write(p []byte) (int, error) { return len(p), nil }
func (rwc) Close() error                { return nil }

// FuzzMux: whatever a guest sends, the host's demultiplexer ends without
// panicking and buffers no more than its bound per channel.
func FuzzMux(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 3, 'a', 'b', '\n', 1, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 3, 0, 0, 0x80, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		m := NewMux(rwc{bytes.NewReader(in)})
		var wg sync.WaitGroup
		for ch := range MuxChannels {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, _ := io.ReadAll(m.Conn(ch))
				if len(b) > len(in) {
					t.Errorf("channel %d read %d bytes from %d", ch, len(b), len(in))
				}
			}()
		}
		wg.Wait()
	})
}

// TestMuxQuiesce: after Quiesce's frame nothing is written until
// Unquiesce; then the held write goes out, after it.
func TestMuxQuiesce(t *testing.T) {
	a, b := net.Pipe()
	ma, mb := NewMux(a), NewMux(b)
	defer ma.Close()
	defer mb.Close()
	if err := ma.Quiesce(MuxControl, []byte("last\n")); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	go func() { ma.Conn(MuxStdout).Write([]byte("held")); close(wrote) }()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(mb.Conn(MuxControl), buf); err != nil || string(buf) != "last\n" {
		t.Fatalf("quiesce frame: %q %v", buf, err)
	}
	select {
	case <-wrote:
		t.Fatal("a write went out while quiesced")
	case <-time.After(100 * time.Millisecond):
	}
	ma.Unquiesce()
	<-wrote
	got := make([]byte, 4)
	if _, err := io.ReadFull(mb.Conn(MuxStdout), got); err != nil || string(got) != "held" {
		t.Fatalf("after Unquiesce: %q %v", got, err)
	}
}
