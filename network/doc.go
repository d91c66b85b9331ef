// Package network keeps nos's private networks: one record per network
// (its subnet, gateway and bridge name) and the leases of the instances
// attached to it, which say each instance's address, MAC and the names it
// answers to in DNS. Only the records live here: the bridge, the tap
// devices and the DNS server are made elsewhere from them, so nothing in
// this package needs root or netlink.
//
//	networks/
//	  .lock           flock held exclusively by every change to any network
//	  <name>.json     one network and its leases, sorted by address
//	  .tmp-*          a write in progress, or one a killed process left
//
// Locking: every mutation takes .lock, reads the records, changes them and
// writes each changed record with fsutil.WriteJSON (a temporary file,
// fsynced, renamed over the record). Readers (Get, List, Resolve) take no
// lock: a rename replaces a record whole, so they see the old one or the
// new, never a part, and they skip .tmp-* files. Functions that need the
// lock held end in Locked.
//
// Addresses (IPv4 only for now): a network is a /30 or larger subnet, its
// network and broadcast addresses are never handed out, and its gateway
// (the host's address on the bridge, .1 unless told) is never leased.
// Subnets of nos networks never overlap each other or a route the host
// already has, so one address names one lease on the host, and the MAC
// derived from it is unique too.
package network
