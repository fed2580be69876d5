package controlplane

import (
	"net"
	"net/netip"

	"github.com/labstack/echo/v4"
)

// ipExtractor decides which address keys the rate limiters. This and
// clientKey are the only places that look at a client address; the value is
// hashed with an in-memory salt before it is used and is never logged or
// stored.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// clientKey is the rate-limit key for the caller: its address, to be hashed
// by the limiter.
func clientKey(c echo.Context) string { return "ip:" + rateKeyAddr(c.RealIP()) }

// rateKeyAddr is the part of a client address that rate limits key on: an
// IPv4 address as is, an IPv6 address by its /64. One subscriber usually
// holds a whole /64, so keying on the full IPv6 address would hand out a
// fresh bucket (and a new map entry) for every address it cares to use.
func rateKeyAddr(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
