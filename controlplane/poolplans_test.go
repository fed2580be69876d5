package controlplane

// A new pool serves nobody until a plan includes it. Creating a pool names
// its plans, pools say which plans include them (and flag the ones in no
// plan), and an owner whose plan grants no server is told why instead of
// getting a bare empty list.

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// mustServers GETs /api/v1/servers with key.
func (h *harness) mustServers(key string) (api.ServerList, []byte) {
	h.tb.Helper()
	r := h.Do(request{Method: http.MethodGet, Path: "/api/v1/servers", Token: key}).MustStatus(h.tb, http.StatusOK)
	var l api.ServerList
	r.MustDecode(h.tb, &l)
	return l, r.Body
}

// mustAdminPools GETs /api/v1/admin/pools, by name.
func (h *harness) mustAdminPools(token string) map[string]api.Pool {
	h.tb.Helper()
	var l api.PoolList
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/admin/pools", Token: token}).MustStatus(h.tb, http.StatusOK).MustDecode(h.tb, &l)
	out := map[string]api.Pool{}
	for _, p := range l.Pools {
		out[p.Name] = p
	}
	return out
}

func TestPoolPlansAndNoServerExplanation(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.KeyRate = -1 })
	admin := h.MustAdmin().Token
	owner := h.MustOwner()
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: owner.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, http.StatusOK)
	var app api.App
	h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: owner.Token, Body: api.AppInput{Name: "vpn"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &app)
	var key api.APIKeyCreated
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + app.ID + "/keys", Token: owner.Token, Body: api.APIKeyInput{Name: "k"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &key)

	// The seeded plans include no pool: the owner is told so.
	l, _ := h.mustServers(key.Key)
	if len(l.Servers) != 0 || l.Explanation == nil || l.Explanation.Code != api.NoServersPlanIncludesNoPool {
		t.Fatalf("servers on a plan without pools = %+v, want an empty list explained by %s", l, api.NoServersPlanIncludesNoPool)
	}
	for _, want := range []string{"Your plan (Pro) includes no server pool", "ask the operator"} {
		if !bytes.Contains([]byte(l.Explanation.Message), []byte(want)) {
			t.Errorf("explanation %q does not say %q", l.Explanation.Message, want)
		}
	}

	create := func(in api.PoolInput) response {
		return h.Do(request{Method: "POST", Path: "/api/v1/admin/pools", Token: admin, Body: in})
	}
	// Without plans: created, and flagged as serving nobody.
	var lonely api.Pool
	create(api.PoolInput{Name: "Lonely", Region: "eu", Country: "FR", City: "Paris"}).MustStatus(t, http.StatusCreated).MustDecode(t, &lonely)
	if !lonely.InNoPlan || lonely.Plans == nil || len(lonely.Plans) != 0 {
		t.Errorf("pool created without plans = %+v, want in_no_plan and plans []", lonely)
	}
	// With plans, by slug and by ID, a duplicate ignored.
	var fra api.Pool
	create(api.PoolInput{Name: "Frankfurt", Region: "eu-central", Country: "DE", City: "Frankfurt",
		Plans: []string{"pro", h.MustPlanID("business"), "pro"}}).MustStatus(t, http.StatusCreated).MustDecode(t, &fra)
	if fra.InNoPlan || !cmp.Equal(fra.Plans, []string{"business", "pro"}) {
		t.Errorf("pool created in pro and business = %+v", fra)
	}
	// An unknown plan: 400 on "plans", and no pool.
	create(api.PoolInput{Name: "Ghost", Region: "eu", Country: "DE", City: "Berlin", Plans: []string{"pro", "gold"}}).
		MustHaveError(t, wantErr{Status: http.StatusBadRequest, Code: api.CodeInvalidRequest, Field: "plans"})
	pools := h.mustAdminPools(admin)
	if _, ok := pools["Ghost"]; ok {
		t.Error("a pool with an unknown plan was created")
	}
	if p := pools["Lonely"]; !p.InNoPlan || len(p.Plans) != 0 {
		t.Errorf("listed Lonely = %+v, want in_no_plan", p)
	}
	if p := pools["Frankfurt"]; p.InNoPlan || !cmp.Equal(p.Plans, []string{"business", "pro"}) {
		t.Errorf("listed Frankfurt = %+v", p)
	}
	// The plans say so too.
	for _, pl := range h.MustListPlans("/api/v1/admin/plans", admin) {
		want := pl.Slug == "pro" || pl.Slug == "business"
		if got := len(pl.Pools) == 1 && pl.Pools[0] == fra.ID; got != want {
			t.Errorf("plan %s pools = %v", pl.Slug, pl.Pools)
		}
	}

	// The plan includes a pool, which has no node yet.
	l, _ = h.mustServers(key.Key)
	if len(l.Servers) != 0 || l.Explanation == nil || l.Explanation.Code != api.NoServersNoEnabledNode {
		t.Fatalf("servers of a pool without nodes = %+v, want %s", l, api.NoServersNoEnabledNode)
	}

	// A node joins: the list needs no explanation.
	var et api.EnrollmentToken
	h.Do(request{Method: "POST", Path: "/api/v1/admin/pools/" + fra.ID + "/enrollment-tokens", Token: admin}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &et)
	h.Do(request{Method: "POST", Path: "/agent/v1/enroll",
		Body: api.EnrollRequest{Token: et.Token, Name: "fra-1", PublicKey: newWGKey(t), Endpoint: "203.0.113.10:51820"}}).
		MustStatus(t, http.StatusCreated)
	l, raw := h.mustServers(key.Key)
	if len(l.Servers) != 1 || l.Explanation != nil || bytes.Contains(raw, []byte("explanation")) {
		t.Fatalf("servers with a node = %s", raw)
	}

	// Owners' dedicated pools are in no plan, and not flagged.
	h.Do(request{Method: "POST", Path: "/api/v1/pools", Token: owner.Token,
		Body: api.PoolInput{Name: "home", Region: "eu", Country: "DE", City: "Berlin", Plans: []string{"pro"}}}).
		MustHaveError(t, wantErr{Status: http.StatusBadRequest, Code: api.CodeInvalidRequest, Field: "plans"})
	var home api.Pool
	h.Do(request{Method: "POST", Path: "/api/v1/pools", Token: owner.Token,
		Body: api.PoolInput{Name: "home", Region: "eu", Country: "DE", City: "Berlin"}}).MustStatus(t, http.StatusCreated).MustDecode(t, &home)
	if home.InNoPlan || home.Plans == nil || len(home.Plans) != 0 {
		t.Errorf("dedicated pool = %+v, want plans [] and not in_no_plan", home)
	}
	if p := h.mustAdminPools(admin)["home"]; p.InNoPlan || len(p.Plans) != 0 {
		t.Errorf("dedicated pool as operators see it = %+v", p)
	}
}

// An owner with only dedicated pools and no node is told to enroll one.
func TestNoServerExplanationDedicated(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.KeyRate = -1 })
	owner := h.MustOwner()
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: owner.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, http.StatusOK)
	h.Do(request{Method: "POST", Path: "/api/v1/pools", Token: owner.Token,
		Body: api.PoolInput{Name: "home", Region: "eu", Country: "DE", City: "Berlin"}}).MustStatus(t, http.StatusCreated)
	g, err := h.store.GetServerGrant(context.Background(), owner.Owner.ID)
	if err != nil || g != (store.ServerGrant{PlanName: "Pro", PlanPools: 0, OwnPools: 1}) {
		t.Fatalf("grant = %+v, %v", g, err)
	}
	e := noServersExplanation(g)
	if e.Code != api.NoServersNoEnabledNode || !bytes.Contains([]byte(e.Message), []byte("enroll a node into one of your pools")) {
		t.Errorf("explanation = %+v", e)
	}
}
