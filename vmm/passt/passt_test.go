package passt

import (
	"slices"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	c := Config{Guest: "10.0.2.15", Prefix: 24, Gateway: "10.0.2.2", DNS: "10.0.2.3", Forwards: []Forward{
		{Proto: "tcp", HostPort: 8080, GuestPort: 80},
		{Proto: "udp", HostIP: "127.0.0.1", HostPort: 5353, GuestPort: 53},
	}, RunAs: 1879048192, RunAsGroup: 1879048192, Interface: "eth1"}
	got := strings.Join(Args(3, c), " ")
	want := "--foreground --quiet -4 --fd 3 --address 10.0.2.15 --netmask 24 --gateway 10.0.2.2 --dns-forward 10.0.2.3 --dns 10.0.2.3 --log-file /dev/stderr --no-map-gw --interface eth1 --runas 1879048192:1879048192 --tcp-ports 8080:80 --udp-ports 127.0.0.1/5353:53"
	if got != want {
		t.Errorf("Args:\n got %s\nwant %s", got, want)
	}
	c.MapGateway, c.RunAs, c.Interface, c.Forwards = true, 0, "", nil
	if a := Args(3, c); slices.Contains(a, "--no-map-gw") || slices.Contains(a, "--runas") || slices.Contains(a, "--interface") {
		t.Errorf("a guest given the host: %v", a)
	}
}

func TestHasDefaultRoute(t *testing.T) {
	const head = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, c := range []struct {
		table string
		want  bool
	}{
		{head + "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n", true},
		{head + "vout0\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", false},
		{head, false},
		{"", false},
	} {
		if got := hasDefaultRoute(c.table); got != c.want {
			t.Errorf("hasDefaultRoute(%q) = %v", c.table, got)
		}
	}
}
