// Package guard keeps a guest from the host's own addresses.
//
// QEMU's user-mode network makes the guest's connections with the
// hypervisor's own sockets, and maps the gateway address (10.0.2.2) to
// the host's loopback: without a filter, an app in the guest reaches every
// service the host thought private (bound to 127.0.0.1) and every service
// on the host's own addresses. Docker's default network does not allow
// that, and neither does nos: every hypervisor runs as a jail user of its
// own (instance.JailUIDBase), and before it starts, the monitor writes a
// table that rejects new connections of that user to any local address,
// except what the instance was given:
//
//	table inet nos-g-<instance> {
//	  chain output { type filter hook output priority filter
//	    meta skuid UID ct state established,related accept   # replies: published ports
//	    meta skuid UID ip daddr NAMESERVER th dport 53 accept # the guest's DNS, through slirp
//	    meta skuid UID tcp dport PORT accept                  # --add-host NAME:host-gateway
//	    meta skuid UID fib daddr type local reject            # the host's loopback and addresses
//	  }
//	}
//
// A table per instance, named by its ID: writing one never races with
// another instance's, and a table left by a killed monitor only ever
// rejects (a reject in any table wins over an accept in another), until
// the next boot rewrites it or nos rm removes it.
package guard

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Prefix begins the name of every guard table.
const Prefix = "nos-g-"

// Spec is what one hypervisor may reach on the host.
type Spec struct {
	// Table names the instance's table (see TableName).
	Table string
	// UID is the user the hypervisor runs as.
	UID uint32
	// Nameservers may be asked on port 53 (the host's resolvers, which
	// slirp forwards the guest's queries to).
	Nameservers []netip.Addr
	// Ports are the host's TCP and UDP ports the guest may reach on any
	// local address. (A guest that may reach them all needs no table.)
	Ports []uint16
}

// TableName is the table of the instance whose ID is id.
func TableName(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	return Prefix + id
}

// ErrUnavailable is wrapped when the host's firewall cannot be written.
var ErrUnavailable = errors.New("cannot keep the guest from the host's addresses")

// Apply writes s's table, replacing any earlier one of that name, in one
// transaction.
func Apply(s Spec) error {
	if !strings.HasPrefix(s.Table, Prefix) {
		return fmt.Errorf("guard table %q: want a name starting with %s", s.Table, Prefix)
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("%w: nftables: %w", ErrUnavailable, err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: s.Table}
	// Add then delete: the delete cannot fail for a missing table, and
	// the new table is written in the same transaction.
	c.AddTable(t)
	c.DelTable(t)
	t = c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	for _, r := range rules(s) {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%w: writing nftables table %s: %w", ErrUnavailable, s.Table, err)
	}
	return nil
}

// rules are the chain's rules, in order.
func rules(s Spec) [][]expr.Any {
	uid := func() []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeySKUID, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(s.UID)},
		}
	}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	var out [][]expr.Any
	// Replies of connections made to the hypervisor (published ports).
	out = append(out, append(append(uid(), Established()...), accept))
	for _, ns := range s.Nameservers {
		for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
			r := append(uid(), daddr(ns)...)
			out = append(out, append(r, append(dport(proto, 53), accept)...))
		}
	}
	for _, p := range s.Ports {
		for _, proto := range []byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			out = append(out, append(uid(), append(dport(proto, p), accept)...))
		}
	}
	local := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
	// TCP gets a reset, the rest an ICMP port unreachable: the guest's
	// connect fails at once instead of timing out.
	out = append(out, append(append(uid(), local...),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}))
	out = append(out, append(append(uid(), local...),
		&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}))
	return out
}

// Established matches packets of connections conntrack has seen both
// ways, or related to one (nft's `ct state established,related`).
func Established() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// daddr matches a destination address of a's family.
func daddr(a netip.Addr) []expr.Any {
	proto, off := byte(unix.NFPROTO_IPV4), uint32(16)
	if a.Is6() && !a.Is4In6() {
		proto, off = unix.NFPROTO_IPV6, 24
	}
	b := a.Unmap().AsSlice()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(b))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// dport matches a TCP or UDP destination port.
func dport(proto byte, port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// Remove deletes the table if it is there.
func Remove(table string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: table}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("removing nftables table %s: %w", table, err)
	}
	return nil
}

// Tables lists the guard tables that exist now.
func Tables() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if strings.HasPrefix(t.Name, Prefix) {
			out = append(out, t.Name)
		}
	}
	return out, nil
}
