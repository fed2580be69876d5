package alerts

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The health watcher. Agents report their aggregate status every 30 s
// (Deps.Status gives the last report); each check compares every enabled
// node's last report with what the watcher saw before and turns changes
// into events:
//
//   - node_offline / node_online: no report within the online window, and
//     back. A node that has not reported within the online window of the
//     watcher first seeing it (a restart of the control plane, a new
//     enrollment) counts as offline too.
//   - posture_regressed / posture_recovered: a posture check went from
//     passing to failing, or back.
//   - sync_lag / sync_recovered: at the time of its report, the node had
//     not applied a revision that had been current for longer than
//     SyncLag; and when it has.
//   - pool_down / pool_up: no enabled node of a pool is online, and back.
//   - node_over_capacity / node_capacity_ok: the node reports that its
//     pool has more devices than its WireGuard backend holds (it applies
//     part of the pool), and that everything fits again.
//
// The watcher's state lives in memory only and starts empty: nothing about
// node health is stored unless an owner opts in to a history.
//
// Only the replica that holds the "alerts" leadership evaluates (Run), so
// events are not repeated. It judges from the status reports it received
// itself: with several replicas behind a load balancer, a node whose
// reports reach another replica looks offline to it. Alerts are sound with
// one replica, or with agents' status reports routed to one replica;
// replicas do not share status reports.

// watcher is what the health watcher remembers between checks, with its
// thresholds.
type watcher struct {
	syncLag, every, online time.Duration

	nodes map[string]*nodeHealth
	pools map[string]*poolHealth
	revs  []revSample // when each revision was first seen current, oldest first
}

type nodeHealth struct {
	firstSeen  time.Time // when the watcher first saw the node
	known      bool      // online is determined
	online     bool
	posture    api.Posture
	hasPosture bool
	lagging    bool
	over       bool // over capacity
}

type poolHealth struct{ up bool }

type revSample struct {
	at  time.Time
	rev int64
}

func newWatcher(syncLag, every, online time.Duration) watcher {
	return watcher{syncLag: syncLag, every: every, online: online,
		nodes: map[string]*nodeHealth{}, pools: map[string]*poolHealth{}}
}

// sample records the current revision at now and forgets samples older
// than keep, except the last one before that (it says what was current
// then).
func (w *watcher) sample(now time.Time, rev int64, keep time.Duration) {
	if n := len(w.revs); n == 0 || w.revs[n-1].rev != rev {
		w.revs = append(w.revs, revSample{at: now, rev: rev})
	}
	cut := now.Add(-keep)
	for len(w.revs) > 1 && !w.revs[1].at.After(cut) {
		w.revs = w.revs[1:]
	}
}

// revAt returns the revision that was current at t, if the watcher knows.
func (w *watcher) revAt(t time.Time) (int64, bool) {
	rev, ok := int64(0), false
	for _, s := range w.revs {
		if s.at.After(t) {
			break
		}
		rev, ok = s.rev, true
	}
	return rev, ok
}

// Check evaluates every node's health once and delivers the resulting
// events. Run calls it every Options.Every while this replica leads.
func (a *Alerter) Check(ctx context.Context) error {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	nodes, err := a.deps.Store.ListNodes(ctx, "")
	if err != nil {
		return err
	}
	evs := a.watch.evaluate(nodes, a.deps.Status, a.deps.Now(), a.deps.Revision())
	if len(evs) == 0 {
		return nil
	}
	return a.dispatch(ctx, evs)
}

// poolTally counts a pool's enabled nodes during one evaluation.
type poolTally struct {
	pool           store.Pool
	nodes, online  int
	known, pending int
}

// evaluate updates the watch state from the nodes' last reports (status)
// at now, with cur the current revision, and returns the events, node
// events first, in the order of nodes.
func (w *watcher) evaluate(nodes []store.NodeWithPool, status func(string) (Report, bool), now time.Time, cur int64) []api.AlertEvent {
	w.sample(now, cur, w.syncLag+w.online+w.every)
	var evs []api.AlertEvent
	seen := map[string]bool{}
	tallies := map[string]*poolTally{}
	var order []string
	for _, n := range nodes {
		if !n.Enabled {
			continue // a disabled node serves nobody; it is not watched
		}
		seen[n.ID] = true
		t := tallies[n.PoolID]
		if t == nil {
			t = &poolTally{pool: n.Pool}
			tallies[n.PoolID] = t
			order = append(order, n.PoolID)
		}
		h := w.nodes[n.ID]
		if h == nil {
			h = &nodeHealth{firstSeen: now}
			w.nodes[n.ID] = h
		}
		st, reported := status(n.ID)
		online := reported && now.Sub(st.At) < w.online
		t.nodes++
		if online {
			t.online++
		}
		if !reported && now.Sub(h.firstSeen) < w.online {
			t.pending++ // not due to have reported yet
			continue
		}
		t.known++
		emit := func(kind, detail string) {
			evs = append(evs, nodeEvent(kind, detail, n, st, reported, online, cur, now))
		}
		switch {
		case !h.known:
			h.known, h.online = true, online
			if !online {
				emit(api.AlertNodeOffline, fmt.Sprintf("no status report within %s", w.online))
			}
		case h.online && !online:
			h.online = false
			emit(api.AlertNodeOffline, fmt.Sprintf("no status report for more than %s", w.online))
		case !h.online && online:
			h.online = true
			emit(api.AlertNodeOnline, "reporting again")
		}
		if !online {
			continue // posture and sync are judged from fresh reports
		}
		if h.hasPosture {
			failed, fixed := postureDiff(h.posture, st.Posture)
			if len(failed) > 0 {
				emit(api.AlertPostureRegressed, "failing: "+strings.Join(failed, ", "))
			}
			if len(fixed) > 0 {
				emit(api.AlertPostureRecovered, "passing again: "+strings.Join(fixed, ", "))
			}
		}
		h.posture, h.hasPosture = st.Posture, true
		need, ok := w.revAt(st.At.Add(-w.syncLag))
		lag := ok && st.AppliedRevision < need
		switch {
		case lag && !h.lagging:
			emit(api.AlertSyncLag, fmt.Sprintf("has not applied changes made more than %s before its report", w.syncLag))
		case !lag && h.lagging:
			emit(api.AlertSyncRecovered, "caught up")
		}
		h.lagging = lag
		switch over := st.OverCapacity != nil; {
		case over && !h.over:
			emit(api.AlertNodeOverCapacity, fmt.Sprintf("its pool has more devices than its WireGuard backend holds (at most %d peers): "+
				"it applies part of the pool and the rest wait; enroll a node on the kernel backend or split the pool", st.PeerLimit))
			h.over = true
		case !over && h.over:
			emit(api.AlertNodeCapacityOK, "every device of its pool fits on it again")
			h.over = false
		}
	}
	for id := range w.nodes {
		if !seen[id] {
			delete(w.nodes, id) // removed or disabled
		}
	}
	for _, id := range order {
		t := tallies[id]
		if t.known == 0 || t.pending > 0 {
			continue // undetermined: keep what was known
		}
		up := t.online > 0
		ph := w.pools[id]
		switch {
		case ph == nil:
			w.pools[id] = &poolHealth{up: up}
			if !up {
				evs = append(evs, poolEvent(api.AlertPoolDown, "no node of the pool is online", t.pool, now))
			}
		case ph.up && !up:
			ph.up = false
			evs = append(evs, poolEvent(api.AlertPoolDown, "no node of the pool is online", t.pool, now))
		case !ph.up && up:
			ph.up = true
			evs = append(evs, poolEvent(api.AlertPoolUp, fmt.Sprintf("%d of %d nodes online", t.online, t.nodes), t.pool, now))
		}
	}
	for id := range w.pools {
		if tallies[id] == nil {
			delete(w.pools, id)
		}
	}
	for i := range evs {
		if t := tallies[evs[i].Pool.ID]; t != nil {
			evs[i].Pool.Nodes, evs[i].Pool.NodesOnline = t.nodes, t.online
		}
	}
	return evs
}

func alertPool(p store.Pool) api.AlertPool {
	return api.AlertPool{ID: p.ID, Name: p.Name, Region: p.Region, Dedicated: p.OwnerID != nil}
}

func poolEvent(kind, detail string, p store.Pool, now time.Time) api.AlertEvent {
	return api.AlertEvent{ID: uuid.NewString(), Kind: kind, OccurredAt: now.UTC(), Pool: alertPool(p), Detail: detail}
}

// nodeEvent describes a node. Aggregate numbers are given for an owner's
// own (dedicated) node only: a shared node's peer count and revisions
// would tell its many owners about each other's devices and changes.
func nodeEvent(kind, detail string, n store.NodeWithPool, st Report, reported, online bool, cur int64, now time.Time) api.AlertEvent {
	node := &api.AlertNode{ID: n.ID, Name: n.Name, Online: online}
	if reported {
		p := st.Posture
		node.InterfaceUp, node.Version, node.Posture = st.InterfaceUp, st.Version, &p
		if n.Pool.OwnerID != nil {
			peers, applied := st.PeerCount, st.AppliedRevision
			node.PeerCount, node.AppliedRevision, node.CurrentRevision = &peers, &applied, &cur
		}
	}
	return api.AlertEvent{ID: uuid.NewString(), Kind: kind, OccurredAt: now.UTC(), Pool: alertPool(n.Pool), Node: node, Detail: detail}
}

// postureDiff lists the posture checks (by JSON name) that went from
// passing to failing and from failing to passing.
func postureDiff(was, is api.Posture) (failed, fixed []string) {
	wv, iv := reflect.ValueOf(was), reflect.ValueOf(is)
	t := wv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() != reflect.Bool {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch before, after := wv.Field(i).Bool(), iv.Field(i).Bool(); {
		case before && !after:
			failed = append(failed, name)
		case !before && after:
			fixed = append(fixed, name)
		}
	}
	return failed, fixed
}

// dispatch hands each event to the owners whose devices its pool carries
// and who subscribe to its kind: queued for their channels, and stored in
// their history when they opted in to one. The event filter applies to
// both; the store checks it again when it writes the history.
func (a *Alerter) dispatch(ctx context.Context, evs []api.AlertEvent) error {
	var pools []string
	seen := map[string]bool{}
	for _, ev := range evs {
		if !seen[ev.Pool.ID] {
			seen[ev.Pool.ID] = true
			pools = append(pools, ev.Pool.ID)
		}
	}
	subs, err := a.deps.Store.AlertSubscribers(ctx, pools)
	if err != nil {
		return err
	}
	var errs []error
	for _, sub := range subs {
		var send []api.AlertEvent
		var hist []store.AlertHistory
		for _, ev := range evs {
			if !sub.Pools[ev.Pool.ID] || !wantsKind(sub.Settings, ev.Kind) {
				continue
			}
			send = append(send, ev)
			if sub.Settings.KeepHistory {
				hist = append(hist, historyOf(ev))
			}
		}
		if len(send) > 0 {
			if _, err := a.Enqueue(ctx, sub.Settings, send); err != nil {
				errs = append(errs, err)
			}
		}
		if len(hist) > 0 {
			if _, err := a.deps.Store.AddAlertHistory(ctx, sub.Settings.OwnerID, hist); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// wantsKind reports whether the settings subscribe to kind; a test event
// goes to every channel.
func wantsKind(a store.AlertSettings, kind string) bool {
	return kind == api.AlertTest || a.Wants(kind)
}

func historyOf(ev api.AlertEvent) store.AlertHistory {
	h := store.AlertHistory{Kind: ev.Kind, PoolID: ev.Pool.ID, PoolName: ev.Pool.Name, Detail: ev.Detail, OccurredAt: ev.OccurredAt}
	if ev.Node != nil {
		h.NodeID, h.NodeName = ev.Node.ID, ev.Node.Name
	}
	return h
}
