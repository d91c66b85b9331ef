package netdns

import (
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps what the handler writes.
type recorder struct {
	tcp     bool
	replies []*dns.Msg
	packed  [][]byte
	errs    []error // from packing replies
}

var _ dns.ResponseWriter = (*recorder)(nil)

func (w *recorder) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(10, 90, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(10, 90, 0, 1), Port: 53}
}

func (w *recorder) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(10, 90, 0, 2), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(10, 90, 0, 2), Port: 40000}
}

func (w *recorder) WriteMsg(m *dns.Msg) error {
	w.replies = append(w.replies, m)
	b, err := m.Pack()
	if err != nil {
		w.errs = append(w.errs, err)
		return err
	}
	w.packed = append(w.packed, b)
	return nil
}

func (w *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		w.errs = append(w.errs, err)
		return 0, err
	}
	w.replies = append(w.replies, m)
	w.packed = append(w.packed, b)
	return len(b), nil
}

func (w *recorder) Close() error        { return nil }
func (w *recorder) TsigStatus() error   { return nil }
func (w *recorder) TsigTimersOnly(bool) {}
func (w *recorder) Hijack()             {}

// testConfig has members and domains but no upstreams, so that the
// handler never leaves the process.
func testConfig() Config {
	m := newMembers(map[string][]string{
		"web": {"10.90.0.3", "10.90.0.2"},
		"v6":  {"10.90.0.4", "fd00::4"},
		"db":  nil,
	})
	return Config{Lookup: m.lookup, Reverse: m.reverse, Domains: []string{"nos.internal"}}
}

// TestHandlerRefuses checks the refusals of the handler itself: Serve's
// miekg server refuses most of them before the handler sees them.
func TestHandlerRefuses(t *testing.T) {
	h := Handler(testConfig())
	query := func() *dns.Msg { return new(dns.Msg).SetQuestion("web.", dns.TypeA) }
	noQuestion := query()
	noQuestion.Question = nil
	twoQuestions := query()
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	notify := query()
	notify.Opcode = dns.OpcodeNotify
	reply := query()
	reply.Response = true

	for _, tc := range []struct {
		name  string
		msg   *dns.Msg
		rcode int // -1: no reply
	}{
		{"no question", noQuestion, dns.RcodeFormatError},
		{"two questions", twoQuestions, dns.RcodeFormatError},
		{"NOTIFY", notify, dns.RcodeNotImplemented},
		{"a reply", reply, -1},
	} {
		w := &recorder{}
		h.ServeDNS(w, tc.msg)
		if tc.rcode == -1 {
			if len(w.replies) != 0 {
				t.Errorf("%s: replies %v, want none", tc.name, w.replies)
			}
			continue
		}
		if len(w.replies) != 1 || w.replies[0].Rcode != tc.rcode || w.replies[0].Id != tc.msg.Id {
			t.Errorf("%s: replies %v, want one with rcode %s", tc.name, w.replies, dns.RcodeToString[tc.rcode])
		}
	}
}

func TestHandlerIPv6Member(t *testing.T) {
	h := Handler(testConfig())
	for qtype, want := range map[uint16]int{dns.TypeA: 1, dns.TypeAAAA: 1, dns.TypeANY: 2} {
		w := &recorder{}
		h.ServeDNS(w, new(dns.Msg).SetQuestion("v6.nos.internal.", qtype))
		if len(w.replies) != 1 || len(w.replies[0].Answer) != want {
			t.Errorf("%s: replies %v, want one with %d answers", dns.Type(qtype), w.replies, want)
		}
	}
}

func TestHandlerNoLookup(t *testing.T) {
	h := Handler(Config{})
	for name, rcode := range map[string]int{"web.": dns.RcodeNameError, "example.test.": dns.RcodeServerFailure, ".": dns.RcodeServerFailure} {
		w := &recorder{}
		h.ServeDNS(w, new(dns.Msg).SetQuestion(name, dns.TypeA))
		if len(w.replies) != 1 || w.replies[0].Rcode != rcode {
			t.Errorf("%s: replies %v, want %s", name, w.replies, dns.RcodeToString[rcode])
		}
	}
}

func TestReverseAddr(t *testing.T) {
	for name, want := range map[string]string{
		"2.0.90.10.in-addr.arpa.":    "10.90.0.2",
		"2.0.90.10.IN-ADDR.ARPA.":    "10.90.0.2",
		"0.90.10.in-addr.arpa.":      "",
		"1.2.0.90.10.in-addr.arpa.":  "",
		"256.0.90.10.in-addr.arpa.":  "",
		"02.0.90.10.in-addr.arpa.":   "",
		"2.0.90.10.ip6.arpa.":        "",
		"2.0.90.10.in-addr.example.": "",
	} {
		a, ok := reverseAddr(name)
		got := ""
		if ok {
			got = a.String()
		}
		if got != want {
			t.Errorf("reverseAddr(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

// TestLookupFromSeesTheClient: LookupFrom gets the querying address, so
// a resolver can answer with the members of every network the client is on.
func TestLookupFromSeesTheClient(t *testing.T) {
	var asked netip.Addr
	h := Handler(Config{LookupFrom: func(client netip.Addr, name string) ([]netip.Addr, bool) {
		asked = client
		if name == "db" && client == netip.MustParseAddr("10.90.0.2") {
			return []netip.Addr{netip.MustParseAddr("10.90.1.5")}, true
		}
		return nil, false
	}})
	w := &recorder{}
	req := new(dns.Msg)
	req.SetQuestion("db.", dns.TypeA)
	h.ServeDNS(w, req)
	if asked != netip.MustParseAddr("10.90.0.2") || len(w.replies) != 1 || len(w.replies[0].Answer) != 1 {
		t.Fatalf("asked %v, replies %v", asked, w.replies)
	}
	if a := w.replies[0].Answer[0].(*dns.A); !a.A.Equal(net.IPv4(10, 90, 1, 5)) {
		t.Errorf("answer %v", a)
	}
}
