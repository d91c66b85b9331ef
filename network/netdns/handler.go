package netdns

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the UDP payload size this server advertises in its replies'
// OPT records, the size DNS Flag Day 2020 settled on.
const ednsSize = 1232

// Handler returns the dns.Handler that [Serve] uses. Its forwarded queries
// are bound to no context but their timeout; Serve's handler is also bound
// to Serve's context.
func Handler(cfg Config) dns.Handler {
	return newHandler(context.Background(), cfg)
}

// handler answers one query at a time, as the package doc describes.
type handler struct {
	ctx       context.Context // ends exchanges with upstreams
	lookup    Lookup
	from      func(netip.Addr, string) ([]netip.Addr, bool)
	reverse   func(netip.Addr) []string
	upstreams []netip.AddrPort
	domains   [][]string // each domain's labels, the longest first
	ptrDomain string     // the first domain, completing reverse answers
	ttl       uint32
	timeout   time.Duration
	log       *slog.Logger
}

var _ dns.Handler = (*handler)(nil)

func newHandler(ctx context.Context, cfg Config) *handler {
	h := &handler{
		ctx:     ctx,
		lookup:  cfg.Lookup,
		from:    cfg.LookupFrom,
		reverse: cfg.Reverse,
		ttl:     cmp.Or(cfg.TTL, DefaultTTL),
		timeout: cmp.Or(cfg.Timeout, DefaultTimeout),
		log:     cfg.Log,
	}
	if h.timeout < 0 {
		h.timeout = DefaultTimeout
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	for _, up := range cfg.Upstreams {
		if up.IsValid() && up != cfg.Listen {
			h.upstreams = append(h.upstreams, up)
		}
	}
	for _, d := range cfg.Domains {
		d = strings.ToLower(strings.Trim(d, "."))
		if labels := dns.SplitDomainName(d); len(labels) > 0 {
			h.domains = append(h.domains, labels)
			h.ptrDomain = cmp.Or(h.ptrDomain, d)
		}
	}
	slices.SortStableFunc(h.domains, func(a, b []string) int { return len(b) - len(a) })
	return h
}

// ServeDNS answers req, or ignores it if it is itself a reply.
func (h *handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		client = ap.Addr().Unmap()
	}
	reply := h.replyFrom(client, req, tcp)
	if reply == nil {
		return
	}
	if err := w.WriteMsg(reply); err != nil {
		h.log.Debug("dns: writing a reply", "name", questionName(req), "err", err)
	}
}

// reply returns the reply to req, nil for none, truncated to what the
// client accepts over UDP unless tcp.
func (h *handler) reply(req *dns.Msg, tcp bool) *dns.Msg {
	return h.replyFrom(netip.Addr{}, req, tcp)
}

// replyFrom is reply for a query from client (the zero Addr if unknown).
func (h *handler) replyFrom(client netip.Addr, req *dns.Msg, tcp bool) *dns.Msg {
	if req.Response {
		return nil // answering replies could start a loop
	}
	if req.Opcode != dns.OpcodeQuery {
		return h.rcode(req, dns.RcodeNotImplemented)
	}
	// RFC 1035 allows several questions but no server answers them, and
	// RFC 6891 §6.1.1 forbids more than one OPT record.
	if len(req.Question) != 1 || countOPT(req.Extra) > 1 {
		return h.rcode(req, dns.RcodeFormatError)
	}
	opt := req.IsEdns0()
	if opt != nil && opt.Version() != 0 {
		m := h.rcode(req, dns.RcodeBadVers)
		m.SetEdns0(ednsSize, false)
		return m
	}

	m := h.answer(client, req)
	if opt != nil && m.IsEdns0() == nil {
		m.SetEdns0(ednsSize, false)
	}
	if !tcp {
		size := dns.MinMsgSize
		if opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	return m
}

// rcode returns a reply to req with rcode, its question (if any) and no records.
func (h *handler) rcode(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = len(h.upstreams) > 0
	return m
}

// answer returns the reply to req's one question: from the members, or
// from the upstreams.
func (h *handler) answer(client netip.Addr, req *dns.Msg) *dns.Msg {
	q := req.Question[0]
	labels, owned := h.local(q.Name)
	if owned && len(labels) == 0 {
		// A domain's apex exists: NXDOMAIN would deny every name under it.
		return h.authoritative(req, dns.RcodeSuccess)
	}
	if local := strings.Join(labels, "."); local != "" && (h.lookup != nil || h.from != nil) {
		lookup := h.lookup
		if h.from != nil {
			lookup = func(n string) ([]netip.Addr, bool) { return h.from(client, n) }
		}
		if addrs, ok := lookup(local); ok {
			m := h.authoritative(req, dns.RcodeSuccess)
			m.Answer = h.records(q, addrs)
			return m
		}
	}
	if owned || len(labels) == 1 {
		return h.authoritative(req, dns.RcodeNameError)
	}
	if m := h.pointer(req); m != nil {
		return m
	}
	return h.forward(req)
}

// authoritative returns a reply to req with rcode and the AA flag.
func (h *handler) authoritative(req *dns.Msg, rcode int) *dns.Msg {
	m := h.rcode(req, rcode)
	m.Authoritative = true
	return m
}

// local returns the labels of name, lower-cased, without the longest
// configured domain it is under; owned says it was under one (or is one).
func (h *handler) local(name string) (labels []string, owned bool) {
	labels = dns.SplitDomainName(strings.ToLower(name))
	for _, d := range h.domains {
		n := len(labels) - len(d)
		if n >= 0 && slices.Equal(labels[n:], d) {
			return labels[:n], true
		}
	}
	return labels, false
}

// records returns the answers to q for a member with addrs.
func (h *handler) records(q dns.Question, addrs []netip.Addr) []dns.RR {
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		return nil
	}
	wantA := q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY
	wantAAAA := q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY
	var rrs []dns.RR
	for _, a := range addrs {
		a = a.Unmap()
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: h.ttl}
		switch {
		case a.Is4() && wantA:
			hdr.Rrtype = dns.TypeA
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case a.Is6() && wantAAAA:
			hdr.Rrtype = dns.TypeAAAA
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	return rrs
}

// pointer returns the reply to a PTR query for a member's IPv4 address,
// or nil if req is not one.
func (h *handler) pointer(req *dns.Msg) *dns.Msg {
	q := req.Question[0]
	if h.reverse == nil || q.Qtype != dns.TypePTR || q.Qclass != dns.ClassINET {
		return nil
	}
	addr, ok := reverseAddr(q.Name)
	if !ok {
		return nil
	}
	names := h.reverse(addr)
	if len(names) == 0 {
		return nil
	}
	suffix := "."
	if h.ptrDomain != "" {
		suffix = "." + h.ptrDomain + "."
	}
	m := h.authoritative(req, dns.RcodeSuccess)
	for _, n := range names {
		if n == "" {
			continue
		}
		m.Answer = append(m.Answer, &dns.PTR{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: h.ttl},
			Ptr: n + suffix,
		})
	}
	return m
}

// reverseAddr parses "d.c.b.a.in-addr.arpa." into a.b.c.d.
func reverseAddr(name string) (netip.Addr, bool) {
	labels := dns.SplitDomainName(strings.ToLower(name))
	if len(labels) != 6 || labels[4] != "in-addr" || labels[5] != "arpa" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(labels[3] + "." + labels[2] + "." + labels[1] + "." + labels[0])
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// countOPT counts the OPT records in rrs.
func countOPT(rrs []dns.RR) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}

// questionName is req's first question's name, for logs.
func questionName(req *dns.Msg) string {
	if len(req.Question) == 0 {
		return ""
	}
	return req.Question[0].Name
}
