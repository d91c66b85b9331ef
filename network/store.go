package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nosproject/nos/internal/fsutil"
	"github.com/nosproject/nos/internal/lockfile"
)

// Files in the store's directory.
const (
	lockFile  = ".lock"
	recordExt = ".json" // after the network's name
)

// minPrefix is the shortest ID prefix Get accepts.
const minPrefix = 3

// bridgePrefix starts every bridge's name; 8 digits of the ID follow.
const bridgePrefix = "nos-"

// Store is the directory of nos's networks.
type Store struct {
	dir   string
	newID func() string // a random network ID; tests replace it
}

// Open returns the network store in dir, creating dir (0700) when missing.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the networks directory: %w", err)
	}
	return &Store{dir: dir, newID: randomID}, nil
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(b)
}

// CreateOptions say how to make a network.
type CreateOptions struct {
	Subnet   string // CIDR, masked if it is not; "" picks a free /24 from DefaultPool
	Gateway  string // "" is the first host address of the subnet; needs Subnet
	Internal bool   // no NAT to the outside
	// HostRoutes are destinations the host already routes (the caller
	// lists them with netlink): a subnet overlapping any is refused, and
	// the pool skips them. Default routes are ignored.
	HostRoutes []netip.Prefix
}

// Create makes the network name. Its subnet (o.Subnet, or the first free
// /24 of DefaultPool) must not overlap another network's, a host route or
// a range no bridge may carry (loopback, link-local, multicast, 0/8,
// 240/4).
func (s *Store) Create(ctx context.Context, name string, o CreateOptions) (*Network, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	var subnet netip.Prefix
	if o.Subnet != "" {
		var err error
		if subnet, err = parseSubnet(o.Subnet); err != nil {
			return nil, err
		}
	} else if o.Gateway != "" {
		return nil, inputf("gateway %s needs a subnet to be in: give --subnet too", o.Gateway)
	}
	hostRoutes := routes(o.HostRoutes)

	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	for _, n := range all {
		if n.Name == name {
			return nil, errorf(ErrExists, "network %q exists (%s): remove it with `nos network rm %s`, or choose another name", name, n.Subnet, name)
		}
	}
	if subnet.IsValid() {
		if why := conflict(subnet, all, hostRoutes); why != "" {
			return nil, inputf("subnet %s %s: choose another with --subnet", subnet, why)
		}
	} else if subnet, err = pickSubnet(DefaultPool, all, hostRoutes); err != nil {
		return nil, err
	}
	gateway, err := parseGateway(o.Gateway, subnet)
	if err != nil {
		return nil, err
	}
	id := s.uniqueID(all)
	n := &Network{
		Name:     name,
		ID:       id,
		Subnet:   subnet,
		Gateway:  gateway,
		Bridge:   bridgePrefix + id[:8],
		Internal: o.Internal,
		Created:  time.Now().UTC(),
	}
	if err := s.writeLocked(n); err != nil {
		return nil, err
	}
	return n, nil
}

// uniqueID is a new ID whose bridge name no network has.
func (s *Store) uniqueID(all []*Network) string {
	for {
		id := s.newID()
		if !slices.ContainsFunc(all, func(n *Network) bool { return n.ID[:8] == id[:8] }) {
			return id
		}
	}
}

// Get reads the network ref: a name, a full ID or an ID prefix of at least
// three digits that only one network's ID has. A name wins over an ID
// prefix. An ambiguous prefix is ErrNotFound, with the matches named.
func (s *Store) Get(ref string) (*Network, error) {
	if validName(ref) {
		n, err := s.read(ref)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(ref) >= minPrefix && len(ref) <= 64 && isHex(ref) {
		all, err := s.List()
		if err != nil {
			return nil, err
		}
		var matches []*Network
		for _, n := range all {
			if strings.HasPrefix(n.ID, ref) {
				matches = append(matches, n)
			}
		}
		switch len(matches) {
		case 1:
			return matches[0], nil
		case 0:
		default:
			var names []string
			for _, n := range matches {
				names = append(names, n.Name)
			}
			return nil, errorf(ErrNotFound, "network ID prefix %q is ambiguous: it matches %s: give more digits, or the name", ref, strings.Join(names, ", "))
		}
	}
	return nil, errorf(ErrNotFound, "network %q not found: see `nos network ls`", ref)
}

// List reads every network, sorted by name. A record that cannot be read
// fails it, naming the file: skipping it would let a new network overlap
// the one it holds.
func (s *Store) List() ([]*Network, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var out []*Network
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), recordExt)
		if !ok || !validName(name) || !de.Type().IsRegular() {
			continue // .lock, .tmp-* writes in progress or killed
		}
		n, err := s.read(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since ReadDir
		}
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *Network) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Remove deletes the network ref and returns what it was. A network with
// leases is ErrInUse: its instances must leave it first.
func (s *Store) Remove(ctx context.Context, ref string) (*Network, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	n, err := s.Get(ref)
	if err != nil {
		return nil, err
	}
	if len(n.Leases) > 0 {
		var who []string
		for _, l := range n.Leases {
			who = append(who, describe(l))
		}
		return nil, errorf(ErrInUse, "network %q has %d attached instance(s): %s: remove them, or detach them from it, first", n.Name, len(n.Leases), strings.Join(who, ", "))
	}
	if err := os.Remove(s.path(n.Name)); err != nil {
		return nil, fmt.Errorf("removing network %s: %w", n.Name, err)
	}
	return n, nil
}

// LeaseOptions say what lease Allocate makes.
type LeaseOptions struct {
	Name    string   // the instance's name: unique in the network
	Aliases []string // more names; several instances may share one
	Addr    string   // "" is the lowest free host address
}

// Allocate attaches the instance instanceID to network: it gets an
// address (o.Addr, or the lowest free one) and answers to o.Name and
// o.Aliases. An instance has at most one lease per network.
func (s *Store) Allocate(ctx context.Context, network, instanceID string, o LeaseOptions) (Lease, error) {
	if !isID(instanceID) {
		return Lease{}, inputf("instance ID %q: want 64 hex digits", instanceID)
	}
	if o.Name != "" {
		if err := checkHostName("instance name", o.Name); err != nil {
			return Lease{}, err
		}
	}
	var aliases []string
	for _, a := range o.Aliases {
		if err := checkHostName("alias", a); err != nil {
			return Lease{}, err
		}
		if !slices.ContainsFunc(aliases, func(b string) bool { return sameName(a, b) }) {
			aliases = append(aliases, a)
		}
	}
	var got Lease
	err := s.modify(ctx, network, func(n *Network) (bool, error) {
		for _, l := range n.Leases {
			if l.Instance == instanceID {
				return false, inputf("instance %s is already attached to network %q, at %s", describe(l), n.Name, l.Addr)
			}
			if o.Name != "" && sameName(l.Name, o.Name) {
				return false, inputf("name %q is taken on network %q by instance %s: choose another name", o.Name, n.Name, short(l.Instance))
			}
		}
		a, err := n.pickAddr(o.Addr)
		if err != nil {
			return false, err
		}
		got = Lease{Addr: a, MAC: macFor(a), Instance: instanceID, Name: o.Name, Aliases: aliases}
		i, _ := slices.BinarySearchFunc(n.Leases, a, func(l Lease, a netip.Addr) int { return l.Addr.Compare(a) })
		n.Leases = slices.Insert(n.Leases, i, got)
		return true, nil
	})
	if err != nil {
		return Lease{}, err
	}
	return got, nil
}

// Release frees the instance's lease on network; it does nothing when
// there is none.
func (s *Store) Release(ctx context.Context, network, instanceID string) error {
	return s.modify(ctx, network, func(n *Network) (bool, error) {
		i := n.leaseOf(instanceID)
		if i < 0 {
			return false, nil
		}
		n.Leases = slices.Delete(n.Leases, i, i+1)
		return true, nil
	})
}

// ReleaseAll frees the instance's leases on every network, as when it is
// removed. It goes on past a network it cannot write and returns every
// such failure.
func (s *Store) ReleaseAll(ctx context.Context, instanceID string) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	all, err := s.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range all {
		i := n.leaseOf(instanceID)
		if i < 0 {
			continue
		}
		n.Leases = slices.Delete(n.Leases, i, i+1)
		if err := s.writeLocked(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SetActive marks the instance's lease on network active (its VM runs)
// or not. No lease there is ErrNotFound.
func (s *Store) SetActive(ctx context.Context, network, instanceID string, active bool) error {
	return s.modify(ctx, network, func(n *Network) (bool, error) {
		i := n.leaseOf(instanceID)
		if i < 0 {
			return false, errorf(ErrNotFound, "instance %s has no lease on network %q", short(instanceID), n.Name)
		}
		if n.Leases[i].Active == active {
			return false, nil
		}
		n.Leases[i].Active = active
		return true, nil
	})
}

// Resolve returns the addresses of the active leases on network that
// answer to name (their name or an alias; case-insensitive, a trailing
// dot ignored), in address order. It takes no lock, for a DNS server's
// queries; an unknown network answers nothing.
func (s *Store) Resolve(network, name string) []netip.Addr {
	n, err := s.Get(network)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for i := range n.Leases {
		if l := &n.Leases[i]; l.Active && l.answersTo(name) {
			out = append(out, l.Addr)
		}
	}
	return out
}

// modify runs fn on the network ref under the store's lock, and writes
// the network back when fn says it changed it.
func (s *Store) modify(ctx context.Context, ref string, fn func(*Network) (changed bool, err error)) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	n, err := s.Get(ref)
	if err != nil {
		return err
	}
	changed, err := fn(n)
	if err != nil || !changed {
		return err
	}
	return s.writeLocked(n)
}

// lock takes the store's exclusive lock.
func (s *Store) lock(ctx context.Context) (func(), error) {
	return lockfile.Lock(ctx, filepath.Join(s.dir, lockFile), false)
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+recordExt) }

// read reads the record of network name; a missing one is fs.ErrNotExist.
func (s *Store) read(name string) (*Network, error) {
	b, err := os.ReadFile(s.path(name))
	if err != nil {
		return nil, err
	}
	n := &Network{}
	if err := json.Unmarshal(b, n); err != nil {
		return nil, fmt.Errorf("network %s: reading %s: %w", name, s.path(name), err)
	}
	if n.Name != name || !isID(n.ID) || !n.Subnet.Addr().Is4() {
		return nil, fmt.Errorf("network %s: %s is not a network record (name %q, ID %q, subnet %s): remove or fix it", name, s.path(name), n.Name, n.ID, n.Subnet)
	}
	sortLeases(n.Leases) // as written, unless edited by hand
	return n, nil
}

// writeLocked replaces n's record atomically. The store's lock must be
// held.
func (s *Store) writeLocked(n *Network) error {
	if err := fsutil.WriteJSON(s.path(n.Name), n); err != nil {
		return fmt.Errorf("writing network %s: %w", n.Name, err)
	}
	return nil
}
