// Package netdns is the small DNS server nos runs on the gateway address of
// each private network, so that instances find each other by name.
//
// Each query is answered in one of three ways:
//
//   - A member of the network (a name [Lookup] knows, after stripping a
//     configured search domain) is answered authoritatively from Lookup: its
//     IPv4 addresses as A records, in the order Lookup gives them, with a
//     short TTL because members come and go. Other types for a member are
//     answered with no records (NODATA).
//   - A name this server owns but that is not a member is answered
//     authoritatively with NXDOMAIN and never forwarded: a single label
//     ("db" when db is not running) or any name under a configured domain.
//     Bare names are for members; forwarding them would tell outside
//     resolvers the network's names. A domain's own name (the zone apex) is
//     answered with NODATA rather than NXDOMAIN, which would tell caching
//     resolvers that no names exist under it (RFC 8020).
//   - Every other name is forwarded to the host's resolvers in order: over
//     UDP first, again over TCP when the reply is truncated, and on to the
//     next resolver on a timeout or error. The reply is relayed with the
//     client's message ID; when every resolver fails the client gets
//     SERVFAIL.
//
// Nothing is cached: members are looked up on every query, and forwarded
// replies come from the upstream resolvers each time.
//
// Reverse lookups (PTR under in-addr.arpa) are answered from the optional
// [Config.Reverse] for member addresses and forwarded otherwise.
//
// The package never prints; per-query errors go to [Config.Log].
package netdns
