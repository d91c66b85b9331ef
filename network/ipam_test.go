package network

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// netips compares net/netip values by value.
var netips = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func TestParseSubnet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" = ErrBadInput
	}{
		{"10.90.3.0/24", "10.90.3.0/24"},
		{"10.1.2.3/24", "10.1.2.0/24"}, // masked, as docker does
		{"10.0.0.0/30", "10.0.0.0/30"},
		{"172.16.0.0/12", "172.16.0.0/12"},
		{"10.0.0.0/31", ""},
		{"10.0.0.0/32", ""},
		{"10.0.0.0", ""},
		{"fd00::/64", ""},
		{"::ffff:10.0.0.0/104", ""},
		{"10.0.0.0/33", ""},
		{"nonsense", ""},
		{" 10.0.0.0/24", ""},
	} {
		got, err := parseSubnet(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("parseSubnet(%q) = %v, %v; want ErrBadInput", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != netip.MustParsePrefix(tc.want) {
			t.Errorf("parseSubnet(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestParseGateway(t *testing.T) {
	subnet := netip.MustParsePrefix("10.90.3.0/24")
	for _, tc := range []struct {
		in   string
		want string // "" = ErrBadInput
	}{
		{"", "10.90.3.1"},
		{"10.90.3.254", "10.90.3.254"},
		{"10.90.3.1", "10.90.3.1"},
		{"10.90.4.1", ""},   // outside
		{"10.90.3.0", ""},   // network address
		{"10.90.3.255", ""}, // broadcast
		{"fd00::1", ""},
		{"::ffff:10.90.3.1", ""},
		{"10.90.3.1/24", ""},
		{"gateway", ""},
	} {
		got, err := parseGateway(tc.in, subnet)
		if tc.want == "" {
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("parseGateway(%q) = %v, %v; want ErrBadInput", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != netip.MustParseAddr(tc.want) {
			t.Errorf("parseGateway(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{
		"10.90.3.0/24":  "10.90.3.255",
		"10.90.3.7/24":  "10.90.3.255",
		"10.0.0.4/30":   "10.0.0.7",
		"172.16.0.0/12": "172.31.255.255",
		"0.0.0.0/0":     "255.255.255.255",
	} {
		if got := broadcast(netip.MustParsePrefix(in)); got != netip.MustParseAddr(want) {
			t.Errorf("broadcast(%s) = %s; want %s", in, got, want)
		}
	}
}

func TestMACFor(t *testing.T) {
	if got, want := macFor(netip.MustParseAddr("10.90.3.254")), "52:54:0a:5a:03:fe"; got != want {
		t.Errorf("macFor = %s; want %s", got, want)
	}
}

func TestRoutes(t *testing.T) {
	in := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),      // default: ignored
		netip.MustParsePrefix("::/0"),           // default: ignored
		netip.MustParsePrefix("fd00::/64"),      // IPv6: cannot overlap
		netip.MustParsePrefix("192.168.1.7/24"), // masked
		netip.MustParsePrefix("::ffff:172.17.0.0/112"),
		{}, // invalid: ignored
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("192.168.1.0/24"),
		netip.MustParsePrefix("172.17.0.0/16"),
	}
	if diff := cmp.Diff(want, routes(in), netips); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

func TestPickAddrSkipsGatewayAndLeases(t *testing.T) {
	n := &Network{
		Name:    "t",
		Subnet:  netip.MustParsePrefix("10.0.0.0/29"),
		Gateway: netip.MustParseAddr("10.0.0.3"),
		Leases: []Lease{
			{Addr: netip.MustParseAddr("10.0.0.1")},
			{Addr: netip.MustParseAddr("10.0.0.2")},
			{Addr: netip.MustParseAddr("10.0.0.5")},
		},
	}
	for _, want := range []string{"10.0.0.4", "10.0.0.6"} {
		a, err := n.pickAddr("")
		if err != nil || a != netip.MustParseAddr(want) {
			t.Fatalf("pickAddr = %v, %v; want %s", a, err, want)
		}
		n.Leases = append(n.Leases, Lease{Addr: a})
		sortLeases(n.Leases)
	}
	if a, err := n.pickAddr(""); !errors.Is(err, ErrBadInput) {
		t.Fatalf("pickAddr on a full network = %v, %v; want ErrBadInput", a, err)
	}
}
