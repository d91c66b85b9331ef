package network

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Errors callers test with errors.Is.
var (
	// ErrNotFound: no network has that name, ID or ID prefix (or the
	// prefix matches several), or an instance has no lease on it.
	ErrNotFound = errors.New("no such network")
	// ErrExists: a network of that name exists.
	ErrExists = errors.New("network already exists")
	// ErrInUse: the network still has leases.
	ErrInUse = errors.New("network in use")
	// ErrBadInput: a bad name, CIDR or address, an overlap, a full network
	// or an exhausted pool.
	ErrBadInput = errors.New("invalid network input")
)

// Network is one private network: a Linux bridge the host side makes
// elsewhere.
type Network struct {
	Name    string       `json:"name"`
	ID      string       `json:"id"`      // 64 hex digits, random
	Subnet  netip.Prefix `json:"subnet"`  // IPv4, masked, /30 or larger
	Gateway netip.Addr   `json:"gateway"` // in Subnet: the host's address on the bridge
	Bridge  string       `json:"bridge"`  // Linux interface name, "nos-" + ID[:8]
	// Internal networks get no NAT to the outside.
	Internal bool      `json:"internal,omitempty"`
	Created  time.Time `json:"created"`
	Leases   []Lease   `json:"leases,omitempty"` // sorted by address
}

// Lease is one instance's attachment: its address and the names it
// answers to.
type Lease struct {
	Addr     netip.Addr `json:"addr"`
	MAC      string     `json:"mac"`      // "52:54:" + the address's 4 bytes in hex
	Instance string     `json:"instance"` // instance ID, 64 hex digits
	Name     string     `json:"name,omitempty"`
	Aliases  []string   `json:"aliases,omitempty"`
	// Active is set while the instance's VM runs: DNS answers only for
	// active leases.
	Active bool `json:"active,omitempty"`
}

// answersTo reports whether the lease's name or an alias is name, as DNS
// compares names: case-insensitive, a trailing dot ignored.
func (l *Lease) answersTo(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return false
	}
	if sameName(l.Name, name) {
		return true
	}
	for _, a := range l.Aliases {
		if sameName(a, name) {
			return true
		}
	}
	return false
}

// sameName compares DNS names: case-insensitive, a trailing dot ignored.
func sameName(a, b string) bool {
	a, b = strings.TrimSuffix(a, "."), strings.TrimSuffix(b, ".")
	return a != "" && strings.EqualFold(a, b)
}

// sortLeases sorts leases by address.
func sortLeases(ls []Lease) {
	slices.SortFunc(ls, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
}

// leaseOf returns the index of instanceID's lease, or -1.
func (n *Network) leaseOf(instanceID string) int {
	for i := range n.Leases {
		if n.Leases[i].Instance == instanceID {
			return i
		}
	}
	return -1
}

var (
	networkNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)
	hostNameRE    = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
)

// validName reports whether name may name a network: docker's rule, at
// most 64 bytes.
func validName(name string) bool { return networkNameRE.MatchString(name) }

func checkName(name string) error {
	if !validName(name) {
		return inputf("network name %q: use at most 64 letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

// checkHostName checks an instance name or an alias (what says which it
// is, for the message).
func checkHostName(what, name string) error {
	if !hostNameRE.MatchString(name) {
		return inputf("%s %q: use at most 63 letters, digits, '_', '.' and '-', starting with a letter or digit", what, name)
	}
	return nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

func isID(s string) bool { return len(s) == 64 && isHex(s) }

// short is an ID as messages show it.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// sentinelError is a one-line message that errors.Is matches to a
// sentinel without the sentinel's text appended to it.
type sentinelError struct {
	msg string
	is  error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.is }

func errorf(is error, format string, args ...any) error {
	return &sentinelError{msg: fmt.Sprintf(format, args...), is: is}
}

// inputf is an error wrapping ErrBadInput.
func inputf(format string, args ...any) error { return errorf(ErrBadInput, format, args...) }
