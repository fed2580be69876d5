package controlplane

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// TestDashboardOperatorLanding: after setup or sign-in an operator lands on
// the overview, which says what serves nobody (no pool, a pool in no plan,
// a plan with no pool, a pool without nodes, an offline node, a failing
// posture check) until the installation is set up, and then that nothing
// needs attention.
func TestDashboardOperatorLanding(t *testing.T) {
	h := newHarness(t)
	t.Cleanup(func() { h.srv.Close() })
	b := newBrowser(t, h)

	// Setup: the success page links to the overview, and signs in.
	done := b.do(http.MethodPost, "/setup", url.Values{"token": {h.SetupToken()}, "email": {adminEmail}, "password": {adminPassword}}).
		mustStatus(t, http.StatusCreated)
	done.mustContain(t, `href="/admin"`, "Go to the overview")
	b.get("/").mustRedirect(t, "/admin")

	// A fresh installation: plans exist (seeded) but no pool.
	p := b.get("/admin").mustStatus(t, http.StatusOK)
	checkPage(t, "/admin", p)
	p.mustContain(t, "Overview", "There is no shared pool yet", "Plan Free includes no pool", "Plan Pro includes no pool",
		"No pools yet", `aria-current="page">Overview`)

	// A pool in no plan is flagged, in the warnings and in its row.
	admin := h.MustLogin(adminEmail, adminPassword).Token
	var pool api.Pool
	h.Do(request{Method: "POST", Path: "/api/v1/admin/pools", Token: admin,
		Body: api.PoolInput{Name: "Frankfurt", Region: "eu-central", Country: "DE", City: "Frankfurt"}}).MustStatus(t, 201).MustDecode(t, &pool)
	b.get("/admin").mustContain(t, "Pool Frankfurt is in no plan: its nodes serve nobody's devices.", "in no plan",
		"Pool Frankfurt has no node yet.").mustNotContain(t, "There is no shared pool yet")

	// In every plan, with an enrolled node that has not reported yet.
	sw := &syncWorld{h: h, admin: admin, pool: pool}
	for _, slug := range []string{"free", "pro", "business"} {
		sw.grantPool(t, slug, pool.ID)
	}
	_, nodeToken := sw.enroll(t, pool.ID, "fra-1")
	h.clock.Advance(onlineWindow + time.Second)
	b.get("/admin").mustContain(t, "Node fra-1 is offline", "0 of 1").
		mustNotContain(t, "is in no plan", "includes no pool", "has no node yet")

	// Online, failing two posture checks.
	h.Do(request{Method: "POST", Path: "/agent/v1/status", Token: nodeToken, Body: api.NodeStatus{InterfaceUp: true, Version: "t",
		Posture: api.Posture{ConntrackAccountingOff: true, ConntrackTimestampsOff: true, NoLogRules: true, SwapOff: true, NotDumpable: true}}}).
		MustStatus(t, 200)
	b.get("/admin").mustContain(t, "Node fra-1 fails 2 privacy posture checks.", "1 of 1", "Free, Pro, Business").
		mustNotContain(t, "is offline")

	// All passing, and accounts counted: nothing needs attention.
	h.Do(request{Method: "POST", Path: "/agent/v1/status", Token: nodeToken, Body: api.NodeStatus{InterfaceUp: true, Version: "t",
		Posture: api.Posture{ConntrackAccountingOff: true, ConntrackTimestampsOff: true, NoLogRules: true, SwapOff: true, NotDumpable: true,
			CoreSizeZero: true, NoStateOnDisk: true}}}).MustStatus(t, 200)
	h.MustOwner()
	h.MustOwner()
	p = b.get("/admin").mustContain(t, "Every pool is in a plan and has nodes")
	p.mustContain(t, "<dt>Owners</dt><dd>2</dd>", "<dt>Operators</dt><dd>1</dd>", "<dt>Online</dt><dd>1</dd>")

	// Signing in lands operators on the overview and owners on their apps.
	op := newBrowser(t, h)
	op.submit("/login", "/login", url.Values{"email": {adminEmail}, "password": {adminPassword}}).mustRedirect(t, "/admin")
	owner := h.MustOwner()
	ob := newBrowser(t, h)
	ob.submit("/login", "/login", url.Values{"email": {owner.Owner.Email}, "password": {testPassword}}).mustRedirect(t, "/apps")
	ob.get("/").mustRedirect(t, "/apps")
}

// TestDashboardOperatorPolicy: the privacy policy is the owners'; an
// operator is not asked to accept it until they own an app, owners are.
func TestDashboardOperatorPolicy(t *testing.T) {
	h := newHarness(t)
	t.Cleanup(func() { h.srv.Close() })
	op := newBrowser(t, h)
	op.signInAs(h.MustAdmin().Token)
	for _, path := range []string{"/admin", "/admin/nodes", "/apps", "/account"} {
		op.get(path).mustStatus(t, http.StatusOK).mustNotContain(t, "policy-banner")
	}
	owner := newBrowser(t, h)
	owner.signup(h.NewEmail())
	owner.get("/apps").mustContain(t, "policy-banner", "has a version you have not accepted yet")

	// An operator who creates an app owns one like any owner: asked too.
	op.submit("/apps", "/apps", url.Values{"name": {"own app"}}).mustRedirect(t, "/apps/")
	op.get("/admin").mustContain(t, "policy-banner", "has a version you have not accepted yet")
	admin, err := h.store.GetOwnerByEmail(context.Background(), adminEmail)
	if err != nil || admin.Role != store.RoleAdmin {
		t.Fatal(admin, err)
	}
	op.submit("/policy", "/policy", url.Values{"version": {h.srv.opts.Policies[len(h.srv.opts.Policies)-1].Version}}).
		mustRedirect(t, "/policy?done=policy-accepted")
	op.get("/admin").mustNotContain(t, "policy-banner")
}
