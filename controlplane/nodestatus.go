package controlplane

import (
	"context"
	"sync"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/alerts"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// onlineWindow is how recent a node's last status must be for it to count
// as online; agents report every 30 s.
const onlineWindow = 90 * time.Second

// nodeStatuses holds each node's last aggregate status report, in memory
// only: it is operational state, not history.
type nodeStatuses struct {
	mu sync.Mutex
	m  map[string]nodeStatus
}

type nodeStatus struct {
	api.NodeStatus
	at time.Time
}

func (ns *nodeStatuses) record(nodeID string, st api.NodeStatus, at time.Time) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.m == nil {
		ns.m = map[string]nodeStatus{}
	}
	ns.m[nodeID] = nodeStatus{NodeStatus: st, at: at}
}

func (ns *nodeStatuses) get(nodeID string) (nodeStatus, bool) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	st, ok := ns.m[nodeID]
	return st, ok
}

func (ns *nodeStatuses) forget(nodeID string) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	delete(ns.m, nodeID)
}

// nodeOnline reports whether a node reported within onlineWindow.
func (s *Server) nodeOnline(nodeID string) bool {
	st, ok := s.status.get(nodeID)
	return ok && s.now().Sub(st.at) < onlineWindow
}

// poolHashes caches the expected peer set hash of a pool at a revision, so
// that status reports are checked without scanning a large pool each time.
type poolHashes struct {
	mu sync.Mutex
	m  map[string]poolHash
}

type poolHash struct {
	rev  int64
	hash string
	at   time.Time
}

// hashRefresh bounds how often a pool's hash is recomputed.
const hashRefresh = 10 * time.Second

// peerSetDiffers reports whether a node that says it applied the current
// revision holds a different peer set than the server would send it.
func (s *Server) peerSetDiffers(ctx context.Context, n store.Node, st api.NodeStatus) (bool, error) {
	cur := s.hub.current()
	if st.AppliedRevision != cur {
		return false, nil // still catching up; compare when it is current
	}
	var zero api.PeerSetHash
	if !n.Enabled {
		return st.PeerSetHash != zero.String(), nil
	}
	s.hashes.mu.Lock()
	ph, ok := s.hashes.m[n.PoolID]
	s.hashes.mu.Unlock()
	if !ok || ph.rev != cur {
		if ok && s.now().Sub(ph.at) < hashRefresh {
			return false, nil
		}
		var h api.PeerSetHash
		err := s.store.PoolPeers(ctx, n.PoolID, 0, cur, func(r store.PeerRow) error {
			h.Toggle(api.DevicePeer(r.PublicKey, r.IPv4, r.IPv6))
			return nil
		})
		if err != nil {
			return false, err
		}
		ph = poolHash{rev: cur, hash: h.String(), at: s.now()}
		s.hashes.mu.Lock()
		if s.hashes.m == nil {
			s.hashes.m = map[string]poolHash{}
		}
		s.hashes.m[n.PoolID] = ph
		s.hashes.mu.Unlock()
	}
	return st.PeerSetHash != ph.hash, nil
}

// nodeReport is a node's last status report for the health watcher
// (package alerts).
func (s *Server) nodeReport(nodeID string) (alerts.Report, bool) {
	st, ok := s.status.get(nodeID)
	return alerts.Report{NodeStatus: st.NodeStatus, At: st.at}, ok
}
