package netdns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// ErrNoUpstreams is why a query that is not the network's fails when the
// server has no upstream resolvers.
var ErrNoUpstreams = errors.New("no upstream resolvers")

// forward returns the upstreams' reply to req with req's ID, or SERVFAIL.
func (h *handler) forward(req *dns.Msg) *dns.Msg {
	r, err := h.exchangeAll(req)
	if err != nil {
		h.log.Warn("dns: forwarding", "name", req.Question[0].Name, "type", dns.Type(req.Question[0].Qtype), "err", err)
		return h.rcode(req, dns.RcodeServerFailure)
	}
	r.Id = req.Id
	return r
}

// exchangeAll asks each upstream in turn until one replies, and returns
// every upstream's error if none does.
func (h *handler) exchangeAll(req *dns.Msg) (*dns.Msg, error) {
	if len(h.upstreams) == 0 {
		return nil, ErrNoUpstreams
	}
	// A fresh ID: the client's would let an off-path attacker who sees the
	// client's query guess ours.
	q := req.Copy()
	q.Id = dns.Id()
	var errs []error
	for _, up := range h.upstreams {
		r, err := h.exchange(q, up)
		if err == nil {
			return r, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
		if h.ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// exchange asks one upstream, over UDP and, if that reply is truncated,
// over TCP.
func (h *handler) exchange(q *dns.Msg, up netip.AddrPort) (*dns.Msg, error) {
	r, err := h.exchangeOver("udp", q, up)
	if err == nil && r.Truncated {
		r, err = h.exchangeOver("tcp", q, up)
		if err != nil {
			err = fmt.Errorf("after a truncated reply: %w", err)
		}
	}
	return r, err
}

// exchangeOver asks one upstream over network, within h.timeout.
func (h *handler) exchangeOver(network string, q *dns.Msg, up netip.AddrPort) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	c := &dns.Client{Net: network, UDPSize: dns.MaxMsgSize, Timeout: h.timeout}
	conn, err := c.DialContext(ctx, up.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// The client heeds ctx's deadline but not its cancellation.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, q, conn)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%s: %w", network, ctx.Err())
		} else {
			err = fmt.Errorf("%s: %w", network, err)
		}
		return nil, err
	}
	if !sameQuestion(q, r) {
		return nil, fmt.Errorf("%s: reply to another question", network)
	}
	return r, nil
}

// sameQuestion says whether r may be the reply to q: a reply without a
// question (as some errors are) or with q's.
func sameQuestion(q, r *dns.Msg) bool {
	if len(r.Question) == 0 {
		return r.Rcode != dns.RcodeSuccess
	}
	a, b := q.Question[0], r.Question[0]
	return len(r.Question) == 1 && a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}
