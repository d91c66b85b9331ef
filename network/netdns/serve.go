package netdns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// DefaultTTL is the TTL, in seconds, of member answers when [Config.TTL] is
// zero. It is short because a name follows an instance that may stop, or
// come back with another address, at any time; Kubernetes' cluster DNS uses
// the same value for the same reason.
const DefaultTTL uint32 = 5

// DefaultTimeout bounds one exchange with one upstream resolver when
// [Config.Timeout] is zero.
const DefaultTimeout = 2 * time.Second

// Lookup returns the addresses a name has on the network right now. name is
// lower-cased, without the trailing dot and without a configured domain, and
// never empty. ok=false means the name is not a member (then the query is
// answered with NXDOMAIN or forwarded). IPv4 addresses are answered as A
// records; IPv6 ones, should a member have any, as AAAA records.
type Lookup func(name string) (addrs []netip.Addr, ok bool)

// Config says where a server listens, who its members are and where it
// forwards everything else.
type Config struct {
	// Listen is the address served over both UDP and TCP, e.g. 10.90.0.1:53.
	Listen netip.AddrPort

	// Lookup finds members. Nil means the network has none.
	Lookup Lookup
	// LookupFrom, when set, is asked instead of Lookup, with the address
	// the query came from: a member on several networks queries one
	// resolver and must find the members of all of them.
	LookupFrom func(client netip.Addr, name string) (addrs []netip.Addr, ok bool)

	// Reverse returns the member names that addr belongs to, for PTR
	// queries under in-addr.arpa. Nil, or no names, forwards the query.
	Reverse func(addr netip.Addr) []string

	// Upstreams are the host's resolvers (see [Upstreams]), tried in order.
	// Empty: names that are not the network's are answered with SERVFAIL.
	// An upstream equal to Listen is ignored, so the server never asks
	// itself.
	Upstreams []netip.AddrPort

	// Domains are zones this server owns, such as "nos.internal": the
	// suffix is stripped before Lookup, so "web.nos.internal" looks up
	// "web", and names under a domain are never forwarded. The longest
	// matching domain is stripped. The first domain also completes the
	// names of reverse answers.
	Domains []string

	// TTL of member answers in seconds; 0 means DefaultTTL.
	TTL uint32

	// Timeout of one exchange with one upstream; 0 means DefaultTimeout.
	Timeout time.Duration

	// Log receives per-query errors (an upstream that failed, a reply that
	// could not be written). Nil discards them.
	Log *slog.Logger
}

// udpBufferSize is the largest UDP query the server reads.
const udpBufferSize = 4096

// Serve answers DNS on cfg.Listen, over UDP and TCP, until ctx is done. It
// returns a listen error at once, and nil once ctx has ended and the queries
// in flight have been answered (forwarded ones are cut short by ctx). Should
// serving itself fail before then, it stops both and returns that error.
func Serve(ctx context.Context, cfg Config) error {
	if !cfg.Listen.IsValid() {
		return errors.New("dns server: no listen address")
	}
	addr := cfg.Listen.String()
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("dns server: %w", err)
	}
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("dns server: %w", err)
	}

	// Cancelled before the servers stop, so that exchanges with upstreams
	// in flight end at once.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := newHandler(ctx, cfg)
	udp := start("udp", &dns.Server{PacketConn: pc, Handler: h, UDPSize: udpBufferSize})
	tcp := start("tcp", &dns.Server{Listener: l, Handler: h})

	// Wait until both have started (or failed): a server shut down before
	// it has started would go on serving.
	err = cmp.Or(udp.waitStarted(), tcp.waitStarted())
	if err == nil {
		select {
		case <-ctx.Done():
		case e := <-udp.done:
			err = udp.ended(e)
		case e := <-tcp.done:
			err = tcp.ended(e)
		}
	}
	cancel()
	errUDP, errTCP := udp.stop(), tcp.stop()
	return cmp.Or(err, errUDP, errTCP)
}

// running is one of Serve's two miekg servers.
type running struct {
	network  string
	srv      *dns.Server
	started  chan struct{} // closed once srv serves
	done     chan error    // ActivateAndServe's result
	finished bool          // done has been received from
}

func start(network string, srv *dns.Server) *running {
	r := &running{network: network, srv: srv, started: make(chan struct{}), done: make(chan error, 1)}
	srv.NotifyStartedFunc = func() { close(r.started) }
	go func() { r.done <- srv.ActivateAndServe() }()
	return r
}

// waitStarted waits until the server serves, or returns why it never will.
func (r *running) waitStarted() error {
	select {
	case <-r.started:
		return nil
	case err := <-r.done:
		return r.ended(err)
	}
}

// ended records that the server stopped by itself with err.
func (r *running) ended(err error) error {
	r.finished = true
	if err == nil {
		err = errors.New("stopped unasked")
	}
	return fmt.Errorf("dns server: serving %s: %w", r.network, err)
}

// stop shuts the server down, unless it has stopped already, and waits for
// the queries in flight.
func (r *running) stop() error {
	if r.finished {
		return nil
	}
	r.finished = true
	// The handlers in flight end soon: Serve has cancelled their context.
	if err := r.srv.ShutdownContext(context.Background()); err != nil {
		return fmt.Errorf("dns server: stopping %s: %w", r.network, err)
	}
	if err := <-r.done; err != nil {
		return fmt.Errorf("dns server: serving %s: %w", r.network, err)
	}
	return nil
}
