package bridge

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/network/guard"
)

// TableName is the nftables table (family ip) of the network whose
// bridge is named bridge: one table per network, so removing a network
// removes all its rules at once.
func TableName(bridge string) string { return bridge }

// writeTable replaces the network's table:
//
//	table ip nos-XXXXXXXX {
//	  chain postrouting { type nat hook postrouting priority srcnat
//	    ip saddr SUBNET oifname != BRIDGE masquerade }      # unless internal
//	  chain forward { type filter hook forward priority filter
//	    iifname BRIDGE oifname != BRIDGE oifname "nos-*" drop   # to another nos network
//	    oifname BRIDGE iifname != BRIDGE iifname "nos-*" drop   # from another nos network
//	    iifname BRIDGE oifname != BRIDGE drop                   # internal only
//	    oifname BRIDGE iifname != BRIDGE drop }                 # internal only
//	  chain input { type filter hook input priority filter      # the host itself
//	    iifname BRIDGE ct state established,related accept      # replies: published ports
//	    iifname BRIDGE ip daddr GATEWAY udp dport 53 accept     # the network's resolver
//	    iifname BRIDGE ip daddr GATEWAY tcp dport 53 accept
//	    iifname BRIDGE meta l4proto tcp reject with tcp reset   # nothing else of the host's
//	    iifname BRIDGE reject }
//	}
func writeTable(s Spec) error {
	c, err := nftables.New()
	if err != nil {
		return privErr("nftables", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName(s.Bridge)}
	// Add then delete: the delete cannot fail for a missing table, and
	// the new table is written in the same transaction.
	c.AddTable(t)
	c.DelTable(t)
	t = c.AddTable(t)
	if !s.Internal {
		post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
		mask := s.Subnet.Bits()
		m := []byte{0, 0, 0, 0}
		for i := range mask {
			m[i/8] |= 0x80 >> (i % 8)
		}
		sub := s.Subnet.Addr().As4()
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: sub[:]},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(s.Bridge)},
			&expr.Masq{},
		}})
	}
	fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
	drop := func(this, other expr.MetaKey, otherPrefix bool) {
		exprs := []expr.Any{
			&expr.Meta{Key: this, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(s.Bridge)},
			&expr.Meta{Key: other, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(s.Bridge)},
		}
		if otherPrefix {
			// A prefix compare: the first bytes only, as nft's "nos-*".
			exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(Prefix)})
		}
		exprs = append(exprs, &expr.Verdict{Kind: expr.VerdictDrop})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: exprs})
	}
	drop(expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME, true)
	drop(expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME, true)
	if s.Internal {
		drop(expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME, false)
		drop(expr.MetaKeyOIFNAME, expr.MetaKeyIIFNAME, false)
	}
	in := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	for _, r := range inputRules(s) {
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: r})
	}
	if err := c.Flush(); err != nil {
		return privErr("writing nftables table "+t.Name, err)
	}
	return nil
}

// inputRules keep a network's guests from the host's own addresses
// (its loopback is out of their reach anyway: route_localnet is off):
// they may ask the network's resolver and get replies to the host's
// connections (the published ports' relays), nothing else.
func inputRules(s Spec) [][]expr.Any {
	br := func() []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(s.Bridge)},
		}
	}
	l4 := func(proto byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		}
	}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	gw := s.Gateway.As4()
	var out [][]expr.Any
	out = append(out, append(append(br(), guard.Established()...), accept))
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		r := append(br(),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: gw[:]})
		r = append(r, l4(proto)...)
		out = append(out, append(r,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
			accept))
	}
	out = append(out, append(append(br(), l4(unix.IPPROTO_TCP)...), &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}))
	out = append(out, append(br(), &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3 /* port unreachable */}))
	return out
}

// deleteTable removes the network's table if it is there.
func deleteTable(s Spec) error {
	c, err := nftables.New()
	if err != nil {
		return privErr("nftables", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName(s.Bridge)}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return privErr("removing nftables table "+t.Name, err)
	}
	return nil
}

// Tables lists the nftables tables nos made that exist now.
func Tables() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range ts {
		if len(t.Name) > len(Prefix) && t.Name[:len(Prefix)] == Prefix {
			out = append(out, t.Name)
		}
	}
	return out, nil
}

// ifname is an interface name as the kernel compares it: IFNAMSIZ bytes,
// NUL padded.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}
