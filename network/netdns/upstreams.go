package netdns

import (
	"net/netip"
	"strings"
)

// Upstreams returns the resolvers that the nameserver lines of a
// resolv.conf(5) name, in order, on port 53 (resolv.conf has no ports).
// Comments and lines it cannot parse are skipped. Loopback nameservers, such
// as systemd-resolved's 127.0.0.53, are kept as given: the server runs in
// the host's network namespace and can reach them.
func Upstreams(resolvConf []byte) []netip.AddrPort {
	var ups []netip.AddrPort
	for line := range strings.Lines(string(resolvConf)) {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		ups = append(ups, netip.AddrPortFrom(a.Unmap(), 53))
	}
	return ups
}
