// Package bridge makes a private network's host side: the Linux bridge
// with the gateway address, the taps instances attach with, and the
// network's nftables table (masquerade to the outside unless internal;
// no forwarding to other nos networks). Everything is made over netlink
// and nftables' netlink API, in the caller's network namespace, and needs
// CAP_NET_ADMIN.
package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Prefix starts every interface nos makes: bridges and taps. The forward
// rules match it to keep nos networks apart.
const Prefix = "nos-"

// Spec is what the host side of one network is made from.
type Spec struct {
	Bridge   string       // interface name, Prefix + 8 characters
	Subnet   netip.Prefix // masked, IPv4
	Gateway  netip.Addr   // the bridge's address, in Subnet
	Internal bool         // no route to the outside
}

// ErrPrivileges is wrapped when the caller may not change the network.
var ErrPrivileges = errors.New("private networks need root or CAP_NET_ADMIN")

func privErr(what string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%s: %w (nos's default user-mode networking needs no privileges: run without --network)", what, ErrPrivileges)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Ensure makes the bridge exist, hold the gateway address and be up, and
// (re)writes the network's nftables table. It is idempotent: the monitor
// calls it before each attachment, so a host reboot loses nothing.
func Ensure(s Spec) error {
	if err := s.check(); err != nil {
		return err
	}
	link, err := netlink.LinkByName(s.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return privErr("finding bridge "+s.Bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: s.Bridge}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return privErr("creating bridge "+s.Bridge, err)
		}
		if link, err = netlink.LinkByName(s.Bridge); err != nil {
			return privErr("finding bridge "+s.Bridge, err)
		}
	}
	if _, ok := link.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is not a bridge (%s): remove it or the network", s.Bridge, link.Type())
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: s.Gateway.AsSlice(), Mask: net.CIDRMask(s.Subnet.Bits(), 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return privErr("addressing bridge "+s.Bridge, err)
	}
	// No IPv6 on the bridge: its link-local address would let the guests
	// reach the host's services on [::] past the IPv4 table (nos's guests
	// have no IPv6).
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+s.Bridge+"/disable_ipv6", []byte("1\n"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
		return privErr("disabling IPv6 on bridge "+s.Bridge, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return privErr("bringing up bridge "+s.Bridge, err)
	}
	if !s.Internal {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
			return privErr("enabling IPv4 forwarding", err)
		}
	}
	return writeTable(s)
}

// Remove deletes the bridge and the network's table; what is already
// gone is not an error.
func Remove(s Spec) error {
	var errs []error
	if link, err := netlink.LinkByName(s.Bridge); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, privErr("removing bridge "+s.Bridge, err))
		}
	}
	if err := deleteTable(s); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Exists reports whether the bridge is there.
func Exists(s Spec) bool {
	_, err := netlink.LinkByName(s.Bridge)
	return err == nil
}

func (s Spec) check() error {
	if !strings.HasPrefix(s.Bridge, Prefix) || len(s.Bridge) > unix.IFNAMSIZ-1 {
		return fmt.Errorf("bridge name %q: want %s and at most %d bytes", s.Bridge, Prefix, unix.IFNAMSIZ-1)
	}
	if !s.Subnet.Addr().Is4() || !s.Subnet.Contains(s.Gateway) {
		return fmt.Errorf("network %s with gateway %s: want an IPv4 subnet holding its gateway", s.Subnet, s.Gateway)
	}
	return nil
}

// Tap is one instance's attachment: a tap on the bridge that exists as
// long as a descriptor of it is open (it is not persistent), so a VM that
// dies, with its monitor or not, leaves no interface behind.
type Tap struct {
	Name string
	File *os.File // for the hypervisor: the tap's queue, with virtio-net headers
}

// NewTap makes a tap named name on the bridge and brings it up.
func NewTap(s Spec, name string) (*Tap, error) {
	if !strings.HasPrefix(name, Prefix) || len(name) > unix.IFNAMSIZ-1 {
		return nil, fmt.Errorf("tap name %q: want %s and at most %d bytes", name, Prefix, unix.IFNAMSIZ-1)
	}
	br, err := netlink.LinkByName(s.Bridge)
	if err != nil {
		return nil, privErr("finding bridge "+s.Bridge, err)
	}
	if old, err := netlink.LinkByName(name); err == nil {
		// A persistent leftover of the same name (an older nos): reclaim it.
		_ = netlink.LinkDel(old)
	}
	t := &netlink.Tuntap{
		LinkAttrs:  netlink.LinkAttrs{Name: name, MasterIndex: br.Attrs().Index},
		Mode:       netlink.TUNTAP_MODE_TAP,
		Flags:      netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_ONE_QUEUE,
		NonPersist: true,
		Queues:     1,
	}
	if err := netlink.LinkAdd(t); err != nil {
		return nil, privErr("creating tap "+name, err)
	}
	if len(t.Fds) != 1 {
		for _, f := range t.Fds {
			f.Close()
		}
		return nil, fmt.Errorf("creating tap %s: got %d queues, want 1", name, len(t.Fds))
	}
	if err := netlink.LinkSetUp(t); err != nil {
		t.Fds[0].Close()
		return nil, privErr("bringing up tap "+name, err)
	}
	return &Tap{Name: name, File: t.Fds[0]}, nil
}

// HostRoutes are the IPv4 destinations the host routes now, but for
// default routes and nos's own bridges: a new network must not overlap
// them.
func HostRoutes() ([]netip.Prefix, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("listing the host's routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && strings.HasPrefix(l.Attrs().Name, Prefix) {
			continue
		}
		ip, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		bits, _ := r.Dst.Mask.Size()
		if bits == 0 {
			continue
		}
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits).Masked())
	}
	return out, nil
}

// Links lists the interfaces nos made (bridges and taps) that exist now.
func Links() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, Prefix) {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}
