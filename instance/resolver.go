package instance

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nosproject/nos/internal/home"
	"github.com/nosproject/nos/internal/lockfile"
	"github.com/nosproject/nos/network"
	"github.com/nosproject/nos/network/netdns"
)

// ResolverVerb is the hidden verb of nos that runs a network's resolver
// (RunResolver); the CLI registers it, and nos-monitor serves it too,
// because the monitor starts the resolver as a copy of its own program.
const ResolverVerb = "__dns"

func resolverLock(dir, name string) string {
	return filepath.Join(dir, name+".dns.lock")
}

// ensureResolver starts the network's resolver unless one runs: a
// process of its own (it serves every instance on the network), which
// ends by itself when no instance there runs.
func (m *monitor) ensureResolver(name string) error {
	dir := m.home.Networks()
	if lockfile.Held(resolverLock(dir, name)) {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, name+".dns.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(exe, "--home", m.home.Root, ResolverVerb, name)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reaped here while the monitor lives
	// Wait until it holds its lock (it binds first), so the guest's first
	// query finds it.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !lockfile.Held(resolverLock(dir, name)) {
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// resolverIdle is how many one-second checks the resolver makes with no
// running member before it ends.
const resolverIdle = 3

// RunResolver answers DNS on network name's gateway address for as long
// as an instance of the network runs: A records for running members, by
// instance name and alias; everything else goes to the host's resolvers.
// A second resolver for the same network returns at once.
func RunResolver(ctx context.Context, h home.Layout, name string, log *slog.Logger) error {
	is, err := Open(h)
	if err != nil {
		return err
	}
	st, err := is.networks()
	if err != nil {
		return err
	}
	unlock, err := lockfile.TryLock(resolverLock(is.home.Networks(), name))
	if err != nil {
		return nil // another resolver serves it
	}
	defer unlock()
	n, err := st.Get(name)
	if err != nil {
		return err
	}
	conf, _ := os.ReadFile("/etc/resolv.conf")
	alive := func(id string) bool {
		in, err := is.Get(id)
		return err == nil && in.MonitorAlive
	}
	// A client on several networks asks this resolver (its first
	// network's) for the members of all of them; anyone else (the host)
	// sees this network's members only.
	lookup := func(client netip.Addr, q string) ([]netip.Addr, bool) {
		all, err := st.List()
		if err != nil {
			return nil, false
		}
		var self *network.Network
		for _, n := range all {
			if n.Name == name {
				self = n
			}
		}
		if self == nil {
			return nil, false
		}
		var clientID string
		for _, l := range self.Leases {
			if l.Addr == client {
				clientID = l.Instance
			}
		}
		var addrs []netip.Addr
		for _, n := range all {
			if n != self && (clientID == "" || !slices.ContainsFunc(n.Leases, func(l network.Lease) bool { return l.Instance == clientID })) {
				continue
			}
			for _, l := range n.Leases {
				if !l.Active || !alive(l.Instance) {
					continue
				}
				if strings.EqualFold(l.Name, q) || slices.ContainsFunc(l.Aliases, func(a string) bool { return strings.EqualFold(a, q) }) {
					addrs = append(addrs, l.Addr)
				}
			}
		}
		return addrs, len(addrs) > 0
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		idle := 0
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			cur, err := st.Get(name)
			if err != nil || cur.ID != n.ID {
				log.Info("network removed: resolver ends", "network", name)
				cancel()
				return
			}
			if slices.ContainsFunc(cur.Leases, func(l network.Lease) bool { return l.Active && alive(l.Instance) }) {
				idle = 0
			} else if idle++; idle >= resolverIdle {
				log.Info("no instance runs on the network: resolver ends", "network", name)
				cancel()
				return
			}
		}
	}()
	log.Info("resolver started", "network", name, "listen", netip.AddrPortFrom(n.Gateway, 53))
	return netdns.Serve(ctx, netdns.Config{
		Listen: netip.AddrPortFrom(n.Gateway, 53), LookupFrom: lookup,
		Upstreams: netdns.Upstreams(conf), Log: log,
	})
}

// waitResolverGone waits until network name's resolver, if one runs,
// has noticed its network is gone and ended.
func (is *Instances) waitResolverGone(ctx context.Context, name string) {
	lock := resolverLock(is.home.Networks(), name)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && lockfile.Held(lock) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
}
