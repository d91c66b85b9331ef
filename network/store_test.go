package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var ctx = context.Background()

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "networks"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// inst is the instance ID number i.
func inst(i int) string { return fmt.Sprintf("%064x", i) }

func mustCreate(t *testing.T, s *Store, name, subnet string) *Network {
	t.Helper()
	n, err := s.Create(ctx, name, CreateOptions{Subnet: subnet})
	if err != nil {
		t.Fatalf("Create %s %s: %v", name, subnet, err)
	}
	return n
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "networks")
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory: mode %v; want a directory, 0700", fi.Mode())
	}
}

func TestCreate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing map[string]string // name → subnet, made first
		net      string            // the network's name; "n" when empty
		o        CreateOptions
		subnet   string // want, on success
		gateway  string
		err      error  // want, on failure
		msg      string // in the error's text
	}{
		{name: "default", subnet: "10.90.0.0/24", gateway: "10.90.0.1"},
		{name: "given subnet", o: CreateOptions{Subnet: "192.168.50.0/24"}, subnet: "192.168.50.0/24", gateway: "192.168.50.1"},
		{name: "unmasked subnet is masked", o: CreateOptions{Subnet: "10.1.2.3/24"}, subnet: "10.1.2.0/24", gateway: "10.1.2.1"},
		{name: "large subnet", o: CreateOptions{Subnet: "172.20.0.0/14"}, subnet: "172.20.0.0/14", gateway: "172.20.0.1"},
		{name: "slash 30", o: CreateOptions{Subnet: "10.1.2.4/30"}, subnet: "10.1.2.4/30", gateway: "10.1.2.5"},
		{name: "given gateway", o: CreateOptions{Subnet: "10.1.2.0/24", Gateway: "10.1.2.254"}, subnet: "10.1.2.0/24", gateway: "10.1.2.254"},
		{name: "internal", o: CreateOptions{Internal: true}, subnet: "10.90.0.0/24", gateway: "10.90.0.1"},
		{name: "name of 64 bytes", net: strings.Repeat("a", 64), subnet: "10.90.0.0/24", gateway: "10.90.0.1"},
		{name: "name with dots", net: "my_net.front-1", subnet: "10.90.0.0/24", gateway: "10.90.0.1"},

		{name: "pool skips networks", existing: map[string]string{"a": "10.90.0.0/24", "b": "10.90.1.0/24"}, subnet: "10.90.2.0/24", gateway: "10.90.2.1"},
		{name: "pool skips a partial overlap", existing: map[string]string{"a": "10.90.0.128/25"}, subnet: "10.90.1.0/24", gateway: "10.90.1.1"},
		{name: "pool fills a gap", existing: map[string]string{"a": "10.90.0.0/24", "c": "10.90.2.0/24"}, subnet: "10.90.1.0/24", gateway: "10.90.1.1"},
		{name: "pool skips host routes", o: CreateOptions{HostRoutes: prefixes("10.90.0.0/23", "10.90.2.7/32")}, subnet: "10.90.3.0/24", gateway: "10.90.3.1"},
		{name: "pool ignores default routes", o: CreateOptions{HostRoutes: prefixes("0.0.0.0/0", "::/0")}, subnet: "10.90.0.0/24", gateway: "10.90.0.1"},
		{name: "pool exhausted by a host route", o: CreateOptions{HostRoutes: prefixes("10.0.0.0/8")}, err: ErrBadInput, msg: "no free /24"},
		{name: "given subnet ignores default route", o: CreateOptions{Subnet: "10.1.0.0/24", HostRoutes: prefixes("0.0.0.0/0")}, subnet: "10.1.0.0/24", gateway: "10.1.0.1"},

		{name: "overlaps a network", existing: map[string]string{"front": "10.90.0.0/16"}, o: CreateOptions{Subnet: "10.90.0.0/24"}, err: ErrBadInput,
			msg: `subnet 10.90.0.0/24 overlaps network "front" (10.90.0.0/16): choose another with --subnet`},
		{name: "contains a network", existing: map[string]string{"front": "10.90.5.0/24"}, o: CreateOptions{Subnet: "10.90.0.0/16"}, err: ErrBadInput, msg: `overlaps network "front"`},
		{name: "same subnet as a network", existing: map[string]string{"front": "10.1.0.0/24"}, o: CreateOptions{Subnet: "10.1.0.9/24"}, err: ErrBadInput, msg: `overlaps network "front"`},
		{name: "overlaps a host route", o: CreateOptions{Subnet: "192.168.1.0/24", HostRoutes: prefixes("192.168.0.0/16")}, err: ErrBadInput,
			msg: "subnet 192.168.1.0/24 overlaps the host's route to 192.168.0.0/16: choose another with --subnet"},
		{name: "overlaps an IPv4-in-IPv6 host route", o: CreateOptions{Subnet: "172.17.3.0/24", HostRoutes: prefixes("::ffff:172.17.0.0/112")}, err: ErrBadInput, msg: "172.17.0.0/16"},
		{name: "loopback", o: CreateOptions{Subnet: "127.0.0.0/24"}, err: ErrBadInput, msg: "loopback"},
		{name: "multicast", o: CreateOptions{Subnet: "224.1.0.0/16"}, err: ErrBadInput, msg: "multicast"},
		{name: "everything", o: CreateOptions{Subnet: "0.0.0.0/0"}, err: ErrBadInput},

		{name: "IPv6", o: CreateOptions{Subnet: "fd00::/64"}, err: ErrBadInput, msg: "only IPv4"},
		{name: "slash 31", o: CreateOptions{Subnet: "10.1.2.0/31"}, err: ErrBadInput, msg: "/30 or larger"},
		{name: "not a CIDR", o: CreateOptions{Subnet: "10.1.2.0"}, err: ErrBadInput, msg: "not a CIDR"},
		{name: "gateway outside", o: CreateOptions{Subnet: "10.1.2.0/24", Gateway: "10.1.3.1"}, err: ErrBadInput, msg: "outside subnet 10.1.2.0/24"},
		{name: "gateway is the network address", o: CreateOptions{Subnet: "10.1.2.0/24", Gateway: "10.1.2.0"}, err: ErrBadInput, msg: "network address"},
		{name: "gateway is the broadcast address", o: CreateOptions{Subnet: "10.1.2.0/24", Gateway: "10.1.2.255"}, err: ErrBadInput, msg: "broadcast address"},
		{name: "gateway IPv6", o: CreateOptions{Subnet: "10.1.2.0/24", Gateway: "fd00::1"}, err: ErrBadInput},
		{name: "gateway without subnet", o: CreateOptions{Gateway: "10.90.0.1"}, err: ErrBadInput, msg: "needs a subnet"},

		{name: "name exists", existing: map[string]string{"n": "10.1.0.0/24"}, err: ErrExists},
		{name: "empty name", net: "-", err: ErrBadInput},
		{name: "name starts with a dot", net: ".n", err: ErrBadInput},
		{name: "name with a slash", net: "a/b", err: ErrBadInput},
		{name: "name of 65 bytes", net: strings.Repeat("a", 65), err: ErrBadInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			for name, subnet := range tc.existing {
				mustCreate(t, s, name, subnet)
			}
			name := tc.net
			if name == "" {
				name = "n"
			}
			n, err := s.Create(ctx, name, tc.o)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || err != nil && !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("Create = %v, %v; want %v containing %q", n, err, tc.err, tc.msg)
				}
				if err != nil && strings.Contains(err.Error(), "\n") {
					t.Errorf("error of more than one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if n.Subnet.String() != tc.subnet || n.Gateway.String() != tc.gateway {
				t.Errorf("Create: subnet %s gateway %s; want %s %s", n.Subnet, n.Gateway, tc.subnet, tc.gateway)
			}
			if n.Name != name || !isID(n.ID) || n.Bridge != "nos-"+n.ID[:8] || len(n.Bridge) > 15 || n.Internal != tc.o.Internal || n.Created.IsZero() {
				t.Errorf("Create: bad record %+v", n)
			}
			got, err := s.Get(name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(n, got, netips); diff != "" {
				t.Errorf("Get after Create (-created +read):\n%s", diff)
			}
		})
	}
}

func TestRecordIsTextJSON(t *testing.T) {
	s := newStore(t)
	n := mustCreate(t, s, "front", "10.7.0.0/24")
	if _, err := s.Allocate(ctx, "front", inst(1), LeaseOptions{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "front.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"subnet": "10.7.0.0/24"`, `"gateway": "10.7.0.1"`, `"addr": "10.7.0.2"`, `"mac": "52:54:0a:07:00:02"`, `"id": "` + n.ID + `"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record lacks %s:\n%s", want, b)
		}
	}
}

func TestPoolExhausted(t *testing.T) {
	defer func(p netip.Prefix) { DefaultPool = p }(DefaultPool)
	DefaultPool = netip.MustParsePrefix("10.90.0.0/23")
	s := newStore(t)
	for i, want := range []string{"10.90.0.0/24", "10.90.1.0/24"} {
		n, err := s.Create(ctx, fmt.Sprint("n", i), CreateOptions{})
		if err != nil || n.Subnet.String() != want {
			t.Fatalf("Create %d = %v, %v; want %s", i, n, err, want)
		}
	}
	if _, err := s.Create(ctx, "n2", CreateOptions{}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("Create with the pool used up: %v; want ErrBadInput", err)
	}
	// A given subnet still works.
	mustCreate(t, s, "n3", "10.91.0.0/24")
	// Freeing a /24 makes it the next pick.
	if _, err := s.Remove(ctx, "n0"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Create(ctx, "n4", CreateOptions{}); err != nil || n.Subnet.String() != "10.90.0.0/24" {
		t.Fatalf("Create after Remove = %v, %v; want 10.90.0.0/24", n, err)
	}
}

func TestSmallPool(t *testing.T) {
	defer func(p netip.Prefix) { DefaultPool = p }(DefaultPool)
	DefaultPool = netip.MustParsePrefix("10.90.0.0/26")
	s := newStore(t)
	if n, err := s.Create(ctx, "a", CreateOptions{}); err != nil || n.Subnet.String() != "10.90.0.0/26" {
		t.Fatalf("Create = %v, %v; want the whole pool", n, err)
	}
	if _, err := s.Create(ctx, "b", CreateOptions{}); !errors.Is(err, ErrBadInput) {
		t.Fatalf("second Create: %v; want ErrBadInput", err)
	}
}

// step is one Allocate of a sequence on one network.
type step struct {
	inst int
	o    LeaseOptions
	addr string // want, on success
	err  error  // want, on failure
	msg  string
}

func runSteps(t *testing.T, s *Store, network string, steps []step) {
	t.Helper()
	for i, st := range steps {
		l, err := s.Allocate(ctx, network, inst(st.inst), st.o)
		if st.err != nil {
			if !errors.Is(err, st.err) || err != nil && !strings.Contains(err.Error(), st.msg) {
				t.Fatalf("step %d: Allocate(%d, %+v) = %+v, %v; want %v containing %q", i, st.inst, st.o, l, err, st.err, st.msg)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: Allocate(%d, %+v): %v", i, st.inst, st.o, err)
		}
		a := netip.MustParseAddr(st.addr)
		want := Lease{Addr: a, MAC: macFor(a), Instance: inst(st.inst), Name: st.o.Name, Aliases: st.o.Aliases}
		if diff := cmp.Diff(want, l, netips); diff != "" {
			t.Fatalf("step %d: Allocate (-want +got):\n%s", i, diff)
		}
	}
}

func TestAllocate(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, "n", "10.0.0.0/29") // hosts .1-.6, gateway .1
	runSteps(t, s, "n", []step{
		{inst: 1, o: LeaseOptions{Name: "web"}, addr: "10.0.0.2"},
		{inst: 2, o: LeaseOptions{Addr: "10.0.0.5", Name: "db", Aliases: []string{"data"}}, addr: "10.0.0.5"},
		{inst: 3, addr: "10.0.0.3"},
		{inst: 4, o: LeaseOptions{Addr: "10.0.0.5"}, err: ErrBadInput, msg: "taken by instance db"},
		{inst: 4, o: LeaseOptions{Addr: "10.0.1.4"}, err: ErrBadInput, msg: "outside"},
		{inst: 4, o: LeaseOptions{Addr: "10.0.0.0"}, err: ErrBadInput, msg: "network address"},
		{inst: 4, o: LeaseOptions{Addr: "10.0.0.7"}, err: ErrBadInput, msg: "broadcast address"},
		{inst: 4, o: LeaseOptions{Addr: "10.0.0.1"}, err: ErrBadInput, msg: "gateway"},
		{inst: 4, o: LeaseOptions{Addr: "fd00::4"}, err: ErrBadInput, msg: "not an IPv4 address"},
		{inst: 4, o: LeaseOptions{Addr: "ten"}, err: ErrBadInput},
		{inst: 1, err: ErrBadInput, msg: "already attached"},
		{inst: 4, o: LeaseOptions{Name: "WEB"}, err: ErrBadInput, msg: `name "WEB" is taken`},
		{inst: 4, o: LeaseOptions{Name: "web."}, err: ErrBadInput, msg: "is taken"},
		{inst: 4, o: LeaseOptions{Name: "web2", Aliases: []string{"data"}}, addr: "10.0.0.4"}, // aliases may be shared
		{inst: 5, o: LeaseOptions{Addr: "10.0.0.6"}, addr: "10.0.0.6"},
		{inst: 6, err: ErrBadInput, msg: "is full"},
		{inst: 6, o: LeaseOptions{Addr: "10.0.0.3"}, err: ErrBadInput, msg: "taken"},
	})
	n, err := s.Get("n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range n.Leases {
		got = append(got, l.Addr.String())
	}
	if want := []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}; !slices.Equal(got, want) {
		t.Errorf("leases %v; want %v, sorted", got, want)
	}
}

func TestAllocateGatewayElsewhere(t *testing.T) {
	s := newStore(t)
	if _, err := s.Create(ctx, "n", CreateOptions{Subnet: "10.0.0.0/30", Gateway: "10.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	runSteps(t, s, "n", []step{
		{inst: 1, addr: "10.0.0.1"},
		{inst: 2, err: ErrBadInput, msg: "full"},
	})
}

func TestAllocateBadInput(t *testing.T) {
	s := newStore(t)
	n := mustCreate(t, s, "n", "10.0.0.0/24")
	for _, tc := range []struct {
		network, inst string
		o             LeaseOptions
		err           error
	}{
		{"n", "abc", LeaseOptions{}, ErrBadInput},
		{"n", strings.ToUpper(inst(0xabc)), LeaseOptions{}, ErrBadInput},
		{"n", inst(1), LeaseOptions{Name: "-web"}, ErrBadInput},
		{"n", inst(1), LeaseOptions{Name: strings.Repeat("w", 64)}, ErrBadInput},
		{"n", inst(1), LeaseOptions{Aliases: []string{"ok", "not ok"}}, ErrBadInput},
		{"n", inst(1), LeaseOptions{Aliases: []string{""}}, ErrBadInput},
		{"other", inst(1), LeaseOptions{}, ErrNotFound},
	} {
		if l, err := s.Allocate(ctx, tc.network, tc.inst, tc.o); !errors.Is(err, tc.err) {
			t.Errorf("Allocate(%s, %s, %+v) = %+v, %v; want %v", tc.network, tc.inst, tc.o, l, err, tc.err)
		}
	}
	// By ID, with a 63-byte name and duplicate aliases folded.
	l, err := s.Allocate(ctx, n.ID[:5], inst(1), LeaseOptions{Name: strings.Repeat("w", 63), Aliases: []string{"a", "b", "A"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !slices.Equal(l.Aliases, want) {
		t.Errorf("aliases %v; want %v", l.Aliases, want)
	}
}

func TestReleaseFreesForReuse(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, "n", "10.0.0.0/24")
	runSteps(t, s, "n", []step{
		{inst: 1, o: LeaseOptions{Name: "a"}, addr: "10.0.0.2"},
		{inst: 2, o: LeaseOptions{Name: "b"}, addr: "10.0.0.3"},
		{inst: 3, addr: "10.0.0.4"},
	})
	if err := s.Release(ctx, "n", inst(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, "n", inst(2)); err != nil {
		t.Errorf("second Release: %v; want nil", err)
	}
	if err := s.Release(ctx, "n", inst(9)); err != nil {
		t.Errorf("Release of an instance never attached: %v; want nil", err)
	}
	if err := s.Release(ctx, "other", inst(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release on an unknown network: %v; want ErrNotFound", err)
	}
	// The address and the name are free again; the instance may come back.
	runSteps(t, s, "n", []step{
		{inst: 4, o: LeaseOptions{Name: "b"}, addr: "10.0.0.3"},
		{inst: 2, addr: "10.0.0.5"},
	})
}

func TestReleaseAll(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, "a", "10.0.0.0/24")
	mustCreate(t, s, "b", "10.0.1.0/24")
	mustCreate(t, s, "c", "10.0.2.0/24")
	runSteps(t, s, "a", []step{{inst: 1, o: LeaseOptions{Name: "x"}, addr: "10.0.0.2"}})
	runSteps(t, s, "b", []step{
		{inst: 1, o: LeaseOptions{Name: "x"}, addr: "10.0.1.2"},
		{inst: 2, addr: "10.0.1.3"},
	})
	if err := s.ReleaseAll(ctx, inst(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseAll(ctx, inst(1)); err != nil {
		t.Errorf("second ReleaseAll: %v", err)
	}
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, n := range all {
		for _, l := range n.Leases {
			got[n.Name] = append(got[n.Name], l.Instance)
		}
	}
	if diff := cmp.Diff(map[string][]string{"b": {inst(2)}}, got); diff != "" {
		t.Errorf("leases after ReleaseAll (-want +got):\n%s", diff)
	}
}

func TestRemove(t *testing.T) {
	s := newStore(t)
	n := mustCreate(t, s, "n", "10.0.0.0/24")
	runSteps(t, s, "n", []step{{inst: 1, o: LeaseOptions{Name: "web"}, addr: "10.0.0.2"}})
	if _, err := s.Remove(ctx, "n"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "web") {
		t.Fatalf("Remove with a lease: %v; want ErrInUse naming web", err)
	}
	if err := s.Release(ctx, "n", inst(1)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Remove(ctx, n.ID[:6])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(n, got, netips); diff != "" {
		t.Errorf("Remove returned (-created +removed):\n%s", diff)
	}
	if _, err := s.Get("n"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v; want ErrNotFound", err)
	}
	if _, err := s.Remove(ctx, "n"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v; want ErrNotFound", err)
	}
	// Its subnet is free again.
	mustCreate(t, s, "m", "10.0.0.0/24")
}

func TestResolve(t *testing.T) {
	s := newStore(t)
	n := mustCreate(t, s, "n", "10.0.0.0/24")
	mustCreate(t, s, "other", "10.0.1.0/24")
	runSteps(t, s, "n", []step{
		{inst: 1, o: LeaseOptions{Name: "web", Aliases: []string{"api", "Front"}}, addr: "10.0.0.2"},
		{inst: 2, o: LeaseOptions{Name: "web2", Aliases: []string{"api", "web2"}}, addr: "10.0.0.3"},
		{inst: 3, o: LeaseOptions{Name: "db"}, addr: "10.0.0.4"},
	})
	runSteps(t, s, "other", []step{{inst: 4, o: LeaseOptions{Name: "web"}, addr: "10.0.1.2"}})
	for _, i := range []int{1, 2} {
		if err := s.SetActive(ctx, "n", inst(i), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetActive(ctx, "other", inst(4), true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		network, name string
		want          []string
	}{
		{"n", "web", []string{"10.0.0.2"}},
		{"n", "WEB", []string{"10.0.0.2"}},
		{"n", "web.", []string{"10.0.0.2"}},
		{"n", "front", []string{"10.0.0.2"}},
		{"n", "api", []string{"10.0.0.2", "10.0.0.3"}}, // a shared alias: all
		{"n", "web2", []string{"10.0.0.3"}},            // name and alias: once
		{"n", "db", nil},                               // not active
		{"n", "nobody", nil},
		{"n", "", nil},
		{"n", ".", nil},
		{"other", "web", []string{"10.0.1.2"}},
		{n.ID[:4], "web", []string{"10.0.0.2"}},
		{"missing", "web", nil},
	} {
		var got []string
		for _, a := range s.Resolve(tc.network, tc.name) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%s, %q) = %v; want %v", tc.network, tc.name, got, tc.want)
		}
	}
	if err := s.SetActive(ctx, "n", inst(1), false); err != nil {
		t.Fatal(err)
	}
	if got := s.Resolve("n", "api"); len(got) != 1 || got[0].String() != "10.0.0.3" {
		t.Errorf("Resolve after SetActive false = %v; want [10.0.0.3]", got)
	}
	if err := s.SetActive(ctx, "n", inst(9), true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetActive without a lease: %v; want ErrNotFound", err)
	}
	if err := s.SetActive(ctx, "missing", inst(1), true); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetActive on an unknown network: %v; want ErrNotFound", err)
	}
}

// TestConcurrentAllocate fills a /27 (29 hosts besides the gateway) from
// more goroutines than it has addresses, half through their own Store as
// separate processes would: each address goes to one, and the rest fail.
func TestConcurrentAllocate(t *testing.T) {
	s := newStore(t)
	mustCreate(t, s, "n", "10.0.0.0/27")
	const tries, hosts = 40, 29
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		addrs = map[netip.Addr]int{}
		fails int
	)
	for i := range tries {
		wg.Go(func() {
			st := s
			if i%2 == 1 {
				var err error
				if st, err = Open(s.dir); err != nil {
					t.Error(err)
					return
				}
			}
			l, err := st.Allocate(ctx, "n", inst(i), LeaseOptions{Name: fmt.Sprint("i", i)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrBadInput):
				fails++
			case err != nil:
				t.Errorf("Allocate %d: %v", i, err)
			default:
				addrs[l.Addr]++
			}
		})
	}
	wg.Wait()
	if len(addrs) != hosts || fails != tries-hosts {
		t.Errorf("%d distinct addresses and %d failures; want %d and %d", len(addrs), fails, hosts, tries-hosts)
	}
	for a, c := range addrs {
		if c != 1 || a == netip.MustParseAddr("10.0.0.1") || !netip.MustParsePrefix("10.0.0.0/27").Contains(a) {
			t.Errorf("address %s given %d times", a, c)
		}
	}
	n, err := s.Get("n")
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Leases) != hosts {
		t.Errorf("%d leases recorded; want %d", len(n.Leases), hosts)
	}
}

func TestConcurrentCreate(t *testing.T) {
	s := newStore(t)
	const count = 12
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() {
			if _, err := s.Create(ctx, fmt.Sprint("n", i), CreateOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Prefix]bool{}
	for _, n := range all {
		seen[n.Subnet] = true
	}
	if len(all) != count || len(seen) != count {
		t.Errorf("%d networks with %d distinct subnets; want %d", len(all), len(seen), count)
	}
}

// ids makes a store's IDs the given ones, in order.
func ids(s *Store, list ...string) {
	s.newID = func() string {
		id := list[0]
		list = list[1:]
		return id
	}
}

func TestGet(t *testing.T) {
	s := newStore(t)
	a, b := "abc1"+strings.Repeat("0", 60), "abc2"+strings.Repeat("0", 60)
	ids(s, a, b, "def"+strings.Repeat("0", 61))
	mustCreate(t, s, "a", "10.0.0.0/24")
	mustCreate(t, s, "b", "10.0.1.0/24")
	mustCreate(t, s, "abc2", "10.0.2.0/24") // a name that is also a prefix of b's ID
	for _, tc := range []struct {
		ref  string
		want string // network name; "" = ErrNotFound
		msg  string
	}{
		{"a", "a", ""},
		{a, "a", ""},
		{"abc1", "a", ""},
		{"abc2", "abc2", ""}, // the name wins
		{"abc20", "b", ""},
		{"def", "abc2", ""},
		{"abc", "", "ambiguous"},
		{"ab", "", "not found"}, // too short a prefix
		{"ABC1", "", ""},
		{"c", "", ""},
		{"", "", ""},
		{"../a", "", ""},
		{a + "0", "", ""},
	} {
		n, err := s.Get(tc.ref)
		if tc.want == "" {
			if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Get(%q) = %v, %v; want ErrNotFound containing %q", tc.ref, n, err, tc.msg)
			}
			continue
		}
		if err != nil || n.Name != tc.want {
			t.Errorf("Get(%q) = %v, %v; want network %s", tc.ref, n, err, tc.want)
		}
	}
}

func TestBridgeNamesDiffer(t *testing.T) {
	s := newStore(t)
	first := "0123456789" + strings.Repeat("a", 54)
	ids(s, first, "01234567"+strings.Repeat("b", 56), "fedcba98"+strings.Repeat("c", 56))
	mustCreate(t, s, "a", "10.0.0.0/24")
	n := mustCreate(t, s, "b", "10.0.1.0/24")
	if n.Bridge != "nos-fedcba98" {
		t.Errorf("second bridge %s; want a fresh ID when the first 8 digits collide", n.Bridge)
	}
}

func TestListSortedSkipsLeftovers(t *testing.T) {
	s := newStore(t)
	for i, name := range []string{"zeta", "alpha", "Mid"} {
		mustCreate(t, s, name, fmt.Sprintf("10.0.%d.0/24", i))
	}
	// What a killed write leaves, and files that are no records.
	for name, body := range map[string]string{".tmp-123": `{"name": "half`, "notes.txt": "x", ".json": "{}"} {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range all {
		got = append(got, n.Name)
	}
	if want := []string{"Mid", "alpha", "zeta"}; !slices.Equal(got, want) {
		t.Errorf("List = %v; want %v", got, want)
	}
	// A damaged record fails List and Create, which must not overlap what it held.
	if err := os.WriteFile(filepath.Join(s.dir, "bad.json"), []byte(`{"name": "bad"`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("List with a damaged record: %v; want an error naming it", err)
	}
	if _, err := s.Create(ctx, "new", CreateOptions{}); err == nil {
		t.Error("Create with a damaged record succeeded")
	}
}

func TestLockHonoursContext(t *testing.T) {
	s := newStore(t)
	unlock, err := s.lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Create(c, "n", CreateOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Create while locked, context canceled: %v; want context.Canceled", err)
	}
}
