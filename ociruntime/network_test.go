package ociruntime

import (
	"net/netip"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestChooseVeth(t *testing.T) {
	lo := netLink{Name: "lo", Index: 1, Type: "device", Addrs: pfx("127.0.0.1/8", "::1/128")}
	eth0 := netLink{Name: "eth0", Index: 2, Type: "veth", MAC: "aa:bb:cc:dd:ee:01", Addrs: pfx("fe80::1/64", "10.88.0.5/16")}
	eth1 := netLink{Name: "eth1", Index: 3, Type: "veth", MAC: "aa:bb:cc:dd:ee:02", Addrs: pfx("10.89.0.7/24")}
	v6only := netLink{Name: "eth2", Index: 4, Type: "veth", Addrs: pfx("fd00::2/64", "169.254.3.3/16")}
	dummy := netLink{Name: "d0", Index: 5, Type: "dummy", Addrs: pfx("192.168.9.9/24")}
	tap := netLink{Name: netTap, Index: 6, Type: "tuntap", Addrs: pfx("192.168.8.8/24")}
	dflt := func(i int) []netRoute { return []netRoute{{LinkIndex: i, Gw: netip.MustParseAddr("10.0.0.1")}} }
	for _, c := range []struct {
		name   string
		links  []netLink
		routes []netRoute
		want   string
	}{
		{"none: lo alone", []netLink{lo}, nil, ""},
		{"no IPv4 but link-local", []netLink{lo, v6only}, nil, ""},
		{"our own tap is never chosen", []netLink{lo, tap}, nil, ""},
		{"the one veth", []netLink{lo, eth0}, nil, "eth0"},
		{"lowest index", []netLink{lo, eth1, eth0}, nil, "eth0"},
		{"the default route's", []netLink{lo, eth0, eth1}, dflt(3), "eth1"},
		{"a veth before another kind", []netLink{lo, dummy, eth1}, nil, "eth1"},
	} {
		l, ok := chooseVeth(c.links, c.routes)
		if ok != (c.want != "") || l.Name != c.want {
			t.Errorf("%s: got %q %v, want %q", c.name, l.Name, ok, c.want)
		}
	}
}

func TestGuestNetwork(t *testing.T) {
	eth0 := netLink{Name: "eth0", Index: 2, Type: "veth", MAC: "aa:bb:cc:dd:ee:01", Addrs: pfx("fe80::1/64", "10.88.0.5/16", "10.88.0.6/16")}
	routes := []netRoute{
		{LinkIndex: 2, Dst: netip.MustParsePrefix("10.88.0.0/16")},
		{LinkIndex: 9, Gw: netip.MustParseAddr("10.1.1.1")}, // another interface's
		{LinkIndex: 2, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("10.88.0.1")},
	}
	resolv := []byte("# podman\nsearch dns.podman\nnameserver 10.88.0.1\nnameserver  1.1.1.1 \nnameserver fe80::1%eth0\nnameserver 2001:db8::53\nnameserver 10.88.0.1\nnameserver bogus\noptions ndots:0\n")
	n, err := guestNetwork(eth0, routes, resolv)
	if err != nil {
		t.Fatal(err)
	}
	if n.Interface != "eth0" || n.MAC != "aa:bb:cc:dd:ee:01" || n.Address != "10.88.0.5/16" || n.Gateway != "10.88.0.1" || n.DHCP {
		t.Errorf("got %+v", n)
	}
	if want := []string{"10.88.0.1", "1.1.1.1", "2001:db8::53"}; !reflect.DeepEqual(n.DNS, want) {
		t.Errorf("DNS %v, want %v", n.DNS, want)
	}
	n, err = guestNetwork(eth0, routes[:2], nil)
	if err != nil || n.Gateway != "" || n.DNS != nil {
		t.Errorf("no default route, no resolv.conf: %+v %v", n, err)
	}
	if _, err := guestNetwork(netLink{Name: "x", Addrs: pfx("fd00::1/64")}, nil, nil); err == nil {
		t.Error("an interface without IPv4 gave a network")
	}
}

func TestSpecNetwork(t *testing.T) {
	s := &specs.Spec{
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/run/netns/netns-1234"}}},
		Mounts: []specs.Mount{
			{Destination: "/etc/hosts", Source: "/run/c/hosts"},
			{Destination: "/etc/resolv.conf", Source: "/run/c/resolv.conf", Type: "bind"},
		},
	}
	ns, rc := specNetwork(s)
	if ns != "/run/netns/netns-1234" || rc != "/run/c/resolv.conf" {
		t.Errorf("got %q %q", ns, rc)
	}
	if ns, rc := specNetwork(&specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}}}); ns != "" || rc != "" {
		t.Errorf("a new namespace: got %q %q", ns, rc)
	}
	if ns, _ := specNetwork(&specs.Spec{}); ns != "" {
		t.Errorf("the host's network: got %q", ns)
	}
}
