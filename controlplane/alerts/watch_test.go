package alerts

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The watcher's evaluation on its own: nodes, their reports and the
// revision in, events out, with no store and no server.

var (
	t0        = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	okPosture = api.Posture{ConntrackAccountingOff: true, ConntrackTimestampsOff: true, NoLogRules: true, SwapOff: true,
		NotDumpable: true, CoreSizeZero: true, NoStateOnDisk: true}
	owner  = "owner-1"
	shared = store.Pool{ID: "p-shared", Name: "Frankfurt", Region: "eu"}
	mine   = store.Pool{ID: "p-mine", Name: "Office", Region: "home", OwnerID: &owner}
)

func node(id string, pool store.Pool, enabled bool) store.NodeWithPool {
	return store.NodeWithPool{Node: store.Node{ID: id, PoolID: pool.ID, Name: id, Enabled: enabled}, Pool: pool}
}

// report is a status report a node sends at a step, applying a revision
// with a posture.
type report struct {
	applied int64
	posture api.Posture
	over    *api.OverCapacity
}

// watchStep is one check: the clock moves on by after, the reports arrive
// at the new time, the current revision is rev (0: unchanged) and the
// nodes are as listed (nil: as before); want are the events, as
// "kind subject: detail".
type watchStep struct {
	after   time.Duration
	rev     int64
	nodes   []store.NodeWithPool
	reports map[string]report
	want    []string
}

func eventText(ev api.AlertEvent) string {
	subject := ev.Pool.Name
	if ev.Node != nil {
		subject = ev.Node.Name
	}
	return ev.Kind + " " + subject + ": " + ev.Detail
}

// TestEvaluate runs the watcher over sequences of checks.
func TestEvaluate(t *testing.T) {
	two := []store.NodeWithPool{node("fra-1", shared, true), node("fra-2", shared, true)}
	one := []store.NodeWithPool{node("fra-1", shared, true)}
	healthy := report{applied: 1, posture: okPosture}
	for _, tc := range []struct {
		name  string
		steps []watchStep
	}{
		{"a node that never reports is offline after the window, with its pool", []watchStep{
			{nodes: one, rev: 1},
			{after: 89 * time.Second},
			{after: 2 * time.Second, want: []string{"node_offline fra-1: no status report within 1m30s", "pool_down Frankfurt: no node of the pool is online"}},
			{after: time.Minute},
		}},
		{"a reporting node goes offline and comes back", []watchStep{
			{nodes: one, rev: 1, reports: map[string]report{"fra-1": healthy}},
			{after: 90 * time.Second, want: []string{"node_offline fra-1: no status report for more than 1m30s", "pool_down Frankfurt: no node of the pool is online"}},
			{after: 30 * time.Second},
			{reports: map[string]report{"fra-1": healthy}, want: []string{"node_online fra-1: reporting again", "pool_up Frankfurt: 1 of 1 nodes online"}},
		}},
		{"one node of two offline leaves the pool up", []watchStep{
			{nodes: two, rev: 1, reports: map[string]report{"fra-1": healthy, "fra-2": healthy}},
			{after: 60 * time.Second, reports: map[string]report{"fra-2": healthy}},
			{after: 31 * time.Second, want: []string{"node_offline fra-1: no status report for more than 1m30s"}},
			{after: 60 * time.Second, want: []string{"node_offline fra-2: no status report for more than 1m30s", "pool_down Frankfurt: no node of the pool is online"}},
		}},
		{"posture regresses and recovers", []watchStep{
			{nodes: one, rev: 1, reports: map[string]report{"fra-1": healthy}},
			{after: 30 * time.Second, reports: map[string]report{"fra-1": {applied: 1, posture: func() api.Posture {
				p := okPosture
				p.NotDumpable, p.SwapOff = false, false
				return p
			}()}}, want: []string{"posture_regressed fra-1: failing: swap_off, not_dumpable"}},
			{after: 30 * time.Second, reports: map[string]report{"fra-1": healthy}, want: []string{"posture_recovered fra-1: passing again: swap_off, not_dumpable"}},
		}},
		{"a node trailing a revision longer than SyncLag lags, then catches up", []watchStep{
			{nodes: one, rev: 1, reports: map[string]report{"fra-1": healthy}},
			{after: 10 * time.Second, rev: 2, reports: map[string]report{"fra-1": healthy}},
			{after: 59 * time.Second, reports: map[string]report{"fra-1": healthy}},
			{after: 2 * time.Second, reports: map[string]report{"fra-1": healthy}, want: []string{"sync_lag fra-1: has not applied changes made more than 1m0s before its report"}},
			{after: 5 * time.Second, reports: map[string]report{"fra-1": {applied: 2, posture: okPosture}}, want: []string{"sync_recovered fra-1: caught up"}},
		}},
		{"a node over capacity, and back", []watchStep{
			{nodes: one, rev: 1, reports: map[string]report{"fra-1": healthy}},
			{after: 30 * time.Second, reports: map[string]report{"fra-1": {applied: 1, posture: okPosture,
				over: &api.OverCapacity{Desired: 70000, Applied: 65536, NotApplied: 4464}}},
				want: []string{"node_over_capacity fra-1: its pool has more devices than its WireGuard backend holds (at most 65536 peers): " +
					"it applies part of the pool and the rest wait; enroll a node on the kernel backend or split the pool"}},
			{after: 30 * time.Second, reports: map[string]report{"fra-1": {applied: 1, posture: okPosture,
				over: &api.OverCapacity{Desired: 70001, Applied: 65536, NotApplied: 4465}}}},
			{after: 30 * time.Second, reports: map[string]report{"fra-1": healthy}, want: []string{"node_capacity_ok fra-1: every device of its pool fits on it again"}},
		}},
		{"a disabled node is not watched, nor is a pool of disabled nodes", []watchStep{
			{nodes: []store.NodeWithPool{node("fra-1", shared, false)}, rev: 1},
			{after: 5 * time.Minute},
			{nodes: one, reports: map[string]report{"fra-1": healthy}},
			{after: 5 * time.Minute, nodes: []store.NodeWithPool{node("fra-1", shared, false)}},
		}},
		{"a re-enabled node is judged afresh: a stale report makes it offline at once", []watchStep{
			{nodes: one, rev: 1, reports: map[string]report{"fra-1": healthy}},
			{after: time.Minute, nodes: []store.NodeWithPool{node("fra-1", shared, false)}},
			{after: time.Minute, nodes: one, want: []string{"node_offline fra-1: no status report within 1m30s", "pool_down Frankfurt: no node of the pool is online"}},
			{reports: map[string]report{"fra-1": healthy}, want: []string{"node_online fra-1: reporting again", "pool_up Frankfurt: 1 of 1 nodes online"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWatcher(time.Minute, 5*time.Second, 90*time.Second)
			now, rev := t0, int64(0)
			var nodes []store.NodeWithPool
			reports := map[string]Report{}
			status := func(id string) (Report, bool) {
				r, ok := reports[id]
				return r, ok
			}
			for i, st := range tc.steps {
				now = now.Add(st.after)
				if st.rev != 0 {
					rev = st.rev
				}
				if st.nodes != nil {
					nodes = st.nodes
				}
				for id, r := range st.reports {
					reports[id] = Report{NodeStatus: api.NodeStatus{AppliedRevision: r.applied, Posture: r.posture, InterfaceUp: true,
						PeerLimit: 65536, OverCapacity: r.over}, At: now}
				}
				var got []string
				for _, ev := range w.evaluate(nodes, status, now, rev) {
					got = append(got, eventText(ev))
				}
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Errorf("step %d (+%v): events (-want +got):\n%s", i, now.Sub(t0), diff)
				}
			}
		})
	}
}

// TestEvaluateEventFacts: events carry the pool's tally, and aggregate
// numbers only for an owner's own (dedicated) nodes.
func TestEvaluateEventFacts(t *testing.T) {
	w := newWatcher(time.Minute, 5*time.Second, 90*time.Second)
	nodes := []store.NodeWithPool{node("fra-1", shared, true), node("fra-2", shared, true), node("office-1", mine, true)}
	reports := map[string]Report{}
	for _, id := range []string{"fra-1", "fra-2", "office-1"} {
		reports[id] = Report{NodeStatus: api.NodeStatus{AppliedRevision: 7, PeerCount: 12, Posture: okPosture}, At: t0}
	}
	status := func(id string) (Report, bool) { r, ok := reports[id]; return r, ok }
	if evs := w.evaluate(nodes, status, t0, 7); len(evs) != 0 {
		t.Fatalf("first check: %v", evs)
	}
	reports["fra-2"] = Report{NodeStatus: api.NodeStatus{AppliedRevision: 7, PeerCount: 12, Posture: okPosture}, At: t0.Add(60 * time.Second)}
	evs := w.evaluate(nodes, status, t0.Add(91*time.Second), 9)
	var kinds []string
	for _, ev := range evs {
		if ev.Node == nil {
			continue // the pool event, checked below
		}
		kinds = append(kinds, fmt.Sprintf("%s %s %d/%d", ev.Kind, ev.Node.Name, ev.Pool.NodesOnline, ev.Pool.Nodes))
		switch ev.Node.Name {
		case "fra-1":
			if ev.Node.PeerCount != nil || ev.Node.AppliedRevision != nil || ev.Node.CurrentRevision != nil || ev.Pool.Dedicated {
				t.Errorf("a shared node's event carries aggregate numbers: %+v", ev.Node)
			}
		case "office-1":
			if ev.Node.PeerCount == nil || *ev.Node.PeerCount != 12 || *ev.Node.AppliedRevision != 7 || *ev.Node.CurrentRevision != 9 || !ev.Pool.Dedicated {
				t.Errorf("a dedicated node's event lacks its numbers: %+v", ev.Node)
			}
		}
		if ev.Node.Posture == nil || *ev.Node.Posture != okPosture {
			t.Errorf("%s: posture %v", ev.Node.Name, ev.Node.Posture)
		}
	}
	// Office's only node is offline: its pool goes down; Frankfurt keeps
	// fra-2. Pool events come after node events.
	if diff := cmp.Diff([]string{"node_offline fra-1 1/2", "node_offline office-1 0/1"}, kinds[:2]); diff != "" || len(evs) != 3 ||
		evs[2].Kind != api.AlertPoolDown || evs[2].Pool.Name != "Office" || evs[2].Node != nil {
		t.Errorf("events (-want +got):\n%s\n%v", diff, strings.Join(kinds, "; "))
	}
}

func TestRevAt(t *testing.T) {
	w := newWatcher(time.Minute, 5*time.Second, 90*time.Second)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.sample(t0, 1, time.Minute)
	w.sample(t0.Add(10*time.Second), 1, time.Minute) // unchanged: not recorded
	w.sample(t0.Add(20*time.Second), 3, time.Minute)
	for _, tc := range []struct {
		at   time.Duration
		want int64
		ok   bool
	}{{-time.Second, 0, false}, {0, 1, true}, {19 * time.Second, 1, true}, {20 * time.Second, 3, true}, {time.Hour, 3, true}} {
		if got, ok := w.revAt(t0.Add(tc.at)); got != tc.want || ok != tc.ok {
			t.Errorf("revAt(+%v) = %d, %v; want %d, %v", tc.at, got, ok, tc.want, tc.ok)
		}
	}
	// Old samples go, but the one that says what was current at the cut stays.
	w.sample(t0.Add(2*time.Minute), 4, time.Minute)
	if got, ok := w.revAt(t0.Add(time.Minute)); got != 3 || !ok {
		t.Errorf("after pruning, revAt(+1m) = %d, %v; want 3", got, ok)
	}
	if len(w.revs) != 2 {
		t.Errorf("kept %d samples, want 2", len(w.revs))
	}
}
