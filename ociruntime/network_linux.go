package ociruntime

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/vmm"
)

// inNetns runs f on a thread that has joined the network namespace at
// path. The thread is never given back to the Go scheduler: it stays
// locked and ends with its goroutine, so no other goroutine runs in the
// namespace by accident. Descriptors f opens (a tap's queue) stay valid
// everywhere; the devices they name live in the namespace.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("network namespace %s: %w", path, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("joining network namespace %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// readNetns lists the namespace's interfaces and IPv4 routes. Called in
// the namespace.
func readNetns() ([]netLink, []netRoute, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("listing interfaces: %w", err)
	}
	var ls []netLink
	for _, l := range links {
		a := l.Attrs()
		nl := netLink{Name: a.Name, Index: a.Index, Type: l.Type(), MTU: a.MTU}
		if a.HardwareAddr != nil {
			nl.MAC = a.HardwareAddr.String()
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, nil, fmt.Errorf("addresses of %s: %w", a.Name, err)
		}
		for _, ad := range addrs {
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok || ad.IPNet == nil {
				continue
			}
			ones, _ := ad.IPNet.Mask.Size()
			nl.Addrs = append(nl.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		ls = append(ls, nl)
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, nil, fmt.Errorf("listing routes: %w", err)
	}
	var rs []netRoute
	for _, r := range routes {
		nr := netRoute{LinkIndex: r.LinkIndex}
		if r.Dst != nil {
			if ip, ok := netip.AddrFromSlice(r.Dst.IP); ok {
				ones, _ := r.Dst.Mask.Size()
				nr.Dst = netip.PrefixFrom(ip.Unmap(), ones)
			}
		}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			nr.Gw = gw.Unmap()
		}
		rs = append(rs, nr)
	}
	return ls, rs, nil
}

// ingressParent is the ingress qdisc's handle, ffff:.
var ingressParent = netlink.MakeHandle(0xffff, 0)

// redirect makes every frame that arrives on from leave by to: an
// ingress qdisc on from and a match-all u32 filter with a mirred egress
// redirect. Called in the namespace.
func redirect(from, to int) error {
	q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: from, Handle: ingressParent, Parent: netlink.HANDLE_INGRESS}}
	if err := netlink.QdiscReplace(q); err != nil {
		return fmt.Errorf("ingress qdisc: %w", err)
	}
	// u32 with no selector matches every frame (netlink gives it the one
	// key 0/0). Not matchall: u32 is the classifier kernels have, matchall
	// is missing from some (this CI host's among them).
	f := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: from, Parent: ingressParent, Priority: 1, Protocol: unix.ETH_P_ALL},
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
			MirredAction: netlink.TCA_EGRESS_REDIR,
			Ifindex:      to,
		}},
	}
	if err := netlink.FilterReplace(f); err != nil {
		return fmt.Errorf("mirred redirect filter: %w", err)
	}
	return nil
}

// dropIngress removes the ingress qdisc (and with it the filters) of the
// interface named name, if both are there. Called in the namespace.
func dropIngress(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil // gone with the namespace's teardown
	}
	q := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: ingressParent, Parent: netlink.HANDLE_INGRESS}}
	if err := netlink.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("removing the ingress qdisc of %s: %w", name, err)
	}
	return nil
}

// vmNetwork is a started container's network: the tap's queue, which the
// supervisor keeps open while the VM runs (closing it removes the tap and
// its filter), and what to undo on the veth.
type vmNetwork struct {
	state netState
	tap   *os.File
}

// setupNetwork joins the plan's network namespace to the VM: it returns
// the VM's NIC and the guest's configuration, or nothing when the
// namespace has no engine interface (or there is no namespace). dir is
// the state directory, where netFile records what to undo.
func setupNetwork(p Plan, dir string) (*vmNetwork, *vmm.NIC, *guestapi.Network, error) {
	if p.NetNS == "" {
		return nil, nil, nil, nil
	}
	var resolv []byte
	if p.ResolvConf != "" {
		var err error
		if resolv, err = os.ReadFile(p.ResolvConf); err != nil {
			return nil, nil, nil, fmt.Errorf("the bundle's resolv.conf: %w", err)
		}
	}
	var (
		vn   *vmNetwork
		gnet *guestapi.Network
	)
	err := inNetns(p.NetNS, func() error {
		links, routes, err := readNetns()
		if err != nil {
			return err
		}
		veth, ok := chooseVeth(links, routes)
		if !ok {
			return nil
		}
		if gnet, err = guestNetwork(veth, routes, resolv); err != nil {
			return err
		}
		if old, err := netlink.LinkByName(netTap); err == nil {
			_ = netlink.LinkDel(old) // a leftover of a supervisor that was killed
		}
		t := &netlink.Tuntap{
			LinkAttrs:  netlink.LinkAttrs{Name: netTap, MTU: veth.MTU},
			Mode:       netlink.TUNTAP_MODE_TAP,
			Flags:      netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR | netlink.TUNTAP_ONE_QUEUE,
			NonPersist: true,
			Queues:     1,
		}
		if err := netlink.LinkAdd(t); err != nil {
			return fmt.Errorf("creating the tap: %w", err)
		}
		if len(t.Fds) != 1 {
			for _, f := range t.Fds {
				f.Close()
			}
			return fmt.Errorf("creating the tap: got %d queues, want 1", len(t.Fds))
		}
		vn = &vmNetwork{state: netState{NetNS: p.NetNS, Veth: veth.Name, Tap: netTap}, tap: t.Fds[0]}
		fail := func(err error) error {
			_ = dropIngress(veth.Name)
			vn.tap.Close()
			vn = nil
			return err
		}
		tl, err := netlink.LinkByName(netTap)
		if err != nil {
			return fail(fmt.Errorf("finding the tap: %w", err))
		}
		if veth.MTU > 0 {
			_ = netlink.LinkSetMTU(tl, veth.MTU)
		}
		if err := netlink.LinkSetUp(tl); err != nil {
			return fail(fmt.Errorf("bringing up the tap: %w", err))
		}
		if err := redirect(veth.Index, tl.Attrs().Index); err != nil {
			return fail(fmt.Errorf("%s to the tap: %w", veth.Name, err))
		}
		if err := redirect(tl.Attrs().Index, veth.Index); err != nil {
			return fail(fmt.Errorf("the tap to %s: %w", veth.Name, err))
		}
		return nil
	})
	if err != nil || vn == nil {
		return nil, nil, nil, err
	}
	if err := writeJSONAtomic(filepath.Join(dir, netFile), vn.state); err != nil {
		vn.close()
		return nil, nil, nil, err
	}
	return vn, &vmm.NIC{Tap: netTap, TapFile: vn.tap, MAC: gnet.MAC}, gnet, nil
}

// close ends the VM's network: the tap goes with its last descriptor
// (QEMU's went with QEMU), the veth's redirect is removed.
func (vn *vmNetwork) close() {
	if vn == nil {
		return
	}
	if vn.tap != nil {
		vn.tap.Close()
		vn.tap = nil
	}
	_ = teardownNetwork(vn.state)
}

// teardownNetwork leaves the namespace as the engine made it: no tap, no
// ingress qdisc on the veth. A namespace that is gone is fine.
func teardownNetwork(s netState) error {
	if s.NetNS == "" || strings.HasPrefix(s.NetNS, "/proc/") {
		// No namespace, or the supervisor's own: the supervisor undid it
		// when the VM ended, and once it is gone its pid may be another
		// process's.
		return nil
	}
	if _, err := os.Stat(s.NetNS); err != nil {
		return nil
	}
	return inNetns(s.NetNS, func() error {
		if s.Tap != "" {
			if l, err := netlink.LinkByName(s.Tap); err == nil {
				_ = netlink.LinkDel(l)
			}
		}
		return dropIngress(s.Veth)
	})
}

// teardownNetworkDir undoes what netFile in dir records (delete, when
// the supervisor did not).
func teardownNetworkDir(dir string) error {
	var s netState
	if err := readJSONFile(filepath.Join(dir, netFile), &s); err != nil {
		return nil
	}
	return teardownNetwork(s)
}
