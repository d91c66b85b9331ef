package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// DefaultPool is where Create picks a subnet when given none: its /24s,
// in order, skipping any that overlaps another network or a host route.
var DefaultPool = netip.MustParsePrefix("10.90.0.0/16")

// poolBits is the size of the subnets picked from the pool.
const poolBits = 24

// maxBits is the smallest network: a gateway and one instance.
const maxBits = 30

// reserved are IPv4 ranges no bridge may carry.
var reserved = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" range`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback range"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local range"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast range"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved range"},
}

// parseSubnet reads a CIDR and masks it, as docker does (10.1.2.3/24 is
// 10.1.2.0/24).
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, inputf("subnet %q: not a CIDR: give one such as 10.90.3.0/24", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, inputf("subnet %s: only IPv4 networks are supported for now: give one such as 10.90.3.0/24", s)
	}
	if p.Bits() > maxBits {
		return netip.Prefix{}, inputf("subnet %s: a /%d has no room for a gateway and an instance: use /%d or larger, such as /24", s, p.Bits(), maxBits)
	}
	return p.Masked(), nil
}

// parseGateway reads the gateway of subnet; "" is its first host address.
func parseGateway(s string, subnet netip.Prefix) (netip.Addr, error) {
	if s == "" {
		return subnet.Addr().Next(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, inputf("gateway %q: not an IPv4 address: give one such as 10.90.3.1, or leave it out", s)
	}
	if !subnet.Contains(a) {
		return netip.Addr{}, inputf("gateway %s is outside subnet %s: choose an address inside it, or leave it out for %s", a, subnet, subnet.Addr().Next())
	}
	if why := reservedAddr(subnet, a); why != "" {
		return netip.Addr{}, inputf("gateway %s is the %s of %s: choose another, or leave it out for %s", a, why, subnet, subnet.Addr().Next())
	}
	return a, nil
}

// reservedAddr says why a (in subnet) can be no host's address, or "".
func reservedAddr(subnet netip.Prefix, a netip.Addr) string {
	switch a {
	case subnet.Addr():
		return "network address"
	case broadcast(subnet):
		return "broadcast address"
	}
	return ""
}

// routes keeps the host routes that can overlap an IPv4 subnet: valid,
// not default, IPv4 (unmapped if given as IPv4-in-IPv6, as net.IP often
// is), masked.
func routes(hostRoutes []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range hostRoutes {
		if !r.IsValid() {
			continue
		}
		a, bits := r.Addr(), r.Bits()
		if a.Is4In6() {
			a, bits = a.Unmap(), bits-96
		}
		if !a.Is4() || bits <= 0 {
			continue
		}
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out
}

// conflict says why subnet cannot be a new network beside the networks
// all and the host's routes, or "" when it can.
func conflict(subnet netip.Prefix, all []*Network, hostRoutes []netip.Prefix) string {
	for _, r := range reserved {
		if subnet.Overlaps(r.prefix) {
			return fmt.Sprintf("overlaps the %s %s", r.what, r.prefix)
		}
	}
	for _, n := range all {
		if subnet.Overlaps(n.Subnet) {
			return fmt.Sprintf("overlaps network %q (%s)", n.Name, n.Subnet)
		}
	}
	for _, r := range hostRoutes {
		if subnet.Overlaps(r) {
			return fmt.Sprintf("overlaps the host's route to %s", r)
		}
	}
	return ""
}

// pickSubnet returns the first /24 of pool (or pool itself, when smaller)
// without a conflict.
func pickSubnet(pool netip.Prefix, all []*Network, hostRoutes []netip.Prefix) (netip.Prefix, error) {
	if !pool.IsValid() || !pool.Addr().Is4() || pool.Bits() > maxBits {
		return netip.Prefix{}, fmt.Errorf("the default pool %s is not an IPv4 prefix of /%d or larger", pool, maxBits)
	}
	pool = pool.Masked()
	bits := max(poolBits, pool.Bits())
	count := uint64(1) << (bits - pool.Bits())
	step := uint64(1) << (32 - bits)
	start := uint64(u32(pool.Addr()))
	for i := range count {
		p := netip.PrefixFrom(addr4(uint32(start+i*step)), bits)
		if conflict(p, all, hostRoutes) == "" {
			return p, nil
		}
	}
	return netip.Prefix{}, inputf("no free /%d left in the pool %s (nos networks and host routes take them all): choose a subnet with --subnet", bits, pool)
}

// pickAddr returns the address a new lease on n gets: want, when it is
// free, or the lowest free host address.
func (n *Network) pickAddr(want string) (netip.Addr, error) {
	if want != "" {
		return n.checkAddr(want)
	}
	last := broadcast(n.Subnet).Prev()
	i := 0
	for a := n.Subnet.Addr().Next(); a.Compare(last) <= 0; a = a.Next() {
		for i < len(n.Leases) && n.Leases[i].Addr.Less(a) {
			i++
		}
		if a == n.Gateway || i < len(n.Leases) && n.Leases[i].Addr == a {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, inputf("network %q is full: its %d leases take every address of %s: remove an instance from it, or use a larger network", n.Name, len(n.Leases), n.Subnet)
}

// checkAddr reads an address asked for on n and checks it is free.
func (n *Network) checkAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, inputf("address %q: not an IPv4 address: give one in %s, or leave it out", s, n.Subnet)
	}
	if !n.Subnet.Contains(a) {
		return netip.Addr{}, inputf("address %s is outside network %q (%s): give one inside it, or leave it out", a, n.Name, n.Subnet)
	}
	if why := reservedAddr(n.Subnet, a); why != "" {
		return netip.Addr{}, inputf("address %s is the %s of network %q (%s): give another, or leave it out", a, why, n.Name, n.Subnet)
	}
	if a == n.Gateway {
		return netip.Addr{}, inputf("address %s is the gateway of network %q: give another, or leave it out", a, n.Name)
	}
	for _, l := range n.Leases {
		if l.Addr == a {
			return netip.Addr{}, inputf("address %s on network %q is taken by instance %s: give another, or leave it out", a, n.Name, describe(l))
		}
	}
	return a, nil
}

// describe names a lease's instance in messages.
func describe(l Lease) string {
	if l.Name != "" {
		return fmt.Sprintf("%s (%s)", l.Name, short(l.Instance))
	}
	return short(l.Instance)
}

// macFor is the MAC of the NIC with address a: QEMU's locally
// administered 52:54 prefix, then the address's bytes, so it is unique
// wherever the address is.
func macFor(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3])
}

// broadcast is the last address of the IPv4 prefix p.
func broadcast(p netip.Prefix) netip.Addr {
	return addr4(u32(p.Masked().Addr()) | ^uint32(0)>>p.Bits())
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr4(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}
