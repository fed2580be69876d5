// Package agent is the Traceless node daemon: it enrolls the node, keeps
// the WireGuard peers of its interface in step with the control plane,
// scrubs what the device learns about idle clients, checks the host's
// privacy posture, and reports aggregates only.
//
// The pieces, one file each: Agent and Options (agent.go); the protocol
// client (control.go); the sync loop (sync.go); the desired peer set and
// its hash (peers.go); the pure reconcile (reconcile.go); the device lock
// every change goes through (device.go); the scrubber (scrub.go);
// posture checks (posture.go); interface setup and nftables (setup.go,
// firewall.go); the credential file (credential.go); metrics
// (metrics.go); log attribute keys, the logger's allowlist (log.go).
//
// The agent sees devices only through agent/wg's redacted view
// (wg.Control): per peer its key, allowed IPs and whether it is stale. A
// peer's endpoint, handshake time and counters never leave agent/wg
// (TestPrivacySource, TestPrivacyTypes).
//
// # State
//
// The agent's only state on disk is the credential file (--credential-file,
// JSON, mode 0600): node ID, node credential, the node's WireGuard private
// key and the last tunnel configuration. Peers live in the device and in
// memory; after a restart they come from the control plane again. A
// kernel interface outlives the agent with its peers, so a restart breaks
// no tunnel; a userspace device lives in the agent process and is
// re-created, then filled by the first (full) sync.
//
// # Sync
//
// The agent asks for a full snapshot (full=true) at start, after a
// failed apply or an answer it cannot place, and when a status report
// shows its peer set differs from the control plane's; otherwise it
// long-polls since the revision it holds, revision 0 included, and
// applies deltas. Snapshots it did not ask for, in a row, are paced with
// the error backoff, so no control plane can make it poll in a loop.
//
// # Failure
//
// The agent never wipes the device on an error. It keeps the current
// peers while the control plane is down (retrying with exponential
// backoff and jitter, failing over between URLs), while the device
// refuses a change (fetching a full snapshot next), and while the
// credential is refused (retrying every few minutes). Only the control
// plane's answer removes peers.
//
// # Capacity
//
// Each backend holds a bounded number of peers (wg.Interface.PeerLimit:
// 65,536 for the userspace device, 1,048,576 for the kernel module). A
// pool larger than that is applied as far as it fits: peers already on
// the device first, then by key; the rest wait (pending) and take places
// that removals free, in key order. The agent keeps the whole set (and
// its hash) so it stays in step with the control plane and keeps
// long-polling deltas; it logs one line when it runs out of room and one
// when everything fits again, and reports the counts in its status
// (api.OverCapacity).
//
// Only cmd/traceless-agent and tests import this package. It imports
// controlplane/api, agent/wg, wgctrl, netlink, nftables and Prometheus —
// never the store, gorm or echo (TestDeps at the repository root checks
// this).
package agent
