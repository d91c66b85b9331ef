package bridge

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
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
	if err := c.Flush(); err != nil {
		return privErr("writing nftables table "+t.Name, err)
	}
	return nil
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
