package ociruntime

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nosproject/nos/guestapi"
)

// The container's network namespace becomes the VM's NIC. An engine
// (podman with netavark, containerd with CNI, docker) makes a network
// namespace, puts one end of a veth pair in it with the container's
// address, routes and MAC, and names the namespace in config.json. At
// start nos-runtime finds that veth in the namespace, makes a tap beside
// it, and joins the two with tc: an ingress qdisc on each and a match-all u32
// filter whose mirred action redirects every frame that arrives on one to
// the other's egress. QEMU gets the tap's descriptor (it runs outside the
// namespace), the guest's NIC gets the veth's MAC (so the ARP entries the
// engine's side learned stay true) and nos-init configures the veth's
// address, prefix, default gateway and the bundle's DNS servers
// statically. Nothing of the engine's setup is changed: the redirect takes
// every frame before the namespace's IP stack sees it, so the address the
// veth keeps is never answered for by the host kernel, and a second start
// in the same namespace (a restart) finds what the engine made.
//
// Without a network namespace path (the container would get a new, empty
// namespace) or in a namespace with no veth (podman --network none: only
// lo), the guest has no NIC: that is what the container would have. With
// no network namespace at all (the host's network) nothing is touched and
// the guest has no NIC either: nos-runtime never redirects the host's own
// interfaces.

// netTap is the tap's name in the container's namespace.
const netTap = "nos-tap0"

// netFile, in the state directory, says what start set up in the
// namespace, for delete to undo when the supervisor could not.
const netFile = "net.json"

// netState is netFile.
type netState struct {
	NetNS string `json:"netns"`
	Veth  string `json:"veth"`
	Tap   string `json:"tap"`
}

// netLink is what start reads of one interface in the namespace.
type netLink struct {
	Name  string
	Index int
	Type  string // netlink's: "veth", "device" for lo, ...
	MAC   string
	MTU   int
	Addrs []netip.Prefix // IPv4 and IPv6, as the kernel lists them
}

// netRoute is one IPv4 route in the namespace. A default route has an
// invalid Dst (or 0.0.0.0/0).
type netRoute struct {
	LinkIndex int
	Dst       netip.Prefix
	Gw        netip.Addr
}

func (r netRoute) isDefault() bool { return !r.Dst.IsValid() || r.Dst.Bits() == 0 }

// firstIPv4 is l's first global IPv4 address.
func (l netLink) firstIPv4() (netip.Prefix, bool) {
	for _, a := range l.Addrs {
		if a.Addr().Is4() && !a.Addr().IsLoopback() && !a.Addr().IsLinkLocalUnicast() {
			return a, true
		}
	}
	return netip.Prefix{}, false
}

// chooseVeth picks the engine's interface among the namespace's: one other
// than loopback with a global IPv4 address; of several, the one the
// default route leaves by, then a veth, then the lowest index. ok is false
// when there is none (a namespace with lo alone).
func chooseVeth(links []netLink, routes []netRoute) (netLink, bool) {
	var cands []netLink
	for _, l := range links {
		if l.Name == "lo" || l.Name == netTap {
			continue
		}
		if _, ok := l.firstIPv4(); ok {
			cands = append(cands, l)
		}
	}
	if len(cands) == 0 {
		return netLink{}, false
	}
	dflt := func(l netLink) bool {
		return slices.ContainsFunc(routes, func(r netRoute) bool { return r.isDefault() && r.LinkIndex == l.Index })
	}
	slices.SortStableFunc(cands, func(a, b netLink) int {
		if d, e := dflt(a), dflt(b); d != e {
			if d {
				return -1
			}
			return 1
		}
		if v, w := a.Type == "veth", b.Type == "veth"; v != w {
			if v {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return cands[0], true
}

// guestNetwork is the guest's static configuration for the chosen
// interface: its first IPv4 address and prefix, the gateway of the
// default route leaving by it, its MAC, and the name servers of resolv
// (the bundle's resolv.conf; nil gives none).
func guestNetwork(l netLink, routes []netRoute, resolv []byte) (*guestapi.Network, error) {
	a, ok := l.firstIPv4()
	if !ok {
		return nil, fmt.Errorf("interface %s has no IPv4 address", l.Name)
	}
	n := &guestapi.Network{Interface: "eth0", MAC: l.MAC, Address: a.String(), DNS: parseResolvConf(resolv)}
	for _, r := range routes {
		if r.isDefault() && r.LinkIndex == l.Index && r.Gw.Is4() {
			n.Gateway = r.Gw.String()
			break
		}
	}
	return n, nil
}

// parseResolvConf returns resolv.conf's IPv4 and IPv6 name servers, in
// order, without duplicates (a zone, "fe80::1%eth0", is dropped: the
// guest's interface is not the namespace's).
func parseResolvConf(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a.Zone() != "" {
			continue
		}
		if s := a.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// specNetwork is what config.json says of the network: the path of the
// container's network namespace ("" when it has none of its own or a new
// one) and the host file mounted as /etc/resolv.conf ("" when none is).
func specNetwork(s *specs.Spec) (netns, resolv string) {
	if s.Linux != nil {
		for _, ns := range s.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				netns = ns.Path
			}
		}
	}
	for _, m := range s.Mounts {
		if m.Destination == "/etc/resolv.conf" && m.Source != "" {
			resolv = m.Source
		}
	}
	return netns, resolv
}
