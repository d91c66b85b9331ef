package netdns

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandler feeds arbitrary bytes to the handler as a request: whatever
// unpacks must be answered (unless it is a reply) with one reply that
// packs, carries the request's ID, and never a panic.
func FuzzHandler(f *testing.F) {
	seed := func(name string, qtype uint16, edit func(m *dns.Msg)) {
		m := new(dns.Msg).SetQuestion(name, qtype)
		if edit != nil {
			edit(m)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	seed("web.", dns.TypeA, nil)
	seed("WEB.nos.internal.", dns.TypeAAAA, nil)
	seed("v6.", dns.TypeANY, nil)
	seed("db.", dns.TypeMX, nil)
	seed("nos.internal.", dns.TypeSOA, nil)
	seed("missing.", dns.TypeA, nil)
	seed("example.test.", dns.TypeA, nil)
	seed("2.0.90.10.in-addr.arpa.", dns.TypePTR, nil)
	seed("web.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(512, true) })
	seed("web.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) })
	seed("web.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })
	seed("web.", dns.TypeA, func(m *dns.Msg) { m.Question = nil })
	seed("web.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) })

	h := Handler(testConfig())
	f.Fuzz(func(t *testing.T, b []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		w := &recorder{tcp: tcp}
		h.ServeDNS(w, req)
		if req.Response {
			if len(w.replies) != 0 {
				t.Fatalf("answered a reply: %v", w.replies)
			}
			return
		}
		if len(w.errs) != 0 {
			t.Fatalf("reply to %v does not pack: %v", req, w.errs)
		}
		if len(w.replies) != 1 {
			t.Fatalf("%d replies to %v, want 1", len(w.replies), req)
		}
		r := w.replies[0]
		if r.Id != req.Id || !r.Response {
			t.Fatalf("reply %v to %v: not a reply with the request's ID", r, req)
		}
		limit := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			limit = max(limit, int(opt.UDPSize()))
		}
		if !tcp && len(w.packed[0]) > limit {
			t.Fatalf("reply of %d bytes over UDP, more than the client's %d", len(w.packed[0]), limit)
		}
	})
}
