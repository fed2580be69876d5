// Package wg is the node agent's view of WireGuard: a small Client
// interface over wgctrl with a redacted reader on top (Control), a Links interface for the network interface
// itself, the kernel and userspace backends behind them, and stateful
// fakes of both for tests.
//
// Both backends are driven through wgctrl, so the agent has one code path:
// the kernel backend creates a "wireguard" link and talks generic netlink;
// the userspace backend runs golang.zx2c4.com/wireguard in the agent
// process with a UAPI socket in /var/run/wireguard, which wgctrl (and
// wg(8)) use like any userspace implementation.
//
// Only the agent (package agent), its command and tests import this
// package. It imports wgctrl, wireguard-go and netlink — nothing of
// Traceless's own, and never the store, gorm or echo.
//
// Privacy: a device (and the Fake) knows each client's endpoint, last
// handshake time and byte counters. They do not leave this package:
// Interface.Client is a Control, which hands out a redacted Device (per
// peer its key, allowed IPs and whether it is stale, view.go) and nothing
// logs them. The scrubber asks DeviceStale; stale is the one comparison
// made with those fields.
package wg
