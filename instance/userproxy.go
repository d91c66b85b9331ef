package instance

import (
	"fmt"
	"os"

	"github.com/nosproject/nos/vmm"
	"github.com/nosproject/nos/vmm/passt"
)

// UserProxyEnv overrides the choice of userProxy: "slirp" or "passt" (the
// benchmarks compare them; see BENCHMARKS.md, "The network path").
const UserProxyEnv = "NOS_USER_PROXY"

// userProxy chooses what carries the traffic of an instance's user-mode
// network. As root, QEMU's slirp: the hypervisor runs as a jail user whose
// connections to the host's addresses the guard table rejects (see
// network/guard), and slirp served more requests per second than passt
// here. Without root there is no jail user to filter by, and slirp maps
// the gateway to the host's loopback with no way to stop it: passt, when
// installed, does not map it unless the instance names the host
// (--add-host NAME:host-gateway). passt cannot open only some of the
// host's ports, so --host-port needs root.
func userProxy(cfg Config) (vmm.Proxy, error) {
	if cfg.JailUID == 0 && reachesHost(cfg.Hosts) && len(cfg.HostPorts) > 0 {
		return "", fmt.Errorf("--host-port needs nos run as root (only a hypervisor run as a jail user can be let through to some of the host's ports): drop --host-port to open the whole host, or run nos as root: %w", ErrBadFlag)
	}
	switch v := os.Getenv(UserProxyEnv); v {
	case "slirp":
		return vmm.ProxySlirp, nil
	case "passt":
		if _, err := passt.Path(); err != nil {
			return "", fmt.Errorf("%s=passt: %w", UserProxyEnv, err)
		}
		return vmm.ProxyPasst, nil
	case "":
	default:
		return "", fmt.Errorf("%s=%q: want slirp or passt: %w", UserProxyEnv, v, ErrBadFlag)
	}
	if cfg.JailUID != 0 {
		return vmm.ProxySlirp, nil
	}
	if _, err := passt.Path(); err != nil {
		return vmm.ProxySlirp, nil // confinementNotes says what the guest can reach
	}
	return vmm.ProxyPasst, nil
}
