package guest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// leaseConfig is what a DHCP lease tells the init to configure.
type leaseConfig struct {
	Addr   net.IPNet
	Server net.IP // the server identifier, where renewals go
	// Routes are the routes to add, in order; a nil Gateway is on-link.
	// With classless static routes (option 121) they are the server's,
	// and the router option is ignored (RFC 3442); else a default route
	// via the first router, after an on-link route to it when it is
	// outside the subnet (as GCE's /32 leases have it).
	Routes []leaseRoute
	DNS    []net.IP
	Search string // option 15, the domain name
	MTU    int    // option 26; 0 leaves the interface's
	// Lease, Renew (T1) and Rebind (T2) are the lease's times.
	Lease, Renew, Rebind time.Duration
}

// leaseRoute is one route a lease asks for.
type leaseRoute struct {
	Dst     net.IPNet
	Gateway net.IP
}

// defaultLease is the lease assumed when the server names none.
const defaultLease = time.Hour

// parseLease reads the configuration in a DHCP ACK.
func parseLease(ack *dhcpv4.DHCPv4) (*leaseConfig, error) {
	ip := ack.YourIPAddr.To4()
	if ip == nil || ip.IsUnspecified() {
		return nil, errors.New("the DHCP server's ACK has no address")
	}
	mask := ack.SubnetMask()
	if len(mask) != net.IPv4len {
		mask = ip.DefaultMask() // no option 1: the address's class, as clients do
	}
	lc := &leaseConfig{
		Addr:   net.IPNet{IP: ip, Mask: mask},
		Server: ack.ServerIdentifier(),
		DNS:    ack.DNS(),
		Search: strings.TrimSpace(ack.DomainName()),
	}
	if mtu := ack.GetOneOption(dhcpv4.OptionInterfaceMTU); len(mtu) == 2 {
		if v := int(mtu[0])<<8 | int(mtu[1]); v >= 576 {
			lc.MTU = v
		}
	}
	lc.Lease, lc.Renew, lc.Rebind = leaseTimes(ack.IPAddressLeaseTime(0), ack.IPAddressRenewalTime(0), ack.IPAddressRebindingTime(0))
	if routes := ack.ClasslessStaticRoute(); len(routes) > 0 {
		for _, r := range routes {
			if r == nil || r.Dest == nil {
				continue
			}
			lr := leaseRoute{Dst: *r.Dest}
			if gw := r.Router.To4(); gw != nil && !gw.IsUnspecified() {
				lr.Gateway = gw
			}
			lc.Routes = append(lc.Routes, lr)
		}
		return lc, nil
	}
	if routers := ack.Router(); len(routers) > 0 && routers[0].To4() != nil {
		gw := routers[0].To4()
		if !lc.Addr.Contains(gw) {
			lc.Routes = append(lc.Routes, leaseRoute{Dst: net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}})
		}
		lc.Routes = append(lc.Routes, leaseRoute{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gateway: gw})
	}
	return lc, nil
}

// leaseTimes fills in what a server left out, as RFC 2131 4.4.5 says:
// T1 is half the lease, T2 seven eighths; times out of order are
// replaced by those. An infinite lease (0xffffffff seconds) stays one.
func leaseTimes(lease, t1, t2 time.Duration) (time.Duration, time.Duration, time.Duration) {
	if lease <= 0 {
		lease = defaultLease
	}
	if t1 <= 0 || t1 >= lease {
		t1 = lease / 2
	}
	if t2 <= t1 || t2 >= lease {
		t2 = lease / 8 * 7
	}
	return lease, t1, t2
}

// retryAfter is how long a client in RENEWING or REBINDING waits before
// trying again: half the time left until the deadline (RFC 2131 4.4.5),
// but at least a minute, and never past it.
func retryAfter(left time.Duration) time.Duration {
	d := max(left/2, time.Minute)
	return min(d, max(left, 0))
}

// hasDefaultRoute reports whether a lease gave the default route.
func hasDefaultRoute(lc *leaseConfig) bool {
	for _, r := range lc.Routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 && r.Gateway != nil {
			return true
		}
	}
	return false
}

func (lc *leaseConfig) String() string {
	var b strings.Builder
	ones, _ := lc.Addr.Mask.Size()
	fmt.Fprintf(&b, "%s/%d", lc.Addr.IP, ones)
	for _, r := range lc.Routes {
		if r.Gateway != nil {
			fmt.Fprintf(&b, ", route %s via %s", r.Dst.String(), r.Gateway)
		}
	}
	if len(lc.DNS) > 0 {
		fmt.Fprintf(&b, ", dns %v", lc.DNS)
	}
	if lc.MTU > 0 {
		fmt.Fprintf(&b, ", mtu %d", lc.MTU)
	}
	fmt.Fprintf(&b, ", lease %v (renew at %v) from %s", lc.Lease, lc.Renew, lc.Server)
	return b.String()
}
