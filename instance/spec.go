package instance

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

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

// MinMemoryMiB is the least guest memory nos accepts; below it the kernel
// and initramfs do not fit.
const MinMemoryMiB = 32

// ParseMemory parses a memory size: a number with an optional unit
// (k, m, g, t; optional "b" or "ib"; case-insensitive). A plain number is
// in MiB, as QEMU's -m takes it. The result is in MiB.
func ParseMemory(s string) (int, error) {
	bad := func(why string) (int, error) {
		return 0, fmt.Errorf("memory %q: %s; want e.g. 256m or 1g: %w", s, why, ErrBadFlag)
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := float64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1.0 / 1024
		case 'm':
			mult = 1
		case 'g':
			mult = 1024
		case 't':
			mult = 1024 * 1024
		default:
			if c := t[len(t)-1]; c < '0' || c > '9' {
				return bad("not a positive size with a unit k, m, g or t (found " + strconv.Quote(string(c)) + ")")
			}
			t += "m" // a plain number is MiB
		}
		t = t[:len(t)-1]
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v != v {
		return bad("not a positive size")
	}
	mib := v * mult
	if mib > 1<<22 {
		return bad("larger than 4 TiB")
	}
	if mib < MinMemoryMiB {
		return bad(fmt.Sprintf("below the %d MiB a guest needs", MinMemoryMiB))
	}
	return int(mib), nil
}
