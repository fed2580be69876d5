package controlplane

import (
	"github.com/traceless-vpn/traceless/store"
)

// published hands a committed device change to whatever follows changes:
// today the aggregate change counter; node sync builds on the same call.
func (s *Server) published(ch store.Change) {
	if ch.Revision == 0 {
		return
	}
	s.metrics.deviceChanges.Add(float64(len(ch.Upserted) + len(ch.Removed)))
}

// nodeOnline reports whether a node has reported its status recently. Nodes
// report through the agent API; until one has, it is offline.
func (s *Server) nodeOnline(nodeID string) bool { return false }
