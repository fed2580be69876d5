package controlplane

import (
	"github.com/traceless-vpn/traceless/store"
)

// publish hands a committed change to node sync and the aggregate change
// counter. ownerID owns any removed devices, so only nodes that may carry
// that owner's devices learn the removed keys. Every store call that
// returns a Change must be followed by publish; a change that is never
// published stalls sync for gapGrace and then costs nodes a full snapshot.
func (s *Server) publish(ch store.Change, ownerID string) {
	if ch.Revision == 0 {
		return
	}
	if ch.OwnerID == "" {
		ch.OwnerID = ownerID
	}
	s.hub.publish(ch)
	s.metrics.deviceChanges.Add(float64(len(ch.Upserted) + len(ch.Removed)))
}
