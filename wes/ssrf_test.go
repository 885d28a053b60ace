package wes

import (
	"net/netip"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		// Global unicast.
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"93.184.215.14", true},
		{"100.63.255.255", true},  // just below shared address space
		{"100.128.0.0", true},     // just above it
		{"198.17.255.255", true},  // just below benchmarking
		{"198.20.0.0", true},      // just above it
		{"192.0.1.1", true},       // next to IETF protocol assignments
		{"223.255.255.255", true}, // last before multicast
		{"2606:4700:4700::1111", true},
		{"2a00:1450:4001:800::200e", true},
		{"::ffff:8.8.8.8", true},   // IPv4-mapped global
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},  // 6to4 of 8.8.8.8
		{"2003::1", true},          // next to 6to4
		{"2001:200::1", true},      // just above 2001::/23

		// IPv4 special-purpose registry.
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.1.2.3", false},
		{"100.64.0.1", false},
		{"100.127.255.254", false},
		{"127.0.0.1", false},
		{"127.255.255.255", false},
		{"169.254.169.254", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.0.0.1", false},
		{"192.0.0.9", false},
		{"192.0.0.170", false},
		{"192.0.2.1", false},
		{"192.31.196.1", false},
		{"192.52.193.1", false},
		{"192.88.99.1", false},
		{"192.168.1.1", false},
		{"192.175.48.1", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"198.51.100.1", false},
		{"203.0.113.1", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.254", false},
		{"255.255.255.255", false},

		// IPv6 special-purpose registry and outside 2000::/3.
		{"::", false},
		{"::1", false},
		{"::7f00:1", false}, // IPv4-compatible loopback
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"64:ff9b::7f00:1", false},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false}, // NAT64 of 169.254.169.254
		{"64:ff9b::6440:1", false},    // NAT64 of 100.64.0.1
		{"64:ff9b:1::808:808", false},
		{"100::1", false},
		{"2001::1", false},                      // Teredo, inside 2001::/23
		{"2001:0:808:808:0:0:f7f7:f7f7", false}, // Teredo, public server and client
		{"2001:0:a00:1::1", false},              // Teredo with server 10.0.0.1
		{"2001:2::1", false},
		{"2001:db8::1", false},
		{"2002:7f00:1::1", false},   // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::", false}, // 6to4 of 169.254.169.254
		{"2002:c0a8:101::1", false}, // 6to4 of 192.168.1.1
		{"2620:4f:8000::1", false},
		{"3fff::1", false},
		{"5f00::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"fec0::1", false},
		{"feff::1", false},
		{"ff02::1", false},
		{"4000::1", false}, // unallocated
		{"fe80::1%eth0", false},
	}
	for _, tt := range tests {
		a, err := netip.ParseAddr(tt.addr)
		if err != nil {
			t.Fatalf("%s: %v", tt.addr, err)
		}
		if got := publicAddr(a); got != tt.ok {
			t.Errorf("publicAddr(%s) = %v, want %v", tt.addr, got, tt.ok)
		}
	}
}

// TestSpecialTables: every entry of the registries is refused, and has its
// RFC written down.
func TestSpecialTables(t *testing.T) {
	for _, r := range append(append([]specialRange{}, specialIPv4...), specialIPv6...) {
		if r.rfc == "" || r.name == "" {
			t.Errorf("%s has no name or RFC", r.prefix)
		}
		if a := r.prefix.Addr(); publicAddr(a) {
			t.Errorf("%s (%s, %s) is allowed", a, r.name, r.rfc)
		}
	}
}
