package controlplane

import (
	"net"

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
func clientKey(c echo.Context) string { return "ip:" + c.RealIP() }
