package network

import (
	"errors"
	"testing"
)

// FuzzCreateOptions feeds Create any subnet and gateway: it must fail with
// ErrBadInput or make a network whose addresses make sense.
func FuzzCreateOptions(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""},
		{"10.90.3.0/24", ""},
		{"10.90.3.0/24", "10.90.3.254"},
		{"10.1.2.3/24", "10.1.2.0"},
		{"10.0.0.0/30", "10.0.0.3"},
		{"10.0.0.0/31", ""},
		{"0.0.0.0/0", ""},
		{"192.168.0.0/16", "192.169.0.1"},
		{"fd00::/64", "fd00::1"},
		{"::ffff:10.0.0.0/104", "::ffff:10.0.0.1"},
		{"10.0.0.0/8", "10.255.255.255"},
		{"", "10.90.0.1"},
		{"10.0.0.0/024", "010.0.0.1"},
		{"1.2.3.4/24%eth0", "fe80::1%eth0"},
	} {
		f.Add(seed[0], seed[1])
	}
	s, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, subnet, gateway string) {
		n, err := s.Create(ctx, "fuzz", CreateOptions{Subnet: subnet, Gateway: gateway})
		if err != nil {
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("Create(%q, %q): %v; want ErrBadInput", subnet, gateway, err)
			}
			return
		}
		defer func() {
			if _, err := s.Remove(ctx, "fuzz"); err != nil {
				t.Fatal(err)
			}
		}()
		p, g := n.Subnet, n.Gateway
		switch {
		case !p.Addr().Is4() || p != p.Masked() || p.Bits() > maxBits:
			t.Fatalf("Create(%q, %q): subnet %s", subnet, gateway, p)
		case !g.Is4() || !p.Contains(g) || g == p.Addr() || g == broadcast(p):
			t.Fatalf("Create(%q, %q): gateway %s in %s", subnet, gateway, g, p)
		case len(n.Bridge) > 15:
			t.Fatalf("bridge name %q", n.Bridge)
		}
		if _, err := s.Allocate(ctx, "fuzz", inst(1), LeaseOptions{}); err != nil {
			t.Fatalf("Allocate on %s (gateway %s): %v", p, g, err)
		}
		if err := s.Release(ctx, "fuzz", inst(1)); err != nil {
			t.Fatal(err)
		}
	})
}
