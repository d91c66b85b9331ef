package bridge

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nosproject/nos/internal/netnstest"
)

// inNetns runs f in a network namespace of its own.
func inNetns(t *testing.T, f func()) { t.Helper(); netnstest.Run(t, f) }

func TestBridgeTapAndTableLifecycle(t *testing.T) {
	inNetns(t, func() {
		s := Spec{Bridge: "nos-test0001", Subnet: netip.MustParsePrefix("10.90.7.0/24"), Gateway: netip.MustParseAddr("10.90.7.1")}
		for range 2 { // idempotent
			if err := Ensure(s); err != nil {
				t.Fatal(err)
			}
		}
		tap, err := NewTap(s, "nos-t-test01")
		if err != nil {
			t.Fatal(err)
		}
		links, _ := Links()
		if !slices.Contains(links, "nos-test0001") || !slices.Contains(links, "nos-t-test01") {
			t.Fatalf("links %v", links)
		}
		if tables, _ := Tables(); !slices.Equal(tables, []string{"nos-test0001"}) {
			t.Fatalf("tables %v", tables)
		}
		out, err := exec.Command("nft", "list", "table", "ip", "nos-test0001").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list table (nftables, from Debian's nftables package): %v: %s", err, out)
		}
		{
			for _, want := range []string{`oifname != "nos-test0001" masquerade`, `oifname "nos-*" drop`, `iifname "nos-*" drop`,
				`iifname "nos-test0001" ct state established,related accept`,
				`iifname "nos-test0001" ip daddr 10.90.7.1 udp dport 53 accept`,
				`iifname "nos-test0001" ip daddr 10.90.7.1 tcp dport 53 accept`,
				`iifname "nos-test0001" reject with tcp reset`,
				`iifname "nos-test0001" reject`} {
				if !strings.Contains(string(out), want) {
					t.Errorf("the table lacks %q:\n%s", want, out)
				}
			}
		}
		// The tap lives as long as its descriptor.
		tap.File.Close()
		if links, _ := Links(); slices.Contains(links, "nos-t-test01") {
			t.Errorf("the tap outlived its descriptor: %v", links)
		}
		if err := Remove(s); err != nil {
			t.Fatal(err)
		}
		if err := Remove(s); err != nil {
			t.Errorf("removing twice: %v", err)
		}
		if links, _ := Links(); len(links) != 0 {
			t.Errorf("left behind: %v", links)
		}
		if tables, _ := Tables(); len(tables) != 0 {
			t.Errorf("tables left behind: %v", tables)
		}
	})
}

func TestSpecChecks(t *testing.T) {
	for _, s := range []Spec{
		{Bridge: "br0", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
		{Bridge: "nos-0123456789ab", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")},
		{Bridge: "nos-a", Subnet: netip.MustParsePrefix("10.1.0.0/24"), Gateway: netip.MustParseAddr("10.2.0.1")},
		{Bridge: "nos-a", Subnet: netip.MustParsePrefix("fd00::/64"), Gateway: netip.MustParseAddr("fd00::1")},
	} {
		if err := s.check(); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}
