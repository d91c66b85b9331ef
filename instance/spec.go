package instance

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/internal/units"
	"github.com/nosproject/nos/vmm"
)

// ErrBadFlag marks malformed user input to `nos run`.
var ErrBadFlag = errors.New("invalid flag value")

// ParsePublish parses docker's -p syntax: [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp].
func ParsePublish(s string) (vmm.Forward, error) {
	bad := func(why string) (vmm.Forward, error) {
		return vmm.Forward{}, fmt.Errorf("-p %q: %s; want [HOSTIP:]HOSTPORT:GUESTPORT[/tcp|/udp], e.g. -p 8080:80: %w", s, why, ErrBadFlag)
	}
	f := vmm.Forward{Proto: "tcp"}
	spec := s
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		f.Proto = strings.ToLower(spec[i+1:])
		spec = spec[:i]
		if f.Proto != "tcp" && f.Proto != "udp" {
			return bad("protocol must be tcp or udp")
		}
	}
	var host string
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return bad("missing host port")
	}
	guest := spec[i+1:]
	rest := spec[:i]
	if j := strings.LastIndex(rest, ":"); j >= 0 {
		f.HostIP, host = rest[:j], rest[j+1:]
		f.HostIP = strings.TrimSuffix(strings.TrimPrefix(f.HostIP, "["), "]")
		ip := net.ParseIP(f.HostIP)
		if ip == nil || ip.To4() == nil || strings.Contains(f.HostIP, ":") {
			return bad(fmt.Sprintf("host IP %q is not an IPv4 address", f.HostIP))
		}
	} else {
		host = rest
	}
	var err error
	if f.HostPort, err = parsePort(host); err != nil {
		return bad("host port " + err.Error())
	}
	if f.GuestPort, err = parsePort(guest); err != nil {
		return bad("guest port " + err.Error())
	}
	return f, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return n, nil
}

// ParseEnv parses -e KEY=VALUE; a bare KEY takes the value from the host's
// environment, as docker does, and is dropped when the host has none.
func ParseEnv(s string) (kv string, ok bool, err error) {
	key, _, hasValue := strings.Cut(s, "=")
	if key == "" || strings.ContainsAny(key, " \t\n\x00") {
		return "", false, fmt.Errorf("-e %q: want KEY=VALUE with a non-empty KEY without spaces: %w", s, ErrBadFlag)
	}
	if strings.ContainsRune(s, 0) {
		return "", false, fmt.Errorf("-e %q: NUL byte in value: %w", key, ErrBadFlag)
	}
	if hasValue {
		return s, true, nil
	}
	v, found := os.LookupEnv(key)
	if !found {
		return "", false, nil
	}
	return key + "=" + v, true, nil
}

// MinMemoryMiB is the least guest memory nos accepts at all. Whether an
// image's kernel and initramfs load into a given size is checked at start
// (vmm.Loader), since it depends on both: on nos's own kernels, which load
// at 2 MiB, the hello example loads into 13 MiB. 24 MiB is what the
// example HTTP app needs on a root disk (23 fails; BENCHMARKS.md); below
// it nos's net kernel once hung before its first message even when it
// loaded (19 and 20 MiB, not understood), and from 21 MiB on a guest too
// small for its app panics ("System is deadlocked on memory"), which nos
// reports.
const MinMemoryMiB = 24

// ParseMemory parses a memory size: a number with an optional unit
// (k, m, g, t; optional "b" or "ib"; case-insensitive). A plain number is
// in MiB, as QEMU's -m takes it. The result is in MiB.
func ParseMemory(s string) (int, error) {
	bad := func(why string) (int, error) {
		return 0, fmt.Errorf("memory %q: %s; want e.g. 256m or 1g: %w", s, why, ErrBadFlag)
	}
	b, why := units.Parse(s, 1<<20)
	if why != "" {
		return bad(why)
	}
	mib := b / (1 << 20)
	if mib > 1<<22 {
		return bad("larger than 4 TiB")
	}
	if mib < MinMemoryMiB {
		return bad(fmt.Sprintf("below the %d MiB a guest needs", MinMemoryMiB))
	}
	return int(mib), nil
}

// ParseSize parses a size in bytes, as docker's --tmpfs size= takes it: a
// number with an optional unit k, m, g or t (powers of 1024; optional "b"
// or "ib"; case-insensitive). A plain number is in bytes.
func ParseSize(s string) (int64, error) {
	b, why := units.Parse(s, 1)
	if why == "" && b > 1<<42 {
		why = "larger than 4 TiB"
	}
	if why == "" && b < 1 {
		why = "not a positive size"
	}
	if why != "" {
		return 0, fmt.Errorf("size %q: %s; want e.g. 64m or 1g: %w", s, why, ErrBadFlag)
	}
	return int64(b), nil
}

// ParseTmpfs parses docker's --tmpfs PATH[:OPTIONS], where OPTIONS are
// comma-separated size=SIZE (see ParseSize) and mode=OCTAL.
func ParseTmpfs(s string) (guestapi.Tmpfs, error) {
	p, opts, hasOpts := strings.Cut(s, ":")
	t := guestapi.Tmpfs{Path: p}
	bad := func(why string) (guestapi.Tmpfs, error) {
		return guestapi.Tmpfs{}, fmt.Errorf("--tmpfs %q: %s: %w", s, why, ErrBadFlag)
	}
	if err := t.CheckPath(); err != nil {
		return bad(err.Error())
	}
	if !hasOpts {
		return t, nil
	}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "size":
			n, err := ParseSize(v)
			if err != nil {
				return bad(fmt.Sprintf("size=%s is not a positive size, e.g. 64m", v))
			}
			t.Size = n
		case "mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o7777 {
				return bad(fmt.Sprintf("mode=%s is not an octal mode, e.g. 1777", v))
			}
			t.Mode = uint32(n)
		default:
			return bad(fmt.Sprintf("unknown option %q: want size=SIZE and mode=OCTAL, comma-separated", o))
		}
	}
	return t, nil
}

// HostGateway, as the address of --add-host, names the host: the
// instance may then reach the host's own addresses (docker's
// host-gateway). Without it, it cannot (see network/guard).
const HostGateway = "host-gateway"

// HostEntry is one --add-host: Name resolves to IP (or to the host, for
// HostGateway) in the guest.
type HostEntry struct {
	Name string `json:"name"`
	IP   string `json:"ip"`
}

// ParseAddHost parses docker's --add-host NAME:IP (or NAME=IP), the IP
// being an address or HostGateway.
func ParseAddHost(s string) (HostEntry, error) {
	name, ip, ok := strings.Cut(s, "=")
	if !ok {
		name, ip, ok = strings.Cut(s, ":")
	}
	bad := func(why string) (HostEntry, error) {
		return HostEntry{}, fmt.Errorf("--add-host %q: %s; want NAME:IP or NAME:%s: %w", s, why, HostGateway, ErrBadFlag)
	}
	if !ok {
		return bad("no address")
	}
	if !validHostName(name) {
		return bad("the name must be letters, digits, '.', '-' and '_', at most 253 characters")
	}
	ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
	if ip == HostGateway {
		return HostEntry{Name: name, IP: ip}, nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" {
		return bad(fmt.Sprintf("%q is not an IP address", ip))
	}
	return HostEntry{Name: name, IP: a.String()}, nil
}

func validHostName(s string) bool {
	if s == "" || len(s) > 253 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// ParseHostPorts parses --host-port PORT[,PORT...]: the host's ports an
// instance with a host-gateway entry may reach.
func ParseHostPorts(s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.Split(s, ",") {
		p, err := parsePort(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("--host-port %q: %v; want PORT[,PORT...]: %w", s, err, ErrBadFlag)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}

// reachesHost reports whether hosts name the host (HostGateway).
func reachesHost(hosts []HostEntry) bool {
	for _, h := range hosts {
		if h.IP == HostGateway {
			return true
		}
	}
	return false
}
