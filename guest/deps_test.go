package guest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestInitDependencies keeps the guest init small: it may link only the
// standard library, x/sys, netlink, the DHCP client and nos's contract
// packages — never the CLI, the store, the builder or anything else of the
// host side.
func TestInitDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/nosproject/nos/cmd/nos-init").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{
		"github.com/nosproject/nos/cmd/nos-init",
		"github.com/nosproject/nos/guest",
		"github.com/nosproject/nos/guestapi",
		"github.com/nosproject/nos/image",
		"golang.org/x/sys/",
		"github.com/vishvananda/netlink",
		"github.com/vishvananda/netns",
		// The DHCP client of an exported disk's guest (dhcp_linux.go):
		// insomniacslk/dhcp's dhcpv4 and nclient4, and what they import —
		// mdlayher/packet and socket for the raw socket an unconfigured
		// NIC needs, x/net/bpf for its filter, x/sync/errgroup, u-root/uio
		// (which brings lz4 with it) and josharian/native for the packet
		// codec.
		"github.com/insomniacslk/dhcp/",
		"github.com/mdlayher/packet",
		"github.com/mdlayher/socket",
		"golang.org/x/net/bpf",
		"golang.org/x/sync/errgroup",
		"github.com/u-root/uio/",
		"github.com/pierrec/lz4/v4",
		"github.com/josharian/native",
		"vendor/", // the standard library's vendored packages
	}
	for _, pkg := range strings.Fields(string(out)) {
		ok := false
		for _, a := range allowed {
			if pkg == a || strings.HasPrefix(pkg, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("nos-init depends on %s; the guest init must stay free of host-side packages", pkg)
		}
	}
}

// TestInitLeavesOutHeavyStandardPackages: the init speaks just enough HTTP
// for its health probes (probe.go); net/http and the TLS stack it pulls in
// would add megabytes to every image.
func TestInitLeavesOutHeavyStandardPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/nosproject/nos/cmd/nos-init").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "net/http", "crypto/tls", "encoding/xml", "text/template", "html/template":
			t.Errorf("nos-init depends on %s; the guest init must stay small", pkg)
		}
	}
}
