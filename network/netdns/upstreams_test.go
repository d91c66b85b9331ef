package netdns

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUpstreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf string
		want []netip.AddrPort
	}{
		{name: "empty", conf: "", want: nil},
		{
			name: "systemd-resolved stub",
			conf: "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n" +
				"nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
			want: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")},
		},
		{
			name: "comments, IPv6, order kept",
			conf: "; a comment\n" +
				"domain example.test\n" +
				"nameserver 192.0.2.1 # trailing comment\n" +
				"  nameserver\t2001:db8::53\n" +
				"#nameserver 192.0.2.9\n" +
				"nameserver fe80::1%eth0\n" +
				"nameserver ::ffff:192.0.2.2\n" +
				"nameserver 192.0.2.1\n",
			want: []netip.AddrPort{
				netip.MustParseAddrPort("192.0.2.1:53"),
				netip.MustParseAddrPort("[2001:db8::53]:53"),
				netip.MustParseAddrPort("[fe80::1%eth0]:53"),
				netip.MustParseAddrPort("192.0.2.2:53"),
				netip.MustParseAddrPort("192.0.2.1:53"),
			},
		},
		{
			name: "unparsable lines skipped",
			conf: "nameserver\nnameserver example.test\nnameserver 192.0.2.1:5353\nnameservers 192.0.2.3\n" +
				"NAMESERVER 192.0.2.4\nnameserver 192.0.2.5\r\nnameserver 192.0.2.6",
			want: []netip.AddrPort{
				netip.MustParseAddrPort("192.0.2.5:53"),
				netip.MustParseAddrPort("192.0.2.6:53"),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Upstreams([]byte(tc.conf))
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("Upstreams(%q) (-want +got):\n%s", tc.conf, diff)
			}
		})
	}
}
