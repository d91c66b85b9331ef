package guestapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// PortMux is the one virtio serial port of inits of image.InitAPIMux: it
// carries the four channels (MuxControl, MuxStdout, MuxStderr, MuxIO),
// each what its own port carried before, as frames.
//
// Why one port: Linux's virtio console driver fills every port's receive
// queue at probe, one page per slot, and QEMU's virtio-mmio offers 1024
// slots: each port, and the multiport control queue, pinned 4 MiB of
// guest memory, 20 MiB of a guest with four ports. One port costs 8.
const PortMux = "nos.mux"

// Channels on PortMux, in the order of the ports they replace.
const (
	MuxControl = 0
	MuxStdout  = 1
	MuxStderr  = 2
	MuxIO      = 3
	// MuxChannels is how many there are.
	MuxChannels = 4
)

// Mux frame kinds.
const (
	muxData  byte = 0 // data for the channel
	muxClose byte = 1 // the sender will write no more on the channel
)

// muxHeader is kind (1 byte), channel (1 byte), data length (uint32).
const muxHeader = 6

// maxMuxData bounds one frame's data; a longer frame ends the mux (the
// guest is untrusted).
const maxMuxData = 32 << 10

// muxBuffer is how much a channel holds that its reader has not read;
// beyond it the mux stops reading the port until the reader catches up.
const muxBuffer = 256 << 10

// Mux splits one byte stream into MuxChannels channels.
type Mux struct {
	rw    io.ReadWriteCloser
	wmu   sync.Mutex
	chans [MuxChannels]*MuxConn
	once  sync.Once
	errMu sync.Mutex
	err   error // why the reader stopped, once it has
	// dropped counts data frames for channels the peer had closed.
	dropped atomic.Int64
}

// NewMux starts reading rw; its channels are ready for use.
func NewMux(rw io.ReadWriteCloser) *Mux {
	m := &Mux{rw: rw}
	for i := range m.chans {
		c := &MuxConn{m: m, ch: byte(i)}
		c.cond = sync.NewCond(&c.mu)
		m.chans[i] = c
	}
	go m.read()
	return m
}

// Conn is channel ch.
func (m *Mux) Conn(ch int) *MuxConn { return m.chans[ch] }

// Close closes the underlying stream: every channel reads EOF once its
// buffer is drained, and writes fail.
func (m *Mux) Close() error {
	var err error
	m.once.Do(func() { err = m.rw.Close() })
	return err
}

// Err is why the mux stopped reading (nil while it reads, io.EOF after a
// clean end).
func (m *Mux) Err() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.err
}

// Quiesce writes data on channel ch and then holds every other write
// until Unquiesce: nothing follows that frame on the port, so a VM saved
// after the peer read it holds no half-sent frame.
func (m *Mux) Quiesce(ch int, data []byte) error {
	m.wmu.Lock()
	_, err := m.writeLocked(byte(ch), muxData, data)
	if err != nil {
		m.wmu.Unlock()
	}
	return err
}

// Unquiesce lets writes go on after a successful Quiesce.
func (m *Mux) Unquiesce() { m.wmu.Unlock() }

// Dropped counts the data frames the peer sent on channels it had
// closed: a channel is not reopened, what comes after its close is
// dropped.
func (m *Mux) Dropped() int64 { return m.dropped.Load() }

func (m *Mux) read() {
	err := m.readFrames()
	m.errMu.Lock()
	m.err = err
	m.errMu.Unlock()
	for _, c := range m.chans {
		c.mu.Lock()
		c.eof = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

func (m *Mux) readFrames() error {
	var h [muxHeader]byte
	buf := make([]byte, maxMuxData)
	for {
		if _, err := io.ReadFull(m.rw, h[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("mux: a frame header cut short")
			}
			return err
		}
		kind, ch, n := h[0], h[1], binary.BigEndian.Uint32(h[2:])
		if ch >= MuxChannels || (kind != muxData && kind != muxClose) {
			return fmt.Errorf("mux: frame of kind %d for channel %d: no such kind or channel", kind, ch)
		}
		if n > maxMuxData || (kind == muxClose && n != 0) {
			return fmt.Errorf("mux: frame of %d bytes: longer than %d", n, maxMuxData)
		}
		if _, err := io.ReadFull(m.rw, buf[:n]); err != nil {
			return fmt.Errorf("mux: a frame cut short: %w", err)
		}
		c := m.chans[ch]
		c.mu.Lock()
		if kind == muxClose {
			c.eof = true
		} else if c.eof {
			m.dropped.Add(1) // a closed channel stays closed
		} else if !c.closed {
			for len(c.buf)+int(n) > muxBuffer && !c.closed {
				c.cond.Wait()
			}
			if !c.closed {
				c.buf = append(c.buf, buf[:n]...)
			}
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// write sends data on channel ch as frames of at most maxMuxData.
func (m *Mux) write(ch byte, kind byte, data []byte) (int, error) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	return m.writeLocked(ch, kind, data)
}

func (m *Mux) writeLocked(ch byte, kind byte, data []byte) (int, error) {
	sent := 0
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), maxMuxData)
		f := make([]byte, muxHeader, muxHeader+n)
		f[0], f[1] = kind, ch
		binary.BigEndian.PutUint32(f[2:], uint32(n))
		if _, err := m.rw.Write(append(f, data[:n]...)); err != nil {
			return sent, err
		}
		sent += n
		data = data[n:]
	}
	return sent, nil
}

// MuxConn is one channel of a Mux. It is a net.Conn without deadlines.
type MuxConn struct {
	m  *Mux
	ch byte

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	eof    bool // the peer closed the channel, or the stream ended
	closed bool // Close was called
}

// Read reads what the peer sent on the channel; io.EOF once it closed
// the channel (or the stream ended) and all is read.
func (c *MuxConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.buf) == 0 && !c.eof && !c.closed {
		c.cond.Wait()
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	if len(c.buf) == 0 {
		c.buf = nil // let the backing array go
	}
	c.cond.Broadcast() // the reader of the stream may wait for room
	return n, nil
}

// Write sends p on the channel.
func (c *MuxConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	return c.m.write(c.ch, muxData, p)
}

// CloseWrite tells the peer nothing more comes on the channel; it reads
// EOF after what was sent.
func (c *MuxConn) CloseWrite() error {
	_, err := c.m.write(c.ch, muxClose, nil)
	return err
}

// Close ends the channel on both sides: the peer reads EOF, and what
// arrives for it from now on is dropped.
func (c *MuxConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.buf = nil
	c.cond.Broadcast()
	c.mu.Unlock()
	return c.CloseWrite()
}

// ErrNoDeadlines is returned by a MuxConn's deadline methods.
var ErrNoDeadlines = errors.New("mux channels have no deadlines")

func (c *MuxConn) LocalAddr() net.Addr                { return muxAddr(c.ch) }
func (c *MuxConn) RemoteAddr() net.Addr               { return muxAddr(c.ch) }
func (c *MuxConn) SetDeadline(t time.Time) error      { return ErrNoDeadlines }
func (c *MuxConn) SetReadDeadline(t time.Time) error  { return ErrNoDeadlines }
func (c *MuxConn) SetWriteDeadline(t time.Time) error { return ErrNoDeadlines }

type muxAddr byte

func (a muxAddr) Network() string { return "nos-mux" }
func (a muxAddr) String() string  { return fmt.Sprintf("channel %d", byte(a)) }
