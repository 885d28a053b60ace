package wes

import (
	"net/netip"
)

// A fetched workflow URL may only reach a global unicast address: one that
// no entry of IANA's special-purpose address registries covers, in the
// assigned global unicast space. The registries are
// https://www.iana.org/assignments/iana-ipv4-special-registry and
// https://www.iana.org/assignments/iana-ipv6-special-registry; the few of
// their entries marked globally reachable (anycast DNS sinks, AMT relays,
// ORCHID identifiers, PCP and TURN anycast) serve no workflows, so every
// entry is refused. Addresses that carry an IPv4 address (IPv4-mapped,
// NAT64, 6to4, Teredo) are judged by that address too, so that
// [64:ff9b::a9fe:a9fe] cannot reach 169.254.169.254 through a translator.

// specialRange is one refused range and where it is defined.
type specialRange struct {
	prefix netip.Prefix
	name   string
	rfc    string
}

func special(prefix, name, rfc string) specialRange {
	return specialRange{netip.MustParsePrefix(prefix), name, rfc}
}

// specialIPv4 is the IPv4 special-purpose address registry, with the
// multicast space (RFC 5771), which has a registry of its own.
var specialIPv4 = []specialRange{
	special("0.0.0.0/8", "this network", "RFC 791"),
	special("10.0.0.0/8", "private use", "RFC 1918"),
	special("100.64.0.0/10", "shared address space (carrier-grade NAT)", "RFC 6598"),
	special("127.0.0.0/8", "loopback", "RFC 1122"),
	special("169.254.0.0/16", "link local", "RFC 3927"),
	special("172.16.0.0/12", "private use", "RFC 1918"),
	special("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
	special("192.0.0.0/29", "IPv4 service continuity prefix (DS-Lite)", "RFC 7335"),
	special("192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
	special("192.0.0.9/32", "port control protocol anycast", "RFC 7723"),
	special("192.0.0.10/32", "traversal using relays around NAT anycast", "RFC 8155"),
	special("192.0.0.170/32", "NAT64/DNS64 discovery", "RFC 8880"),
	special("192.0.0.171/32", "NAT64/DNS64 discovery", "RFC 8880"),
	special("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
	special("192.31.196.0/24", "AS112-v4", "RFC 7535"),
	special("192.52.193.0/24", "AMT", "RFC 7450"),
	special("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
	special("192.168.0.0/16", "private use", "RFC 1918"),
	special("192.175.48.0/24", "direct delegation AS112 service", "RFC 7534"),
	special("198.18.0.0/15", "benchmarking", "RFC 2544"),
	special("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
	special("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
	special("224.0.0.0/4", "multicast", "RFC 5771"),
	special("240.0.0.0/4", "reserved", "RFC 1112"),
	special("255.255.255.255/32", "limited broadcast", "RFC 8190"),
}

// specialIPv6 is the IPv6 special-purpose address registry, with the
// ranges of the addressing architecture that lie outside 2000::/3 listed
// for the reader (globalIPv6 refuses everything outside 2000::/3 anyway).
var specialIPv6 = []specialRange{
	special("::/128", "unspecified address", "RFC 4291"),
	special("::1/128", "loopback address", "RFC 4291"),
	special("::/96", "IPv4-compatible (deprecated)", "RFC 4291"),
	special("::ffff:0:0/96", "IPv4-mapped address", "RFC 4291"),
	special("64:ff9b::/96", "IPv4-IPv6 translation (NAT64)", "RFC 6052"),
	special("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215"),
	special("100::/64", "discard-only address block", "RFC 6666"),
	special("100:0:0:1::/64", "dummy IPv6 prefix", "RFC 9780"),
	special("2001::/23", "IETF protocol assignments", "RFC 2928"),
	special("2001::/32", "Teredo", "RFC 4380"),
	special("2001:1::1/128", "port control protocol anycast", "RFC 7723"),
	special("2001:1::2/128", "traversal using relays around NAT anycast", "RFC 8155"),
	special("2001:1::3/128", "DNS-SD service registration protocol anycast", "RFC 9665"),
	special("2001:2::/48", "benchmarking", "RFC 5180"),
	special("2001:3::/32", "AMT", "RFC 7450"),
	special("2001:4:112::/48", "AS112-v6", "RFC 7535"),
	special("2001:10::/28", "deprecated ORCHID", "RFC 4843"),
	special("2001:20::/28", "ORCHIDv2", "RFC 7343"),
	special("2001:30::/28", "drone remote ID protocol entity tags", "RFC 9374"),
	special("2001:db8::/32", "documentation", "RFC 3849"),
	special("2002::/16", "6to4", "RFC 3056"),
	special("2620:4f:8000::/48", "direct delegation AS112 service", "RFC 7534"),
	special("3fff::/20", "documentation", "RFC 9637"),
	special("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
	special("fc00::/7", "unique local", "RFC 4193"),
	special("fe80::/10", "link-local unicast", "RFC 4291"),
	special("fec0::/10", "site-local unicast (deprecated)", "RFC 3879"),
	special("ff00::/8", "multicast", "RFC 4291"),
}

// globalUnicast is the IPv6 global unicast space IANA has allocated.
var globalUnicast = netip.MustParsePrefix("2000::/3")

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	teredo    = netip.MustParsePrefix("2001::/32")
)

// publicAddr reports whether a fetch may connect to a: a global unicast
// address, and so is every IPv4 address it carries.
func publicAddr(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	if a.Is4In6() {
		return publicAddr(a.Unmap())
	}
	if a.Is4() {
		return !inSpecial(specialIPv4, a)
	}
	for _, v4 := range embeddedIPv4(a) {
		if !publicAddr(v4) {
			return false
		}
	}
	if nat64.Contains(a) {
		return true // the well-known prefix is global; its IPv4 address is checked above
	}
	if sixToFour.Contains(a) {
		return true // 6to4 is judged by the IPv4 address it wraps
	}
	return globalUnicast.Contains(a) && !inSpecial(specialIPv6, a)
}

func inSpecial(table []specialRange, a netip.Addr) bool {
	for _, r := range table {
		if r.prefix.Contains(a) {
			return true
		}
	}
	return false
}

// embeddedIPv4 returns the IPv4 addresses an IPv6 address carries: the last
// 32 bits of NAT64's well-known prefix (RFC 6052), bits 16-47 of 6to4
// (RFC 3056), and Teredo's server and (inverted) client address (RFC 4380).
func embeddedIPv4(a netip.Addr) []netip.Addr {
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[12:16]))}
	case sixToFour.Contains(a):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[2:6]))}
	case teredo.Contains(a):
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		return []netip.Addr{netip.AddrFrom4([4]byte(b[4:8])), netip.AddrFrom4(client)}
	}
	return nil
}
