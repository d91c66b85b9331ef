package proxy

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func freeAddr(t *testing.T, proto string) netip.AddrPort {
	t.Helper()
	switch proto {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return netip.MustParseAddrPort(l.Addr().String())
	default:
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return netip.MustParseAddrPort(c.LocalAddr().String())
	}
}

func TestTCPAndUDPRelay(t *testing.T) {
	// The "guest": a TCP server that answers with what it read once the
	// client half-closes, and a UDP echo.
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gl.Close()
	go func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(append([]byte("got "), b...))
			}()
		}
	}()
	gu, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer gu.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := gu.ReadFrom(buf)
			if err != nil {
				return
			}
			gu.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	tl, ul := freeAddr(t, "tcp"), freeAddr(t, "udp")
	p, err := Start([]Forward{
		{Proto: "tcp", Listen: tl, Target: netip.MustParseAddrPort(gl.Addr().String())},
		{Proto: "udp", Listen: ul, Target: netip.MustParseAddrPort(gu.LocalAddr().String())},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, err := net.Dial("tcp", tl.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("hello"))
		c.(*net.TCPConn).CloseWrite()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "got hello" {
			t.Fatalf("tcp: %q, %v", b, err)
		}
	}
	u, err := net.Dial("udp", ul.String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(5 * time.Second))
	u.Write([]byte("ping"))
	buf := make([]byte, 100)
	if n, err := u.Read(buf); err != nil || string(buf[:n]) != "echo ping" {
		t.Fatalf("udp: %q, %v", buf[:n], err)
	}
	// A port already taken is refused with nothing left listening.
	if _, err := Start([]Forward{{Proto: "tcp", Listen: freeAddr(t, "tcp"), Target: tl}, {Proto: "tcp", Listen: tl, Target: tl}}, nil); err == nil {
		t.Error("a taken port was accepted")
	}
	// An open relay ends with Close.
	c, err := net.Dial("tcp", tl.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on an open relay")
	}
	if _, err := net.Dial("tcp", tl.String()); err == nil {
		t.Error("still listening after Close")
	}
}
