// Package proxy publishes a guest port on the host for instances on
// private networks, where there is no user-mode network to forward it: it
// listens on the host address and relays each TCP connection, or each UDP
// client's datagrams, to the guest's address.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Forward is one published port.
type Forward struct {
	Proto  string         // "tcp" or "udp"
	Listen netip.AddrPort // host side; an unspecified address listens on all
	Target netip.AddrPort // the guest's address and port
}

// Proxy relays the forwards until Close.
type Proxy struct {
	log     *slog.Logger
	closers []io.Closer
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

// UDPIdle is how long a UDP client's relay lives without traffic.
const UDPIdle = 2 * time.Minute

// Start listens on every forward's host address; when one cannot be
// bound, nothing is left listening and the error names it.
func Start(fs []Forward, log *slog.Logger) (*Proxy, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{log: log, ctx: ctx, cancel: cancel}
	for _, f := range fs {
		switch f.Proto {
		case "tcp":
			l, err := net.Listen("tcp", f.Listen.String())
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("publishing %s/tcp: %w", f.Listen, err)
			}
			p.closers = append(p.closers, l)
			p.wg.Add(1)
			go p.serveTCP(l, f.Target)
		case "udp":
			c, err := net.ListenPacket("udp", f.Listen.String())
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("publishing %s/udp: %w", f.Listen, err)
			}
			p.closers = append(p.closers, c)
			p.wg.Add(1)
			go p.serveUDP(c.(*net.UDPConn), f.Target)
		default:
			p.Close()
			return nil, fmt.Errorf("publishing %s: protocol %q: want tcp or udp", f.Listen, f.Proto)
		}
	}
	return p, nil
}

// Close stops listening and ends every relay.
func (p *Proxy) Close() error {
	p.cancel()
	var errs []error
	for _, c := range p.closers {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	p.wg.Wait()
	return errors.Join(errs...)
}

func (p *Proxy) serveTCP(l net.Listener, target netip.AddrPort) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relayTCP(c, target)
		}()
	}
}

func (p *Proxy) relayTCP(c net.Conn, target netip.AddrPort) {
	defer c.Close()
	d := net.Dialer{Timeout: 10 * time.Second}
	g, err := d.DialContext(p.ctx, "tcp", target.String())
	if err != nil {
		p.log.Debug("published port: guest unreachable", "target", target, "err", err)
		return
	}
	defer g.Close()
	stop := context.AfterFunc(p.ctx, func() { c.Close(); g.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite() // pass the half-close on
		}
		done <- struct{}{}
	}
	go pipe(g, c)
	go pipe(c, g)
	<-done
	<-done
}

// serveUDP keeps one socket to the guest per client address, so replies
// find their way back.
func (p *Proxy) serveUDP(l *net.UDPConn, target netip.AddrPort) {
	defer p.wg.Done()
	var mu sync.Mutex
	clients := map[netip.AddrPort]*net.UDPConn{}
	defer func() {
		mu.Lock()
		for _, c := range clients {
			c.Close()
		}
		mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := l.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		mu.Lock()
		g, ok := clients[from]
		if !ok {
			g, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(target))
			if err != nil {
				mu.Unlock()
				continue
			}
			clients[from] = g
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				reply := make([]byte, 64<<10)
				for {
					_ = g.SetReadDeadline(time.Now().Add(UDPIdle))
					n, err := g.Read(reply)
					if err != nil {
						break
					}
					_, _ = l.WriteToUDPAddrPort(reply[:n], from)
				}
				mu.Lock()
				delete(clients, from)
				mu.Unlock()
				g.Close()
			}()
		}
		mu.Unlock()
		_, _ = g.Write(buf[:n])
	}
}
