package guest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DHCP bounds: how long the init tries for a first lease before it gives
// up (and the application runs without a network), and each
// retransmission's first timeout (the client doubles it).
const (
	dhcpBudget  = 45 * time.Second
	dhcpTimeout = 2 * time.Second
	dhcpRetries = 3
)

// dhcpOptions are the options the init asks the server for.
var dhcpOptions = dhcpv4.WithRequestedOptions(
	dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer, dhcpv4.OptionDomainName,
	dhcpv4.OptionInterfaceMTU, dhcpv4.OptionClasslessStaticRoute,
	dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue,
)

// dhcpLink gets a lease for link and configures it: address, MTU,
// routes (the default one only when route), resolv.conf (when resolv).
// A goroutine then keeps the lease, renewing it at T1.
func dhcpLink(link netlink.Link, route, resolv bool) (*leaseConfig, error) {
	name := link.Attrs().Name
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bringing up %s: %w", name, err)
	}
	waitEntropy()
	ctx, cancel := context.WithTimeout(context.Background(), dhcpBudget)
	defer cancel()
	lease, err := discover(ctx, name)
	if err != nil {
		return nil, err
	}
	lc, err := parseLease(lease.ACK)
	if err != nil {
		return nil, err
	}
	if err := applyLease(link, lc, nil, route, resolv); err != nil {
		return nil, err
	}
	logf("dhcp: %s: %s", name, lc)
	go keepLease(link, lease, lc, route, resolv)
	return lc, nil
}

// waitEntropy blocks until the kernel's random pool is ready. The DHCP
// library draws each transaction ID from getrandom without blocking and
// gives up when the pool is not ready: on a machine with neither RDRAND
// nor a virtio-rng device (QEMU's default CPU under TCG, some
// hypervisors) it never is, since no host seeds a standalone guest. A
// blocking getrandom makes the kernel gather entropy from CPU timing
// jitter until the pool is initialised; on machines with a hardware
// source it returns at once.
func waitEntropy() {
	start := time.Now()
	var b [1]byte
	for {
		_, err := unix.Getrandom(b[:], 0)
		if err != unix.EINTR {
			break
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		logf("random pool ready after %v", d.Round(time.Millisecond))
	}
}

// discover runs DISCOVER/OFFER/REQUEST/ACK on the interface, over a raw
// socket (it has no address yet), until it gets a lease or ctx ends.
func discover(ctx context.Context, iface string) (*nclient4.Lease, error) {
	var err error
	for {
		var c *nclient4.Client
		c, err = nclient4.New(iface, nclient4.WithTimeout(dhcpTimeout), nclient4.WithRetry(dhcpRetries))
		if err == nil {
			var lease *nclient4.Lease
			lease, err = c.Request(ctx, dhcpOptions)
			c.Close() // a raw socket sees every IPv4 packet: not kept open
			if err == nil {
				return lease, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no DHCP lease on %s within %v: %w", iface, dhcpBudget, err)
		case <-time.After(time.Second):
		}
	}
}

// applyLease configures link as lc says; old, when set, is the lease it
// replaces, whose address is removed when it differs.
func applyLease(link netlink.Link, lc, old *leaseConfig, route, resolv bool) error {
	name := link.Attrs().Name
	if lc.MTU > 0 && lc.MTU != link.Attrs().MTU {
		if err := netlink.LinkSetMTU(link, lc.MTU); err != nil {
			logf("dhcp: %s: setting MTU %d: %v", name, lc.MTU, err)
		}
	}
	addr := &netlink.Addr{IPNet: &lc.Addr}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("setting %s address %s: %w", name, lc.Addr.String(), err)
	}
	if old != nil && !old.Addr.IP.Equal(lc.Addr.IP) {
		_ = netlink.AddrDel(link, &netlink.Addr{IPNet: &old.Addr})
	}
	for _, r := range lc.Routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 && !route {
			continue
		}
		nr := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: &r.Dst, Gw: r.Gateway}
		if r.Gateway == nil {
			nr.Scope = netlink.SCOPE_LINK
		}
		if err := netlink.RouteReplace(nr); err != nil {
			return fmt.Errorf("adding the route to %s on %s: %w", r.Dst.String(), name, err)
		}
	}
	if resolv && len(lc.DNS) > 0 {
		dns := make([]string, len(lc.DNS))
		for i, ip := range lc.DNS {
			dns[i] = ip.String()
		}
		if err := writeResolv(dns, lc.Search); err != nil {
			return err
		}
	}
	return nil
}

// keepLease renews the lease for as long as the guest runs: at T1 a
// REQUEST unicast to the server from the leased address (RENEWING),
// retried until T2; from T2 a new DISCOVER on the raw socket
// (REBINDING, and past the lease's end, INIT again). A guest whose lease
// ends keeps its address meanwhile: the application is better served by
// an address the server may still honour than by none.
func keepLease(link netlink.Link, lease *nclient4.Lease, lc *leaseConfig, route, resolv bool) {
	name := link.Attrs().Name
	for {
		got := lease.CreationTime
		sleepUntil(got.Add(lc.Renew))
		var next *nclient4.Lease
		for next == nil {
			now := time.Now()
			var err error
			if now.Before(got.Add(lc.Rebind)) {
				next, err = renew(link, lease, lc)
				if err != nil {
					logf("dhcp: %s: renewing the lease: %v", name, err)
					sleepUntil(now.Add(retryAfter(got.Add(lc.Rebind).Sub(now))))
				}
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), dhcpBudget)
			next, err = discover(ctx, name)
			cancel()
			if err != nil {
				logf("dhcp: %s: rebinding: %v", name, err)
				time.Sleep(retryAfter(got.Add(lc.Lease).Sub(now)))
			}
		}
		nlc, err := parseLease(next.ACK)
		if err != nil {
			logf("dhcp: %s: the renewed lease: %v", name, err)
			lease.CreationTime = time.Now() // try again at the next T1
			continue
		}
		if err := applyLease(link, nlc, lc, route, resolv); err != nil {
			logf("dhcp: %s: %v", name, err)
		}
		if !nlc.Addr.IP.Equal(lc.Addr.IP) {
			logf("dhcp: %s: new lease %s", name, nlc)
		}
		lease, lc = next, nlc
	}
}

// renew sends one REQUEST to the server that granted the lease, on a
// UDP socket bound to the leased address.
func renew(link netlink.Link, lease *nclient4.Lease, lc *leaseConfig) (*nclient4.Lease, error) {
	if lc.Server == nil {
		return nil, errors.New("the lease names no server")
	}
	c, err := nclient4.New(link.Attrs().Name,
		nclient4.WithUnicast(&net.UDPAddr{IP: lc.Addr.IP, Port: nclient4.ClientPort}),
		nclient4.WithServerAddr(&net.UDPAddr{IP: lc.Server, Port: nclient4.ServerPort}),
		nclient4.WithTimeout(dhcpTimeout), nclient4.WithRetry(dhcpRetries))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dhcpBudget)
	defer cancel()
	return c.Renew(ctx, lease, dhcpOptions)
}

// sleepUntil sleeps until t.
func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}
