package instance

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/network"
	"github.com/nosproject/nos/network/bridge"
	"github.com/nosproject/nos/network/guard"
	"github.com/nosproject/nos/network/proxy"
	"github.com/nosproject/nos/vmm"
)

// Network names --network takes besides private networks' names.
const (
	NetworkDefault = "default" // QEMU's user-mode NAT, as without --network
	NetworkNone    = "none"    // no NIC at all
)

// NetworkRequest is one --network NAME with its --ip and --network-alias.
type NetworkRequest struct {
	Name    string
	IP      string
	Aliases []string
}

// NetworkAttachment is an instance's place on a private network: its
// lease, with what the guest needs to configure it.
type NetworkAttachment struct {
	Network string   `json:"network"`
	Addr    string   `json:"addr"`
	Bits    int      `json:"bits"` // the subnet's prefix length
	Gateway string   `json:"gateway"`
	MAC     string   `json:"mac"`
	Aliases []string `json:"aliases,omitempty"`
}

// MaxNetworks is how many private networks one instance joins.
const MaxNetworks = 4

// HaveNetAdmin reports whether this process may make bridges and taps:
// root, or CAP_NET_ADMIN in its effective set.
func HaveNetAdmin() bool {
	if os.Geteuid() == 0 {
		return true
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<12) != 0 // CAP_NET_ADMIN
		}
	}
	return false
}

// ErrNoNetAdmin is why a private network is refused to an unprivileged nos.
var ErrNoNetAdmin = errors.New("private networks need root or CAP_NET_ADMIN (bridges and taps); without --network nos uses user-mode networking, which needs no privileges")

// checkNetworks refuses what cannot be attached before anything is made.
func checkNetworks(o Options, icfg image.Config, ref string) error {
	if len(o.Networks) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, r := range o.Networks {
		if seen[r.Name] {
			return fmt.Errorf("--network %s given twice: %w", r.Name, ErrBadFlag)
		}
		seen[r.Name] = true
	}
	if len(o.Networks) > MaxNetworks {
		return fmt.Errorf("%d networks: an instance joins at most %d: %w", len(o.Networks), MaxNetworks, ErrBadFlag)
	}
	if icfg.Kernel.NoNetwork {
		return fmt.Errorf("image %s runs a kernel without networking (%s): --network needs one built with `nos kernel build --features net`: %w", ref, icfg.Kernel.Version, ErrBadFlag)
	}
	if len(o.Networks) > 1 && icfg.InitAPI < image.InitAPINetworks {
		return fmt.Errorf("image %s was built by an older nos, whose init configures one NIC only: build it again to join several networks: %w", ref, ErrBadFlag)
	}
	if !HaveNetAdmin() {
		return fmt.Errorf("%w: %w", ErrNoNetAdmin, ErrBadFlag)
	}
	return nil
}

// NormalizeNetworks turns --network flags into requests: "default" is
// user-mode networking (no request), "none" no NIC. It reports whether
// "none" was asked.
func NormalizeNetworks(rs []NetworkRequest) (out []NetworkRequest, none bool, err error) {
	for _, r := range rs {
		switch r.Name {
		case NetworkDefault:
			if r.IP != "" || len(r.Aliases) > 0 {
				return nil, false, fmt.Errorf("--network default is user-mode NAT: --ip and --network-alias need a private network: %w", ErrBadFlag)
			}
		case NetworkNone:
			none = true
		default:
			out = append(out, r)
		}
	}
	if none && len(rs) > 1 {
		return nil, false, fmt.Errorf("--network none takes no other network: %w", ErrBadFlag)
	}
	if len(out) > 0 && len(out) < len(rs) {
		return nil, false, fmt.Errorf("--network default (user-mode) and private networks do not mix yet: give private networks only: %w", ErrBadFlag)
	}
	return out, none, nil
}

func (is *Instances) networks() (*network.Store, error) { return network.Open(is.home.Networks()) }

// joinNetworks leases the instance's addresses, under each network's
// lock; on failure what was leased is released.
func (is *Instances) joinNetworks(ctx context.Context, id, name string, rs []NetworkRequest) (_ []NetworkAttachment, err error) {
	if len(rs) == 0 {
		return nil, nil
	}
	st, err := is.networks()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = st.ReleaseAll(context.WithoutCancel(ctx), id)
		}
	}()
	var out []NetworkAttachment
	for _, r := range rs {
		n, err := st.Get(r.Name)
		if err != nil {
			return nil, fmt.Errorf("--network %s: %w", r.Name, err)
		}
		l, err := st.Allocate(ctx, n.Name, id, network.LeaseOptions{Name: name, Aliases: r.Aliases, Addr: r.IP})
		if err != nil {
			return nil, fmt.Errorf("--network %s: %w", r.Name, err)
		}
		out = append(out, NetworkAttachment{
			Network: n.Name, Addr: l.Addr.String(), Bits: n.Subnet.Bits(), Gateway: n.Gateway.String(),
			MAC: l.MAC, Aliases: r.Aliases,
		})
	}
	return out, nil
}

// leaveNetworks releases every lease of a removed instance.
func (is *Instances) leaveNetworks(ctx context.Context, in *Instance) error {
	if len(in.Config.Networks) == 0 {
		// A guard table a killed monitor left (see monitor.guard).
		if in.Config.JailUID != 0 && os.Geteuid() == 0 {
			_ = guard.Remove(guard.TableName(in.Config.ID))
		}
		return nil
	}
	st, err := is.networks()
	if err != nil {
		return err
	}
	return st.ReleaseAll(ctx, in.Config.ID)
}

// NetworkUsers lists the instances on network name.
func (is *Instances) NetworkUsers(name string) ([]*Instance, error) {
	all, err := is.List()
	if err != nil {
		return nil, err
	}
	var out []*Instance
	for _, in := range all {
		if slices.ContainsFunc(in.Config.Networks, func(a NetworkAttachment) bool { return a.Network == name }) {
			out = append(out, in)
		}
	}
	return out, nil
}

// bridgeSpec is the host side of network n.
func bridgeSpec(n *network.Network) bridge.Spec {
	return bridge.Spec{Bridge: n.Bridge, Subnet: n.Subnet, Gateway: n.Gateway, Internal: n.Internal}
}

// tapName is the tap of the instance's i-th network, unique per host:
// nos-t + 8 hex digits of the ID + the index.
func tapName(id string, i int) string { return "nos-t" + id[:8] + strconv.Itoa(i) }

// netBoot is what one boot holds of its networks: the taps (closed when
// the VM is off, which removes them) and the published ports' proxy.
type netBoot struct {
	taps  []*bridge.Tap
	proxy *proxy.Proxy
}

func (b *netBoot) close() {
	if b.proxy != nil {
		_ = b.proxy.Close()
	}
	for _, t := range b.taps {
		t.File.Close()
	}
}

// attachNetworks makes sure each network's bridge and resolver run and
// makes the instance's taps.
func (m *monitor) attachNetworks() (*netBoot, error) {
	b := &netBoot{}
	if len(m.cfg.Networks) == 0 {
		return b, nil
	}
	st, err := network.Open(m.home.Networks())
	if err != nil {
		return nil, err
	}
	for i, a := range m.cfg.Networks {
		n, err := st.Get(a.Network)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("network %s: %w", a.Network, err)
		}
		spec := bridgeSpec(n)
		if err := bridge.Ensure(spec); err != nil {
			b.close()
			return nil, fmt.Errorf("network %s: %w", a.Network, err)
		}
		tap, err := bridge.NewTap(spec, tapName(m.cfg.ID, i))
		if err != nil {
			b.close()
			return nil, fmt.Errorf("network %s: %w", a.Network, err)
		}
		b.taps = append(b.taps, tap)
		if err := m.ensureResolver(n.Name); err != nil {
			m.log.Warn("no DNS resolver for the network: names will not resolve", "network", n.Name, "err", err)
		}
		m.log.Info("network attached", "network", n.Name, "bridge", n.Bridge, "tap", tap.Name, "addr", a.Addr)
	}
	return b, nil
}

// setActive records that the VM runs (or not) in each network's leases,
// which is what the resolvers answer from.
func (m *monitor) setActive(ctx context.Context, active bool) {
	if len(m.cfg.Networks) == 0 {
		return
	}
	st, err := network.Open(m.home.Networks())
	if err != nil {
		m.log.Error("networks", "err", err)
		return
	}
	for _, a := range m.cfg.Networks {
		if err := st.SetActive(context.WithoutCancel(ctx), a.Network, m.cfg.ID, active); err != nil {
			m.log.Error("network lease", "network", a.Network, "err", err)
		}
	}
}

// publish starts the proxy of the published ports to the first
// network's address.
func (m *monitor) publish(b *netBoot) error {
	if len(m.cfg.Networks) == 0 || len(m.cfg.Publish) == 0 {
		return nil
	}
	guest, err := netip.ParseAddr(m.cfg.Networks[0].Addr)
	if err != nil {
		return err
	}
	var fs []proxy.Forward
	for _, f := range m.cfg.Publish {
		host := netip.IPv4Unspecified()
		if f.HostIP != "" {
			if host, err = netip.ParseAddr(f.HostIP); err != nil {
				return err
			}
		}
		fs = append(fs, proxy.Forward{Proto: f.Proto, Listen: netip.AddrPortFrom(host, uint16(f.HostPort)), Target: netip.AddrPortFrom(guest, uint16(f.GuestPort))})
	}
	p, err := proxy.Start(fs, m.log)
	if err != nil {
		return err
	}
	b.proxy = p
	return nil
}

// nics are the machine's NICs on private networks, in order.
func (m *monitor) nics(b *netBoot) []vmm.NIC {
	var out []vmm.NIC
	for i, a := range m.cfg.Networks {
		n := vmm.NIC{MAC: a.MAC}
		if b != nil && i < len(b.taps) {
			n.Tap, n.TapFile = b.taps[i].Name, b.taps[i].File
		}
		out = append(out, n)
	}
	return out
}

// guestNetworks is what the guest configures on private networks: each
// NIC by MAC, the first network's gateway as default route, its resolver
// as DNS server.
func guestNetworks(as []NetworkAttachment) []guestapi.Network {
	var out []guestapi.Network
	for i, a := range as {
		out = append(out, guestapi.Network{
			Interface: "eth" + strconv.Itoa(i), MAC: a.MAC,
			Address: a.Addr + "/" + strconv.Itoa(a.Bits), Gateway: a.Gateway,
			DNS: []string{a.Gateway},
		})
	}
	return out
}

// CreateNetwork records a private network and makes its bridge and
// nftables table; if the host side cannot be made, nothing is kept.
func (is *Instances) CreateNetwork(ctx context.Context, name string, o network.CreateOptions) (*network.Network, error) {
	if !HaveNetAdmin() {
		return nil, ErrNoNetAdmin
	}
	st, err := is.networks()
	if err != nil {
		return nil, err
	}
	routes, err := bridge.HostRoutes()
	if err != nil {
		return nil, err
	}
	o.HostRoutes = routes
	n, err := st.Create(ctx, name, o)
	if err != nil {
		return nil, err
	}
	if err := bridge.Ensure(bridgeSpec(n)); err != nil {
		_ = bridge.Remove(bridgeSpec(n))
		_, _ = st.Remove(context.WithoutCancel(ctx), name)
		return nil, err
	}
	return n, nil
}

// RemoveNetwork removes a network no instance is on, with its bridge,
// table and resolver.
func (is *Instances) RemoveNetwork(ctx context.Context, name string) (*network.Network, error) {
	st, err := is.networks()
	if err != nil {
		return nil, err
	}
	n, err := st.Get(name)
	if err != nil {
		return nil, err
	}
	users, err := is.NetworkUsers(n.Name)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		var names []string
		for _, u := range users {
			names = append(names, displayName(u))
		}
		return nil, fmt.Errorf("network %s has instances (%s): remove them first (nos rm -f): %w", n.Name, strings.Join(names, ", "), network.ErrInUse)
	}
	if !HaveNetAdmin() {
		return nil, ErrNoNetAdmin
	}
	if n, err = st.Remove(ctx, n.Name); err != nil {
		return nil, err
	}
	is.waitResolverGone(ctx, n.Name)
	for _, f := range []string{resolverLock(is.home.Networks(), n.Name), filepath.Join(is.home.Networks(), n.Name+".dns.log")} {
		_ = os.Remove(f)
	}
	return n, bridge.Remove(bridgeSpec(n))
}

// PruneNetworks removes every network no instance is on.
func (is *Instances) PruneNetworks(ctx context.Context) ([]string, error) {
	st, err := is.networks()
	if err != nil {
		return nil, err
	}
	ns, err := st.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range ns {
		if users, err := is.NetworkUsers(n.Name); err != nil || len(users) > 0 {
			continue
		}
		if _, err := is.RemoveNetwork(ctx, n.Name); err != nil {
			return removed, err
		}
		removed = append(removed, n.Name)
	}
	return removed, nil
}

// Networks lists the private networks.
func (is *Instances) Networks() ([]*network.Network, error) {
	st, err := is.networks()
	if err != nil {
		return nil, err
	}
	return st.List()
}

// Network finds one by name or ID prefix.
func (is *Instances) Network(ref string) (*network.Network, error) {
	st, err := is.networks()
	if err != nil {
		return nil, err
	}
	return st.Get(ref)
}

// Connect puts a stopped instance on a network, from its next start.
// QEMU's microvm has no bus to hot-plug a NIC on, so a running instance
// is refused.
func (is *Instances) Connect(ctx context.Context, ref string, r NetworkRequest) error {
	in, unlock, err := is.stoppedForNIC(ctx, ref)
	if err != nil {
		return err
	}
	defer unlock()
	if in.Config.NoNetwork {
		return fmt.Errorf("instance %s has no network (no network stack, or --network none): %w", displayName(in), ErrBadFlag)
	}
	if slices.ContainsFunc(in.Config.Networks, func(a NetworkAttachment) bool { return a.Network == r.Name }) {
		return fmt.Errorf("instance %s is already on network %s: %w", displayName(in), r.Name, ErrBadFlag)
	}
	if len(in.Config.Networks) >= MaxNetworks {
		return fmt.Errorf("instance %s is on %d networks, the most an instance joins: %w", displayName(in), MaxNetworks, ErrBadFlag)
	}
	if !HaveNetAdmin() {
		return ErrNoNetAdmin
	}
	as, err := is.joinNetworks(ctx, in.Config.ID, in.Config.Name, []NetworkRequest{r})
	if err != nil {
		return err
	}
	cfg := in.Config
	cfg.Networks = append(slices.Clone(cfg.Networks), as...)
	if err := writeJSON(filepath.Join(in.Dir, configFile), cfg); err != nil {
		if st, e2 := is.networks(); e2 == nil {
			_ = st.Release(context.WithoutCancel(ctx), r.Name, cfg.ID)
		}
		return err
	}
	return nil
}

// Disconnect takes a stopped instance off a network.
func (is *Instances) Disconnect(ctx context.Context, ref, net string) error {
	in, unlock, err := is.stoppedForNIC(ctx, ref)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := is.networks()
	if err != nil {
		return err
	}
	n, err := st.Get(net)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(in.Config.Networks, func(a NetworkAttachment) bool { return a.Network == n.Name })
	if i < 0 {
		return fmt.Errorf("instance %s is not on network %s: %w", displayName(in), n.Name, ErrBadFlag)
	}
	cfg := in.Config
	cfg.Networks = slices.Delete(slices.Clone(cfg.Networks), i, i+1)
	if err := writeJSON(filepath.Join(in.Dir, configFile), cfg); err != nil {
		return err
	}
	return st.Release(ctx, n.Name, cfg.ID)
}

// stoppedForNIC locks the instances and returns ref's, refused while it
// runs: QEMU's microvm has no bus to hot-plug or unplug a NIC on.
func (is *Instances) stoppedForNIC(ctx context.Context, ref string) (*Instance, func(), error) {
	unlock, err := is.lockAll(ctx)
	if err != nil {
		return nil, nil, err
	}
	in, err := is.Get(ref)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	if in.MonitorAlive {
		unlock()
		return nil, nil, fmt.Errorf("instance %s is running: stop it first (nos stop %s); a microvm cannot hot-plug or unplug a NIC: %w", displayName(in), ref, ErrRunning)
	}
	return in, unlock, nil
}
