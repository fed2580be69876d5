package agent

// Log attribute keys. Every log line of the agent is an aggregate: counts,
// revisions, durations, names of checks. No line carries a peer's public
// key, allowed IP or endpoint, at any level.
const (
	keyErr       = "err"
	keyRevision  = "revision"
	keySince     = "since"
	keyPeers     = "peers"
	keySet       = "set"
	keyRemoved   = "removed"
	keyInvalid   = "invalid"
	keyCalls     = "calls"
	keyDuration  = "duration"
	keyServer    = "server"
	keyAttempt   = "attempt"
	keyRetryIn   = "retry_in"
	keyBackend   = "backend"
	keyInterface = "interface"
	keyExisted   = "existed"
	keyNodeID    = "node_id"
	keyScrubbed  = "scrubbed"
	keyRepaired  = "repaired"
	keyFailed    = "failed"
	keyVersion   = "version"
	keyFormat    = "format"
	keyFull      = "full"
	keySysctl    = "sysctl"
	keyCommand   = "command"
	keyMTU       = "mtu"
	keyEgress    = "egress"
)
