// Package api holds the wire types of the Traceless HTTP API, shared by the
// control plane, the Go client, the CLI and node agents.
//
// It imports only the standard library, so agents and SDK users never pull
// in the server's dependencies (TestDeps enforces this). The no-logs promise
// is a type-level decision here: no type has a field for an end user's
// address or endpoint, a handshake time, a byte count, a user agent or a
// device-level timestamp, so nothing can send one.
package api
