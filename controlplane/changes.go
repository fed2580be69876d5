package controlplane

import (
	"context"
	"encoding/json"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// committed is the store's commit hook (installed by New): it hands each
// committed change to node sync and the aggregate change counter. The
// store calls it after every write it commits, so no handler publishes
// anything; a change that never reached the hub would stall sync for
// gapGrace and then cost nodes a full snapshot. Writes that change nothing
// nodes carry come with Revision 0 and are ignored.
//
// With PostgreSQL the change is also announced to the other replicas, so
// nodes polling any replica see writes made on any other.
func (s *Server) committed(ch store.Change) {
	if ch.Revision == 0 {
		return
	}
	s.hub.publish(ch)
	s.metrics.deviceChanges.Add(float64(len(ch.Upserted) + len(ch.Removed)))
	if s.store.Shared() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.store.Notify(ctx, encodeAnnouncement(ch)); err != nil {
			// Other replicas will treat the revision as lost after gapGrace
			// and answer with full snapshots; nothing is missed.
			s.log.Warn("announce change", logError, err.Error())
		}
	}
}

// announcement is a change as replicas tell each other of it. It carries
// the removed keys because removals live only in memory. With Node set it
// is instead a node's status report, which also lives only in memory and
// must be known to every replica for online flags and alerts to agree.
type announcement struct {
	Node   string          `json:"n,omitempty"`
	Status *api.NodeStatus `json:"st,omitempty"`

	Rev     int64    `json:"r"`
	Owner   string   `json:"o,omitempty"`
	Removed []string `json:"d,omitempty"`
	Resync  []string `json:"s,omitempty"`
	// All means the removals did not fit: every node resyncs across Rev.
	All bool `json:"a,omitempty"`
}

func encodeAnnouncement(ch store.Change) string {
	a := announcement{Rev: ch.Revision, Owner: ch.OwnerID, Removed: ch.Removed, Resync: ch.Resync}
	b, _ := json.Marshal(a)
	if len(b) > store.MaxNotifyPayload {
		b, _ = json.Marshal(announcement{Rev: ch.Revision, All: true})
	}
	return string(b)
}

// announceStatus tells the other replicas of a node's status report.
func (s *Server) announceStatus(nodeID string, st api.NodeStatus) {
	if !s.store.Shared() {
		return
	}
	b, _ := json.Marshal(announcement{Node: nodeID, Status: &st})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.Notify(ctx, string(b)); err != nil {
		s.log.Warn("announce node status", logError, err.Error())
	}
}

// listen feeds other replicas' announcements into the hub and the node
// status table. When LISTEN connects again after a break, what was
// announced meanwhile is lost: the hub skips those revisions at once
// (nodes whose deltas span them take a full snapshot) instead of waiting
// gapGrace for announcements that will not come.
func (s *Server) listen(ctx context.Context) {
	connected := func() {
		if s.listenWatch.connected() {
			s.hub.skipMissed(ctx)
		}
	}
	s.store.Listen(ctx, connected, s.listenWatch.failed, func(payload string) {
		var a announcement
		if err := json.Unmarshal([]byte(payload), &a); err != nil {
			return
		}
		if a.Node != "" && a.Status != nil {
			s.status.record(a.Node, *a.Status, s.now())
			return
		}
		if a.Rev <= 0 {
			return
		}
		if a.All {
			s.hub.publishLost(a.Rev)
			return
		}
		s.hub.publish(store.Change{Revision: a.Rev, OwnerID: a.Owner, Removed: a.Removed, Resync: a.Resync})
	})
}
