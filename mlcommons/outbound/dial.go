package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/mlsidecar/mlsidecar/mlcommons/mlerr"
)

// DialContext dials like net.Dialer, refusing, unless AllowPrivate is set,
// every resolved address that is not publicly routable. The refusal happens
// in the dialer's Control hook, after resolution and before connect, on the
// very address being connected to. When a name resolves to several addresses
// the refused ones are skipped and a public one may still be used; if none
// connects, the error is the first one, which for a refused address is an
// *mlerr.Error wrapping ErrPrivateAddress that names the host the caller asked for.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("outbound: network %q is not allowed", network)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("outbound: dial %s: %w", addr, err)
	}
	d := net.Dialer{Timeout: g.dialTimeout, KeepAlive: 30 * time.Second}
	if !g.rules.Load().allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || blocked(ap.Addr()) {
				return privateAddress(host)
			}
			return nil
		}
	}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		var oe *mlerr.Error
		if errors.As(err, &oe) && errors.Is(oe, ErrPrivateAddress) {
			g.metrics.rejected(checkPrivateAddress)
			// Unwrapped from net.OpError so the message is ML Commons' alone.
			return nil, oe
		}
		return nil, err
	}
	return conn, nil
}

func privateAddress(host string) *mlerr.Error {
	return illegalArgument("Remote inference host name has private ip address: "+host, ErrPrivateAddress)
}

// Transport returns a clone of http.DefaultTransport that dials through
// DialContext and never uses a proxy: a proxy would make the connection, and
// so the address check, on our behalf. Each call returns a new connection
// pool; build one per client and share it.
func (g *Guard) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = g.DialContext
	t.DialTLSContext = nil
	t.MaxIdleConns = 100
	// The default of 2 idle connections per host is far too few when most
	// calls go to a handful of provider hosts.
	t.MaxIdleConnsPerHost = 32
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// blockedPrefixes are the ranges netip's predicates do not cover.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), // "this network"; Linux connects 0.0.0.0 to the local host
	// Shared address space (RFC 6598). Not globally routable, and no provider
	// lives there, but cloud networks and Kubernetes clusters use it
	// internally (AWS and GKE secondary ranges, Tailscale, Alibaba Cloud's
	// metadata service at 100.100.100.200), so it is as internal as RFC 1918.
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("240.0.0.0/4"), // reserved, includes the broadcast address
	netip.MustParsePrefix("::/96"),       // IPv4-compatible IPv6, deprecated
	netip.MustParsePrefix("fec0::/10"),   // site-local IPv6, deprecated; Java's isSiteLocalAddress covers it
}

// IPv6 prefixes whose addresses carry an IPv4 destination that a
// translator or relay on the path will reach; the embedded address is judged
// as if it were dialed. IPv4-mapped addresses (::ffff:0:0/96) are handled by
// Unmap.
var (
	// NAT64's well-known prefix (RFC 6052): IPv4 in the last 32 bits.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	// SIIT's IPv4-translated addresses (RFC 2765): IPv4 in the last 32 bits.
	siit = netip.MustParsePrefix("::ffff:0:0:0/96")
	// 6to4 (RFC 3056): 2002:AABB:CCDD::/48 is relayed to AA.BB.CC.DD.
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// blocked reports whether ip is a destination outbound calls must not reach
// without AllowPrivate: unspecified, loopback, private (RFC 1918, fc00::/7),
// link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10),
// shared (100.64.0.0/10), multicast, reserved, and IPv6 forms embedding any of
// those (IPv4-mapped, NAT64, SIIT, 6to4). ML Commons 2.19 blocks only
// loopback, RFC 1918, site-local and unspecified; link-local and the rest are
// added here deliberately.
func blocked(ip netip.Addr) bool {
	ip = ip.WithZone("") // Prefix.Contains never matches a zoned address
	if !ip.IsValid() {
		return true
	}
	ip = ip.Unmap()
	switch b := ip.As16(); {
	case !ip.Is6():
	case nat64.Contains(ip), siit.Contains(ip):
		ip = netip.AddrFrom4([4]byte(b[12:]))
	case sixToFour.Contains(ip):
		ip = netip.AddrFrom4([4]byte(b[2:6]))
	}
	if ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() {
		return true
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
