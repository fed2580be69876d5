package controlplane

import (
	"net/http"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestDedicatedPools: an owner on a plan with own nodes runs a node in a
// dedicated pool; it carries that owner's devices and no other owner's,
// the owner sees only their own pools and nodes, the operator sees all,
// and the plan's node limit holds.
func TestDedicatedPools(t *testing.T) {
	w := newSyncWorld(t) // owner A on "pro" (2 own nodes), with an app, key and a shared-pool node
	h := w.h
	var pool api.Pool
	h.Do(request{Method: "POST", Path: "/api/v1/pools", Token: w.owner.Token,
		Body: api.PoolInput{Name: "home", Region: "home", Country: "NL", City: "Delft"}}).MustStatus(t, http.StatusCreated).MustDecode(t, &pool)
	if pool.OwnerID == nil || *pool.OwnerID != w.owner.Owner.ID {
		t.Fatalf("pool owner = %v", pool.OwnerID)
	}
	enroll := func(token string) response {
		var et api.EnrollmentToken
		h.Do(request{Method: "POST", Path: "/api/v1/pools/" + pool.ID + "/enrollment-tokens", Token: token}).
			MustStatus(t, http.StatusCreated).MustDecode(t, &et)
		return h.Do(request{Method: "POST", Path: "/agent/v1/enroll",
			Body: api.EnrollRequest{Token: et.Token, Name: "own", PublicKey: newWGKey(t), Endpoint: "198.51.100.7:51820"}})
	}
	var own api.EnrollResponse
	enroll(w.owner.Token).MustStatus(t, http.StatusCreated).MustDecode(t, &own)
	var ownTok api.NodeToken
	h.Do(request{Method: "POST", Path: "/agent/v1/token", Token: own.Credential}).MustStatus(t, 200).MustDecode(t, &ownTok)
	enroll(w.owner.Token).MustStatus(t, http.StatusCreated)
	enroll(w.owner.Token).MustHaveError(t, wantErr{Status: http.StatusForbidden, Code: api.CodePlanLimit}) // pro allows 2

	// Owner B, also on pro, with a device of their own.
	b := h.MustOwner()
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: b.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, 200)
	var appB api.App
	h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: b.Token, Body: api.AppInput{Name: "b"}}).MustStatus(t, 201).MustDecode(t, &appB)
	var keyB api.APIKeyCreated
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + appB.ID + "/keys", Token: b.Token, Body: api.APIKeyInput{Name: "b"}}).MustStatus(t, 201).MustDecode(t, &keyB)
	var devB api.DeviceCreated
	h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: keyB.Key, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 201).MustDecode(t, &devB)
	devA := w.register(t)

	snap := w.peers(t, ownTok.Token, 0)
	if got := keysOf(snap.Upserts); len(got) != 1 || got[0] != devA.PublicKey {
		t.Errorf("dedicated node carries %v; want only owner A's device %s", got, devA.PublicKey)
	}
	shared := w.peers(t, w.nodeToken, 0)
	if len(shared.Upserts) != 2 {
		t.Errorf("shared node carries %d devices; want both owners' 2", len(shared.Upserts))
	}
	for _, s := range devB.Servers {
		if s.ID == own.NodeID {
			t.Error("owner B's device was offered owner A's own node")
		}
	}
	var srv api.ServerList
	h.Do(request{Method: "GET", Path: "/api/v1/servers", Token: w.key}).MustStatus(t, 200).MustDecode(t, &srv)
	if len(srv.Servers) != 3 {
		t.Errorf("owner A's servers = %d; want the shared node and both own nodes", len(srv.Servers))
	}

	// Owners see only their own pools and nodes; the operator sees all.
	var pools api.PoolList
	h.Do(request{Method: "GET", Path: "/api/v1/pools", Token: b.Token}).MustStatus(t, 200).MustDecode(t, &pools)
	if len(pools.Pools) != 0 {
		t.Errorf("owner B sees pools %+v", pools.Pools)
	}
	var nodes api.NodeList
	h.Do(request{Method: "GET", Path: "/api/v1/nodes", Token: b.Token}).MustStatus(t, 200).MustDecode(t, &nodes)
	if len(nodes.Nodes) != 0 {
		t.Errorf("owner B sees nodes %+v", nodes.Nodes)
	}
	h.Do(request{Method: "POST", Path: "/api/v1/pools/" + pool.ID + "/enrollment-tokens", Token: b.Token}).MustStatus(t, http.StatusNotFound)
	h.Do(request{Method: "DELETE", Path: "/api/v1/nodes/" + own.NodeID, Token: b.Token}).MustStatus(t, http.StatusNotFound)
	h.Do(request{Method: "GET", Path: "/api/v1/nodes", Token: w.owner.Token}).MustStatus(t, 200).MustDecode(t, &nodes)
	if len(nodes.Nodes) != 2 {
		t.Errorf("owner A sees %d own nodes; want 2", len(nodes.Nodes))
	}
	h.Do(request{Method: "GET", Path: "/api/v1/admin/nodes", Token: w.admin}).MustStatus(t, 200).MustDecode(t, &nodes)
	if len(nodes.Nodes) != 3 {
		t.Errorf("the operator sees %d nodes; want all 3", len(nodes.Nodes))
	}

	// A plan without own nodes cannot create a dedicated pool.
	c := h.MustOwner()
	h.Do(request{Method: "POST", Path: "/api/v1/pools", Token: c.Token, Body: api.PoolInput{Name: "home", Region: "r", Country: "DE", City: "Köln"}}).
		MustHaveError(t, wantErr{Status: http.StatusForbidden, Code: api.CodePlanLimit})

	// Removing the owner's node frees a slot.
	h.Do(request{Method: "DELETE", Path: "/api/v1/nodes/" + own.NodeID, Token: w.owner.Token}).MustStatus(t, http.StatusNoContent)
	enroll(w.owner.Token).MustStatus(t, http.StatusCreated)
}
