package agent

// Log attribute keys. Every log line of the agent is an aggregate: counts,
// revisions, durations, names of checks. No line carries a peer's public
// key, allowed IP or endpoint, at any level.
//
// New wraps the agent's logger with an allowlist of exactly these keys
// (internal/logpolicy): an attribute under any other key is dropped, and
// panics in tests, so a new key is declared here, where it is reviewed.
// TestLogKeys checks that logKeys lists every constant of this block.
const (
	keyErr        = "err"
	keyRevision   = "revision"
	keySince      = "since"
	keyPeers      = "peers"
	keySet        = "set"
	keyRemoved    = "removed"
	keyInvalid    = "invalid"
	keyCalls      = "calls"
	keyDuration   = "duration"
	keyServer     = "server"
	keyAttempt    = "attempt"
	keyRetryIn    = "retry_in"
	keyBackend    = "backend"
	keyInterface  = "interface"
	keyExisted    = "existed"
	keyNodeID     = "node_id"
	keyScrubbed   = "scrubbed"
	keyRepaired   = "repaired"
	keyFailed     = "failed"
	keyVersion    = "version"
	keyFormat     = "format"
	keyFull       = "full"
	keySysctl     = "sysctl"
	keyCommand    = "command"
	keyMTU        = "mtu"
	keyEgress     = "egress"
	keyApplied    = "applied"
	keyNotApplied = "not_applied"
	keyPeerLimit  = "peer_limit"
	keyRead       = "read_device"
)

// logKeys is the allowlist the agent's logger is wrapped with.
var logKeys = []string{
	keyErr, keyRevision, keySince, keyPeers, keySet, keyRemoved, keyInvalid, keyCalls, keyDuration, keyServer,
	keyAttempt, keyRetryIn, keyBackend, keyInterface, keyExisted, keyNodeID, keyScrubbed, keyRepaired, keyFailed,
	keyVersion, keyFormat, keyFull, keySysctl, keyCommand, keyMTU, keyEgress,
	keyApplied, keyNotApplied, keyPeerLimit, keyRead,
}
