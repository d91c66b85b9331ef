package guest

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzParseLease feeds parseLease any packet the DHCP library decodes: a
// lease it accepts has an IPv4 address, a mask, times in order and
// routes a netlink call can take.
func FuzzParseLease(f *testing.F) {
	ack, err := dhcpv4.New(
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(10, 0, 2, 15)),
		dhcpv4.WithServerIP(net.IPv4(10, 0, 2, 2)),
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 0, 2, 2)),
		dhcpv4.WithDNS(net.IPv4(10, 0, 2, 3)),
		dhcpv4.WithLeaseTime(3600),
		dhcpv4.WithOption(dhcpv4.OptDomainName("internal")),
		dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(1460)}),
	)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ack.ToBytes())
	gce, err := dhcpv4.New(
		dhcpv4.WithYourIP(net.IPv4(10, 128, 0, 9)),
		dhcpv4.WithNetmask(net.CIDRMask(32, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 128, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
			&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4(10, 128, 0, 1), Mask: net.CIDRMask(32, 32)}},
			&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, Router: net.IPv4(10, 128, 0, 1)},
		)),
	)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(gce.ToBytes())
	f.Add(make([]byte, 240))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		lc, err := parseLease(p)
		if err != nil {
			return
		}
		if lc.Addr.IP.To4() == nil || len(lc.Addr.Mask) != net.IPv4len {
			t.Fatalf("lease address %v", lc.Addr)
		}
		if !(0 < lc.Renew && lc.Renew < lc.Rebind && lc.Rebind < lc.Lease) {
			t.Fatalf("lease times %v %v %v", lc.Renew, lc.Rebind, lc.Lease)
		}
		if lc.MTU != 0 && lc.MTU < 576 {
			t.Fatalf("MTU %d", lc.MTU)
		}
		for _, r := range lc.Routes {
			if r.Dst.IP.To4() == nil || len(r.Dst.Mask) != net.IPv4len || (r.Gateway != nil && r.Gateway.To4() == nil) {
				t.Fatalf("route %+v", r)
			}
		}
		_ = lc.String()
	})
}
