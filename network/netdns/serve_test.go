package netdns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// Every address in these tests is on the loopback: the forwarded names go
// to fake upstreams started here, never to real resolvers.

// members is a Lookup (and Reverse) backed by a map that tests change.
type members struct {
	mu     sync.Mutex
	names  map[string][]netip.Addr
	asked  []string // every name Lookup was called with, if record
	record bool
}

func newMembers(m map[string][]string) *members {
	ms := &members{names: map[string][]netip.Addr{}}
	for name, addrs := range m {
		ms.set(name, addrs...)
	}
	return ms
}

func (m *members) set(name string, addrs ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	m.names[name] = as
}

func (m *members) remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.names, name)
}

func (m *members) lookup(name string) ([]netip.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.record {
		m.asked = append(m.asked, name)
	}
	addrs, ok := m.names[name]
	return slices.Clone(addrs), ok
}

func (m *members) reverse(addr netip.Addr) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for name, addrs := range m.names {
		if slices.Contains(addrs, addr) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// serve runs Serve with cfg on a free loopback port until the test ends,
// and returns its address.
func serve(t *testing.T, cfg Config) netip.AddrPort {
	t.Helper()
	for range 20 {
		cfg.Listen = freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, cfg) }()
		if err := waitServing(cfg.Listen, done); err != nil {
			cancel()
			t.Logf("Serve on %s: %v; trying another port", cfg.Listen, err)
			continue
		}
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve returned %v after its context ended, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve still running 10s after its context ended")
			}
		})
		return cfg.Listen
	}
	t.Fatal("no free port for Serve")
	return netip.AddrPort{}
}

// freePort returns a loopback UDP port that was free a moment ago.
func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// waitServing waits until a server at addr answers over UDP, or until done
// says it never will.
func waitServing(addr netip.AddrPort, done <-chan error) error {
	c := &dns.Client{Net: "udp", Timeout: 100 * time.Millisecond}
	m := new(dns.Msg).SetQuestion("probe.", dns.TypeA)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			return cmpOr(err, errors.New("Serve returned nil"))
		default:
		}
		if _, _, err := c.Exchange(m, addr.String()); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("not answering")
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// upstream is a fake resolver on the loopback, a miekg server over UDP and
// TCP on one port.
type upstream struct {
	addr     netip.AddrPort
	udp, tcp atomic.Int32 // queries seen over each
}

// startUpstream serves handle on a free loopback port until the test ends.
func startUpstream(t *testing.T, handle func(w dns.ResponseWriter, r *dns.Msg, tcp bool)) *upstream {
	t.Helper()
	u := &upstream{}
	pc, l := listenBoth(t)
	u.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		_, tcp := w.RemoteAddr().(*net.TCPAddr)
		if tcp {
			u.tcp.Add(1)
		} else {
			u.udp.Add(1)
		}
		handle(w, r, tcp)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("fake upstream: %v", err)
		}
		t.Cleanup(func() {
			if err := srv.Shutdown(); err != nil {
				t.Errorf("fake upstream: %v", err)
			}
			<-done
		})
	}
	return u
}

// listenBoth binds UDP and TCP on one free loopback port.
func listenBoth(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		return pc, l
	}
	t.Fatal("no free port for a fake upstream")
	return nil, nil
}

// answering is a fake upstream's handler: example.test has 192.0.2.1, other
// names do not exist. truncate makes its UDP replies empty and truncated.
func answering(truncate bool) func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
	return func(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
		m := new(dns.Msg).SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		switch {
		case truncate && !tcp:
			m.Truncated = true
		case dns.CanonicalName(q.Name) == "example.test." && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
				A:   net.IPv4(192, 0, 2, 1),
			})
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	}
}

// deadUpstream returns a loopback address where nothing listens: UDP
// queries there are refused at once.
func deadUpstream(t *testing.T) netip.AddrPort {
	return freePort(t)
}

// silentUpstream returns a loopback address whose UDP socket never answers,
// so queries there time out.
func silentUpstream(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, l := listenBoth(t)
	t.Cleanup(func() { pc.Close(); l.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// query asks addr about name over network ("udp" or "tcp").
func query(t *testing.T, network string, addr netip.AddrPort, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg).SetQuestion(name, qtype)
	return exchange(t, network, addr, m)
}

func exchange(t *testing.T, network string, addr netip.AddrPort, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr.String())
	if err != nil {
		t.Fatalf("%s query %s %s: %v", network, m.Question[0].Name, dns.Type(m.Question[0].Qtype), err)
	}
	if r.Id != m.Id {
		t.Errorf("reply ID %d, want the query's %d", r.Id, m.Id)
	}
	return r
}

// addrs returns the addresses of r's A and AAAA answers, and fails the test
// on an answer of another type or name.
func addrs(t *testing.T, r *dns.Msg) []string {
	t.Helper()
	var got []string
	for _, rr := range r.Answer {
		if rr.Header().Name != r.Question[0].Name {
			t.Errorf("answer %v: name is not the question's %q", rr, r.Question[0].Name)
		}
		switch rr := rr.(type) {
		case *dns.A:
			got = append(got, rr.A.String())
		case *dns.AAAA:
			got = append(got, rr.AAAA.String())
		default:
			t.Errorf("unexpected answer %v", rr)
		}
	}
	return got
}

var networks = []string{"udp", "tcp"}

func TestMembers(t *testing.T) {
	m := newMembers(map[string][]string{
		"web":  {"10.90.0.3", "10.90.0.2", "10.90.0.4"},
		"db":   {"10.90.0.5"},
		"idle": nil,
	})
	up := startUpstream(t, answering(false))
	addr := serve(t, Config{Lookup: m.lookup, Upstreams: []netip.AddrPort{up.addr}})

	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			for _, tc := range []struct {
				name  string
				qtype uint16
				want  []string
			}{
				{"web.", dns.TypeA, []string{"10.90.0.3", "10.90.0.2", "10.90.0.4"}},
				{"WeB.", dns.TypeA, []string{"10.90.0.3", "10.90.0.2", "10.90.0.4"}},
				{"db.", dns.TypeA, []string{"10.90.0.5"}},
				{"db.", dns.TypeANY, []string{"10.90.0.5"}},
				{"db.", dns.TypeAAAA, nil},
				{"db.", dns.TypeMX, nil},
				{"db.", dns.TypeTXT, nil},
				{"idle.", dns.TypeA, nil},
			} {
				r := query(t, network, addr, tc.name, tc.qtype)
				if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
					t.Errorf("%s %s: rcode %s, authoritative %v; want NOERROR, authoritative",
						tc.name, dns.Type(tc.qtype), dns.RcodeToString[r.Rcode], r.Authoritative)
				}
				if diff := cmp.Diff(tc.want, addrs(t, r)); diff != "" {
					t.Errorf("%s %s answers (-want +got):\n%s", tc.name, dns.Type(tc.qtype), diff)
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != DefaultTTL {
						t.Errorf("%v: TTL %d, want DefaultTTL %d", rr, rr.Header().Ttl, DefaultTTL)
					}
				}
			}
		})
	}
	if n := up.udp.Load() + up.tcp.Load(); n != 0 {
		t.Errorf("member queries reached the upstream %d times", n)
	}
}

func TestTTL(t *testing.T) {
	m := newMembers(map[string][]string{"web": {"10.90.0.2"}})
	addr := serve(t, Config{Lookup: m.lookup, TTL: 42})
	r := query(t, "udp", addr, "web.", dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 42 {
		t.Errorf("answers %v, want one with TTL 42", r.Answer)
	}
}

func TestBareNonMemberNotForwarded(t *testing.T) {
	m := newMembers(map[string][]string{"web": {"10.90.0.2"}})
	up := startUpstream(t, answering(false))
	addr := serve(t, Config{Lookup: m.lookup, Upstreams: []netip.AddrPort{up.addr}})
	for _, network := range networks {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX} {
			r := query(t, network, addr, "db.", qtype)
			if r.Rcode != dns.RcodeNameError || !r.Authoritative || len(r.Answer) != 0 {
				t.Errorf("%s db. %s: %v\nwant an authoritative NXDOMAIN", network, dns.Type(qtype), r)
			}
		}
	}
	if n := up.udp.Load() + up.tcp.Load(); n != 0 {
		t.Errorf("bare names reached the upstream %d times", n)
	}
}

func TestMembershipChanges(t *testing.T) {
	m := newMembers(nil)
	addr := serve(t, Config{Lookup: m.lookup})
	want := func(step string, rcode int, addrsWant []string) {
		t.Helper()
		for _, network := range networks {
			r := query(t, network, addr, "cache.", dns.TypeA)
			if r.Rcode != rcode {
				t.Errorf("%s, %s: rcode %s, want %s", step, network, dns.RcodeToString[r.Rcode], dns.RcodeToString[rcode])
			}
			if diff := cmp.Diff(addrsWant, addrs(t, r)); diff != "" {
				t.Errorf("%s, %s: answers (-want +got):\n%s", step, network, diff)
			}
		}
	}
	want("before start", dns.RcodeNameError, nil)
	m.set("cache", "10.90.0.7")
	want("started", dns.RcodeSuccess, []string{"10.90.0.7"})
	m.set("cache", "10.90.0.8", "10.90.0.9")
	want("restarted with a new address", dns.RcodeSuccess, []string{"10.90.0.8", "10.90.0.9"})
	m.remove("cache")
	want("removed", dns.RcodeNameError, nil)
}

func TestDomains(t *testing.T) {
	m := newMembers(map[string][]string{"web": {"10.90.0.2"}, "my.app": {"10.90.0.6"}})
	m.record = true
	up := startUpstream(t, answering(false))
	addr := serve(t, Config{
		Lookup:    m.lookup,
		Upstreams: []netip.AddrPort{up.addr},
		Domains:   []string{"internal.", "NOS.Internal", ""},
	})
	for _, tc := range []struct {
		name  string
		rcode int
		want  []string
	}{
		{"web.nos.internal.", dns.RcodeSuccess, []string{"10.90.0.2"}},
		{"WEB.NOS.INTERNAL.", dns.RcodeSuccess, []string{"10.90.0.2"}},
		{"web.internal.", dns.RcodeSuccess, []string{"10.90.0.2"}},
		{"my.app.nos.internal.", dns.RcodeSuccess, []string{"10.90.0.6"}},
		{"my.app.", dns.RcodeSuccess, []string{"10.90.0.6"}}, // a member, though not a bare name
		{"db.nos.internal.", dns.RcodeNameError, nil},
		{"x.web.nos.internal.", dns.RcodeNameError, nil},
		{"example.test.nos.internal.", dns.RcodeNameError, nil}, // a search-list try, answered here
		{"nos.internal.", dns.RcodeSuccess, nil},                // the apex exists
		{"internal.", dns.RcodeSuccess, nil},
	} {
		r := query(t, "udp", addr, tc.name, dns.TypeA)
		if r.Rcode != tc.rcode || !r.Authoritative {
			t.Errorf("%s: rcode %s, authoritative %v; want %s, authoritative",
				tc.name, dns.RcodeToString[r.Rcode], r.Authoritative, dns.RcodeToString[tc.rcode])
		}
		if diff := cmp.Diff(tc.want, addrs(t, r)); diff != "" {
			t.Errorf("%s answers (-want +got):\n%s", tc.name, diff)
		}
	}
	if n := up.udp.Load() + up.tcp.Load(); n != 0 {
		t.Errorf("names under the domains reached the upstream %d times", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.Contains(m.asked, "web.nos") || slices.Contains(m.asked, "web.nos.internal") {
		t.Errorf("Lookup asked %q: the longest domain was not stripped", m.asked)
	}
}

func TestForward(t *testing.T) {
	good := startUpstream(t, answering(false))
	truncating := startUpstream(t, answering(true))
	for _, tc := range []struct {
		name      string
		upstreams []netip.AddrPort
		udp, tcp  int32 // queries the answering upstream should see
		up        *upstream
	}{
		{"one upstream", []netip.AddrPort{good.addr}, 1, 0, good},
		{"truncated over UDP, retried over TCP", []netip.AddrPort{truncating.addr}, 1, 1, truncating},
		{"dead upstream first", []netip.AddrPort{deadUpstream(t), good.addr}, 1, 0, good},
		{"silent upstream first", []netip.AddrPort{silentUpstream(t), good.addr}, 1, 0, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMembers(map[string][]string{"web": {"10.90.0.2"}})
			addr := serve(t, Config{Lookup: m.lookup, Upstreams: tc.upstreams, Timeout: 300 * time.Millisecond})
			for _, network := range networks {
				tc.up.udp.Store(0)
				tc.up.tcp.Store(0)
				q := new(dns.Msg).SetQuestion("Example.Test.", dns.TypeA)
				r := exchange(t, network, addr, q)
				if r.Rcode != dns.RcodeSuccess || r.Authoritative || !r.RecursionAvailable {
					t.Errorf("%s: rcode %s, authoritative %v, recursion available %v; want the upstream's NOERROR, RA",
						network, dns.RcodeToString[r.Rcode], r.Authoritative, r.RecursionAvailable)
				}
				if diff := cmp.Diff([]string{"192.0.2.1"}, addrs(t, r)); diff != "" {
					t.Errorf("%s answers (-want +got):\n%s", network, diff)
				}
				if u, c := tc.up.udp.Load(), tc.up.tcp.Load(); u != tc.udp || c != tc.tcp {
					t.Errorf("%s: upstream saw %d UDP and %d TCP queries, want %d and %d", network, u, c, tc.udp, tc.tcp)
				}

				r = query(t, network, addr, "missing.example.test.", dns.TypeA)
				if r.Rcode != dns.RcodeNameError || r.Authoritative {
					t.Errorf("%s missing.example.test.: rcode %s, authoritative %v; want the upstream's NXDOMAIN",
						network, dns.RcodeToString[r.Rcode], r.Authoritative)
				}
			}
		})
	}
}

func TestForwardFails(t *testing.T) {
	for _, tc := range []struct {
		name      string
		upstreams []netip.AddrPort
	}{
		{"no upstreams", nil},
		{"all dead", []netip.AddrPort{deadUpstream(t), silentUpstream(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, Config{Upstreams: tc.upstreams, Timeout: 200 * time.Millisecond})
			for _, network := range networks {
				r := query(t, network, addr, "example.test.", dns.TypeA)
				if r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
					t.Errorf("%s: %v\nwant SERVFAIL", network, r)
				}
			}
		})
	}
}

func TestForwardIgnoresItself(t *testing.T) {
	listen := netip.MustParseAddrPort("127.0.0.1:53")
	h := newHandler(context.Background(), Config{Listen: listen, Upstreams: []netip.AddrPort{listen}})
	if len(h.upstreams) != 0 {
		t.Errorf("upstreams %v, want none: the listen address is not an upstream", h.upstreams)
	}
}

func TestLargeMemberAnswer(t *testing.T) {
	var many []string
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{10, 90, 1, byte(i)}).String())
	}
	m := newMembers(map[string][]string{"many": many})
	addr := serve(t, Config{Lookup: m.lookup})

	r := query(t, "udp", addr, "many.", dns.TypeA)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Errorf("UDP without EDNS: truncated %v with %d answers, want truncated", r.Truncated, len(r.Answer))
	}
	r = query(t, "tcp", addr, "many.", dns.TypeA)
	if diff := cmp.Diff(many, addrs(t, r)); r.Truncated || diff != "" {
		t.Errorf("TCP: truncated %v, answers (-want +got):\n%s", r.Truncated, diff)
	}
	q := new(dns.Msg).SetQuestion("many.", dns.TypeA)
	q.SetEdns0(4096, false)
	r = exchange(t, "udp", addr, q)
	if diff := cmp.Diff(many, addrs(t, r)); r.Truncated || diff != "" {
		t.Errorf("UDP with EDNS 4096: truncated %v, answers (-want +got):\n%s", r.Truncated, diff)
	}
	if r.IsEdns0() == nil {
		t.Errorf("reply to an EDNS query has no OPT record")
	}
}

func TestReverse(t *testing.T) {
	m := newMembers(map[string][]string{"web": {"10.90.0.2"}})
	up := startUpstream(t, answering(false))
	for _, tc := range []struct {
		name    string
		domains []string
		want    string
	}{
		{"no domain", nil, "web."},
		{"first domain", []string{"nos.internal", "a.longer.domain"}, "web.nos.internal."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serve(t, Config{Lookup: m.lookup, Reverse: m.reverse, Upstreams: []netip.AddrPort{up.addr}, Domains: tc.domains})
			r := query(t, "udp", addr, "2.0.90.10.IN-ADDR.ARPA.", dns.TypePTR)
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
				t.Fatalf("%v\nwant one authoritative answer", r)
			}
			if ptr, ok := r.Answer[0].(*dns.PTR); !ok || ptr.Ptr != tc.want {
				t.Errorf("answer %v, want PTR %s", r.Answer[0], tc.want)
			}
		})
	}
	// Not a member's address: forwarded (the fake says NXDOMAIN).
	up.udp.Store(0)
	addr := serve(t, Config{Lookup: m.lookup, Reverse: m.reverse, Upstreams: []netip.AddrPort{up.addr}})
	r := query(t, "udp", addr, "9.0.90.10.in-addr.arpa.", dns.TypePTR)
	if r.Rcode != dns.RcodeNameError || up.udp.Load() != 1 {
		t.Errorf("rcode %s after %d upstream queries, want the upstream's NXDOMAIN", dns.RcodeToString[r.Rcode], up.udp.Load())
	}
}

func TestEDNS(t *testing.T) {
	m := newMembers(map[string][]string{"web": {"10.90.0.2"}})
	addr := serve(t, Config{Lookup: m.lookup})

	q := new(dns.Msg).SetQuestion("web.", dns.TypeA)
	q.SetEdns0(1232, true)
	r := exchange(t, "udp", addr, q)
	if opt := r.IsEdns0(); opt == nil || opt.Version() != 0 || len(r.Answer) != 1 {
		t.Errorf("%v\nwant one answer and an OPT record of version 0", r)
	}

	q = new(dns.Msg).SetQuestion("web.", dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	r = exchange(t, "udp", addr, q)
	if r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || len(r.Answer) != 0 {
		t.Errorf("%v\nwant BADVERS with an OPT record", r)
	}

	if r := query(t, "udp", addr, "web.", dns.TypeA); r.IsEdns0() != nil {
		t.Errorf("reply to a query without EDNS has an OPT record")
	}
}

// TestMalformed sends raw requests the RFCs say to refuse.
func TestMalformed(t *testing.T) {
	m := newMembers(map[string][]string{"web": {"10.90.0.2"}})
	addr := serve(t, Config{Lookup: m.lookup})

	query := func() *dns.Msg { return new(dns.Msg).SetQuestion("web.", dns.TypeA) }
	noQuestion := query()
	noQuestion.Question = nil
	twoQuestions := query()
	twoQuestions.Question = append(twoQuestions.Question, dns.Question{Name: "db.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	update := query()
	update.Opcode = dns.OpcodeUpdate
	notify := query()
	notify.Opcode = dns.OpcodeNotify
	status := query()
	status.Opcode = dns.OpcodeStatus
	twoOPT := query()
	twoOPT.SetEdns0(1232, false)
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	reply := query()
	reply.Response = true

	for _, tc := range []struct {
		name  string
		msg   *dns.Msg
		rcode int // -1: no reply
	}{
		{"no question", noQuestion, dns.RcodeFormatError},
		{"two questions", twoQuestions, dns.RcodeFormatError},
		{"UPDATE", update, dns.RcodeNotImplemented},
		{"NOTIFY", notify, dns.RcodeNotImplemented},
		{"STATUS", status, dns.RcodeNotImplemented},
		{"two OPT records", twoOPT, dns.RcodeFormatError},
		{"a reply", reply, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.msg.Pack()
			if err != nil {
				t.Fatal(err)
			}
			for _, network := range networks {
				r, err := rawExchange(network, addr, b)
				if tc.rcode == -1 {
					if err == nil {
						t.Errorf("%s: reply %v, want none", network, r)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", network, err)
				}
				if r.Id != tc.msg.Id || !r.Response || r.Rcode != tc.rcode || len(r.Answer) != 0 {
					t.Errorf("%s: %v\nwant a reply with rcode %s", network, r, dns.RcodeToString[tc.rcode])
				}
			}
		})
	}

	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"short header", []byte{1, 2, 3}},
		{"truncated question", mustPack(t, query())[:15]},
		{"compression loop", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whatever the reply (miekg answers some garbage with FORMERR,
			// and none at all), the server must still serve afterwards.
			rawExchange("udp", addr, tc.b)
			rawExchange("tcp", addr, tc.b)
			if r := exchange(t, "udp", addr, query()); len(r.Answer) != 1 {
				t.Errorf("after %s: %v", tc.name, r)
			}
		})
	}
}

func mustPack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawExchange sends b as one DNS message over network and reads one reply.
func rawExchange(network string, addr netip.AddrPort, b []byte) (*dns.Msg, error) {
	c, err := net.DialTimeout(network, addr.String(), time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	co := &dns.Conn{Conn: c}
	if _, err := co.Write(b); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

func TestServeListenError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).AddrPort()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The UDP port may be free, the TCP one is not.
	if err := Serve(ctx, Config{Listen: taken}); err == nil {
		t.Errorf("Serve on a taken TCP port returned nil")
	}
	if ctx.Err() != nil {
		t.Errorf("Serve on a taken port did not return at once")
	}
	if err := Serve(ctx, Config{}); err == nil {
		t.Errorf("Serve without a listen address returned nil")
	}
}

// TestServeStopsForwarding checks that Serve returns soon after its
// context ends, even with a query waiting on a silent upstream.
func TestServeStopsForwarding(t *testing.T) {
	cfg := Config{Upstreams: []netip.AddrPort{silentUpstream(t)}, Timeout: time.Minute}
	for range 20 {
		cfg.Listen = freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, cfg) }()
		if err := waitServing(cfg.Listen, done); err != nil {
			cancel()
			continue
		}
		// A query stuck on the upstream for a minute.
		go rawExchange("udp", cfg.Listen, mustPack(t, new(dns.Msg).SetQuestion("example.test.", dns.TypeA)))
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Serve took %v to return", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve still running 10s after its context ended")
		}
		return
	}
	t.Fatal("no free port for Serve")
}
