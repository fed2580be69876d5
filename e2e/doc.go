// Package e2e holds Traceless's end-to-end tests: the control plane, the
// node agent and a real WireGuard client in network namespaces the tests
// create. They need root, iproute2 and /dev/net/tun; elsewhere they skip
// with the reason (and fail when CI=true, because CI must run them).
//
// Nothing imports it.
package e2e
