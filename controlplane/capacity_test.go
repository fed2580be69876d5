package controlplane

import (
	"net/http"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestNodeCapacity: operators see a node's peer limit and over_capacity
// (API and nodes page), and the control plane warns when a pool's device
// count nears its smallest node's limit.
func TestNodeCapacity(t *testing.T) {
	w := newAlertWorld(t)
	pools := func() api.Pool {
		t.Helper()
		var out api.PoolList
		w.h.Do(request{Method: "GET", Path: "/api/v1/admin/pools", Token: w.admin}).MustStatus(t, http.StatusOK).MustDecode(t, &out)
		for _, p := range out.Pools {
			if p.ID == w.pool.ID {
				return p
			}
		}
		t.Fatal("pool not listed")
		return api.Pool{}
	}
	if c := pools().Capacity; c != nil {
		t.Errorf("capacity before any report: %+v", c)
	}
	st := w.healthy()
	st.PeerCount, st.PeerLimit = 1000, 65536
	w.report(t, w.nodeToken, st)
	if c := pools().Capacity; c == nil || c.Peers != 1000 || c.SmallestNodeLimit != 65536 || c.SmallestNode == "" || c.Warning {
		t.Errorf("capacity at 1,000 peers: %+v", c)
	}
	st.PeerCount = 59000 // 90% of 65,536 is 58,982.4
	w.report(t, w.nodeToken, st)
	if c := pools().Capacity; c == nil || !c.Warning {
		t.Errorf("capacity at 59,000 of 65,536: %+v; want a warning", c)
	}
	b := newBrowser(t, w.h)
	b.signInAs(w.admin)
	if p := b.get("/admin/nodes"); !strings.Contains(p.Body, "carries 59,000 devices") || strings.Contains(p.Body, "Over capacity") {
		t.Errorf("nodes page at 59,000 peers lacks the pool warning or shows over capacity:\n%s", p.Body)
	}

	st.PeerCount = 70000
	st.OverCapacity = &api.OverCapacity{Desired: 70000, Applied: 65536, NotApplied: 4464}
	w.report(t, w.nodeToken, st)
	var nodes api.NodeList
	w.h.Do(request{Method: "GET", Path: "/api/v1/admin/nodes", Token: w.admin}).MustStatus(t, http.StatusOK).MustDecode(t, &nodes)
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].Status == nil || nodes.Nodes[0].Status.OverCapacity == nil ||
		*nodes.Nodes[0].Status.OverCapacity != *st.OverCapacity || nodes.Nodes[0].Status.PeerLimit != 65536 {
		t.Fatalf("nodes: %+v", nodes)
	}
	p := b.get("/admin/nodes")
	for _, want := range []string{"Over capacity", "holds 65,536; 4,464 wait for a place", "Peer limit", "carries 70,000 devices"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("nodes page lacks %q", want)
		}
	}
}
