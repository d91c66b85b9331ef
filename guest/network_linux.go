package guest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// setupNetwork brings up lo and each NIC the runner configured, with its
// address; the first with a gateway gets the default route, the first
// with DNS servers writes resolv.conf. A nos runner knows the addresses,
// so nothing waits on the network; a NIC marked DHCP (an exported disk's,
// which no runner manages) takes them from a DHCP server instead.
//
// lo is the outcome of bringing lo up, started early (earlyLoopback).
func setupNetwork(ctx context.Context, cfg *guestapi.Config, lo <-chan error) error {
	if err := writeHosts(cfg.Hostname, cfg.Hosts); err != nil {
		return err
	}
	nets := cfg.Networks
	if len(nets) == 0 && cfg.Network != nil {
		nets = []guestapi.Network{*cfg.Network}
	}
	if len(nets) == 0 {
		// No NIC: the kernel may have no network stack at all; loopback is
		// a courtesy then.
		if err := <-lo; err != nil {
			logf("no network: %v", err)
		}
		return nil
	}
	if err := <-lo; err != nil {
		return err
	}
	routed, resolv := false, false
	for _, n := range nets {
		link, err := waitLink(ctx, n)
		if err != nil {
			return err
		}
		if n.DHCP {
			lc, err := dhcpLink(link, !routed, !resolv)
			if err != nil {
				// The application still runs: on a cloud, its console
				// log is where one finds out why it is unreachable.
				logf("%v; %s stays without an address", err, link.Attrs().Name)
				continue
			}
			routed = routed || hasDefaultRoute(lc)
			resolv = resolv || len(lc.DNS) > 0
			continue
		}
		addr, err := netlink.ParseAddr(n.Address)
		if err != nil {
			return fmt.Errorf("guest address %q: %w", n.Address, err)
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("setting %s address: %w", link.Attrs().Name, err)
		}
		announce(link.Attrs().Name)
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("bringing up %s: %w", link.Attrs().Name, err)
		}
		if n.Gateway != "" && !routed {
			gw := net.ParseIP(n.Gateway)
			if gw == nil {
				return fmt.Errorf("gateway %q is not an IP address", n.Gateway)
			}
			route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}
			if err := netlink.RouteReplace(route); err != nil {
				return fmt.Errorf("adding default route: %w", err)
			}
			routed = true
		}
		if len(n.DNS) > 0 && !resolv {
			if err := writeResolvConf(n.DNS); err != nil {
				return err
			}
			resolv = true
		}
	}
	return nil
}

// announce makes the kernel send a gratuitous ARP for the NIC's address
// when it comes up. A host's user-mode NAT (QEMU's slirp) that was asked
// to connect to the guest while it booted, a published port's first
// client, has sent its ARP request before the guest could answer it: the
// driver hands such early frames to the stack before the interface counts
// as up, so they are dropped. The NAT holds the connection's SYN for a
// second waiting for the guest's address and then only retries it after
// its 6 s retransmission timer, which is how long that client hung. With
// the announcement the NAT learns the address at once and sends the SYN.
// Best effort: a kernel without IPv4 has no such file.
func announce(ifname string) {
	_ = os.WriteFile("/proc/sys/net/ipv4/conf/"+ifname+"/arp_notify", []byte("1"), 0)
}

// earlyLoopback brings lo up in the background: the init does it while
// it waits for the host's config, time the guest's one CPU is idle
// otherwise (35 to 60 ms under TCG, most of it the netlink code's first
// run). Every guest gets lo, whatever its config.
func earlyLoopback() <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- upLoopback() }()
	return ch
}

func upLoopback() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}

// waitLink waits for the network driver to register the interface: the
// one with n's MAC address when given, else the one named n.Interface,
// else (a DHCP NIC named neither way) the first Ethernet device.
func waitLink(ctx context.Context, n guestapi.Network) (netlink.Link, error) {
	var mac net.HardwareAddr
	if n.MAC != "" {
		var err error
		if mac, err = net.ParseMAC(n.MAC); err != nil {
			return nil, fmt.Errorf("guest MAC address %q: %w", n.MAC, err)
		}
	}
	for {
		link, err := findLink(n.Interface, mac)
		if err == nil {
			return link, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("interface %s did not appear: %w", cmp.Or(n.MAC, n.Interface, "(the first NIC)"), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func findLink(name string, mac net.HardwareAddr) (netlink.Link, error) {
	if mac == nil && name != "" {
		return netlink.LinkByName(name)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	if mac == nil {
		if l := firstNIC(links); l != nil {
			return l, nil
		}
		return nil, errors.New("no Ethernet interface")
	}
	for _, l := range links {
		if bytes.Equal(l.Attrs().HardwareAddr, mac) {
			return l, nil
		}
	}
	return nil, errors.New("no interface has that address")
}

// firstNIC is the Ethernet device with the lowest index: the first the
// kernel registered, not a loopback or tunnel device.
func firstNIC(links []netlink.Link) netlink.Link {
	var first netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "device" || a.EncapType != "ether" || len(a.HardwareAddr) != 6 {
			continue
		}
		if first == nil || a.Index < first.Attrs().Index {
			first = l
		}
	}
	return first
}

func writeResolvConf(dns []string) error { return writeResolv(dns, "") }

// writeResolv writes resolv.conf: the name servers and, when set, the
// search domain.
func writeResolv(dns []string, search string) error {
	if len(dns) == 0 {
		return nil
	}
	var b strings.Builder
	if search != "" && !strings.ContainsAny(search, " \t\n") {
		fmt.Fprintf(&b, "search %s\n", search)
	}
	for _, s := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return writeEtc("resolv.conf", b.String())
}

// writeHosts writes /etc/hosts: localhost, the hostname, and the extra
// entries the host gave (nos run --add-host), one per line; an entry with
// a space or newline in it would add names the host did not ask for, and
// is skipped.
func writeHosts(hostname string, extra []guestapi.Host) error {
	s := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if hostname != "" {
		s += "127.0.1.1\t" + hostname + "\n"
	}
	for _, h := range extra {
		if h.Name == "" || h.IP == "" || strings.ContainsAny(h.Name+h.IP, " \t\n\r#") {
			continue
		}
		s += h.IP + "\t" + h.Name + "\n"
	}
	return writeEtc("hosts", s)
}

// writeEtc writes /etc/name. On a read-only root (an image root disk) the
// file goes to /run/nos and is bind-mounted over /etc/name, which nos
// build makes sure exists.
func writeEtc(name, content string) error {
	err := os.MkdirAll("/etc", 0o755)
	if err == nil {
		err = os.WriteFile("/etc/"+name, []byte(content), 0o644)
	}
	if !errors.Is(err, unix.EROFS) {
		if err != nil {
			return fmt.Errorf("writing /etc/%s: %w", name, err)
		}
		return nil
	}
	if err := os.MkdirAll("/run/nos", 0o755); err != nil {
		return err
	}
	src := "/run/nos/" + name
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		return err
	}
	if err := unix.Mount(src, "/etc/"+name, "", unix.MS_BIND, ""); err != nil {
		// The image's own file stays (it may be a link to nowhere):
		// name resolution may suffer, the application still runs.
		logf("cannot place /etc/%s on the read-only root (%v); the image's own is used", name, err)
	}
	return nil
}
