package guest

import (
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func ack(t *testing.T, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithMessageType(dhcpv4.MessageTypeAck), dhcpv4.WithYourIP(net.IPv4(10, 0, 2, 15))}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseLease(t *testing.T) {
	// QEMU's user-mode network: a /24, router, DNS, a day's lease.
	lc, err := parseLease(ack(t,
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 0, 2, 2)),
		dhcpv4.WithDNS(net.IPv4(10, 0, 2, 3)),
		dhcpv4.WithServerIP(net.IPv4(10, 0, 2, 2)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 0, 2, 2))),
		dhcpv4.WithLeaseTime(86400),
	))
	if err != nil {
		t.Fatal(err)
	}
	if got := lc.String(); got != "10.0.2.15/24, route 0.0.0.0/0 via 10.0.2.2, dns [10.0.2.3], lease 24h0m0s (renew at 12h0m0s) from 10.0.2.2" {
		t.Errorf("lease: %s", got)
	}
	if lc.Rebind != 21*time.Hour || !hasDefaultRoute(lc) {
		t.Errorf("rebind %v, default route %v", lc.Rebind, hasDefaultRoute(lc))
	}

	// GCE: a /32 and a router outside it, reached on-link; an MTU.
	lc, err = parseLease(ack(t,
		dhcpv4.WithNetmask(net.CIDRMask(32, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 128, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x05, 0xb4})),
		dhcpv4.WithOption(dhcpv4.OptDomainName("c.proj.internal")),
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.Routes) != 2 || lc.Routes[0].Gateway != nil || lc.Routes[0].Dst.String() != "10.128.0.1/32" || !lc.Routes[1].Gateway.Equal(net.IPv4(10, 128, 0, 1)) {
		t.Errorf("routes %+v", lc.Routes)
	}
	if lc.MTU != 1460 || lc.Search != "c.proj.internal" || lc.Lease != defaultLease {
		t.Errorf("mtu %d search %q lease %v", lc.MTU, lc.Search, lc.Lease)
	}

	// Azure: classless static routes, which replace the router option.
	_, wire, _ := net.ParseCIDR("168.63.129.16/32")
	_, all, _ := net.ParseCIDR("0.0.0.0/0")
	lc, err = parseLease(ack(t,
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 0, 0, 99)),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
			&dhcpv4.Route{Dest: all, Router: net.IPv4(10, 0, 0, 1)},
			&dhcpv4.Route{Dest: wire, Router: net.IPv4(10, 0, 0, 1)},
		)),
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.Routes) != 2 || !lc.Routes[0].Gateway.Equal(net.IPv4(10, 0, 0, 1)) || lc.Routes[1].Dst.String() != "168.63.129.16/32" {
		t.Errorf("classless routes %+v", lc.Routes)
	}

	if _, err := parseLease(ack(t, dhcpv4.WithYourIP(net.IPv4zero))); err == nil {
		t.Error("an ACK without an address was taken")
	}
	// No subnet mask: the class's.
	if lc, err := parseLease(ack(t)); err != nil || lc.Addr.String() != "10.0.2.15/8" {
		t.Errorf("no mask: %v, %v", lc, err)
	}
	// A tiny MTU is not applied.
	if lc, _ := parseLease(ack(t, dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{0, 68})))); lc.MTU != 0 {
		t.Errorf("MTU 68 taken: %d", lc.MTU)
	}
}

func TestLeaseTimes(t *testing.T) {
	h := time.Hour
	for _, tc := range []struct{ lease, t1, t2, wl, w1, w2 time.Duration }{
		{0, 0, 0, defaultLease, defaultLease / 2, defaultLease / 8 * 7},
		{8 * h, 0, 0, 8 * h, 4 * h, 7 * h},
		{8 * h, 2 * h, 3 * h, 8 * h, 2 * h, 3 * h},
		{8 * h, 9 * h, 0, 8 * h, 4 * h, 7 * h},     // T1 past the lease
		{8 * h, 5 * h, 4 * h, 8 * h, 5 * h, 7 * h}, // T2 before T1
	} {
		l, t1, t2 := leaseTimes(tc.lease, tc.t1, tc.t2)
		if l != tc.wl || t1 != tc.w1 || t2 != tc.w2 {
			t.Errorf("leaseTimes(%v, %v, %v) = %v, %v, %v; want %v, %v, %v", tc.lease, tc.t1, tc.t2, l, t1, t2, tc.wl, tc.w1, tc.w2)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for left, want := range map[time.Duration]time.Duration{
		4 * time.Hour: 2 * time.Hour, 90 * time.Second: time.Minute, 30 * time.Second: 30 * time.Second, -time.Second: 0,
	} {
		if got := retryAfter(left); got != want {
			t.Errorf("retryAfter(%v) = %v, want %v", left, got, want)
		}
	}
}
