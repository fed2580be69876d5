package controlplane

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// TestDashboardPoolPlans: the pool form asks which plans include the new
// pool, and a pool in no plan is flagged on the pools, enrollment and
// nodes pages; an owner with no server is told why.
func TestDashboardPoolPlans(t *testing.T) {
	w := newDashWorld(t)
	a := w.admin
	ctx := context.Background()
	pro, business := w.h.MustPlanID("pro"), w.h.MustPlanID("business")

	// The form offers every plan; Frankfurt (in pro) is not flagged.
	p := a.get("/admin/pools").mustStatus(t, http.StatusOK)
	checkPage(t, "/admin/pools", p)
	p.mustContain(t, "Plans that include this pool", `name="plans" value="`+pro+`"`, `name="plans" value="`+business+`"`,
		"A pool in no plan serves nobody").mustNotContain(t, "In no plan:")
	if !regexp.MustCompile(`Frankfurt[\s\S]*?<td data-label="Plans">Pro</td>`).MatchString(p.Body) {
		t.Errorf("Frankfurt's row does not name Pro:\n%s", p.Body)
	}

	poolByName := func(name string) store.Pool {
		t.Helper()
		pools, err := w.h.store.ListPools(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, pl := range pools {
			if pl.Name == name {
				return pl
			}
		}
		t.Fatalf("no pool %q", name)
		return store.Pool{}
	}
	form := func(name string, plans ...string) url.Values {
		return url.Values{"name": {name}, "region": {"eu-west"}, "country": {"fr"}, "city": {"Paris"}, "plans": plans}
	}

	// Ticked plans include the pool.
	a.submit("/admin/pools", "/admin/pools", form("Paris", business, pro)).mustRedirect(t, "/admin/pools?done=pool-created")
	plans, err := w.h.store.PoolPlans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := plans[poolByName("Paris").ID]; !slices.Equal(got, []string{"business", "pro"}) {
		t.Errorf("Paris is in %v, want business and pro", got)
	}

	// An unknown plan: the form again, with the error at the plans and
	// nothing created.
	p = a.submit("/admin/pools", "/admin/pools", form("Nowhere", "00000000-0000-4000-8000-000000000000")).
		mustStatus(t, http.StatusBadRequest)
	p.mustContain(t, `id="pool-plans-error"`, `value="Nowhere"`)
	if pools, _ := w.h.store.ListPools(ctx, ""); slices.ContainsFunc(pools, func(p store.Pool) bool { return p.Name == "Nowhere" }) {
		t.Error("a pool with an unknown plan was created")
	}

	// No plan ticked: created, and flagged everywhere.
	a.submit("/admin/pools", "/admin/pools", form("Lonely")).mustRedirect(t, "/admin/pools?done=pool-created-no-plan")
	lonely := poolByName("Lonely")
	p = a.get("/admin/pools?done=pool-created-no-plan").mustStatus(t, http.StatusOK)
	p.mustContain(t, "Pool created, in no plan", "In no plan: 1 pool.", "In no plan</span> <span class=\"hint\">serves nobody")
	if n := strings.Count(p.Body, `<span class="badge warn">In no plan</span>`); n != 1 {
		t.Errorf("%d pools flagged, want 1 (Lonely)", n)
	}

	a.submit("/admin/pools", "/admin/pools/"+w.pool.ID+"/enrollment-tokens", nil).mustStatus(t, http.StatusCreated).
		mustNotContain(t, "is in no plan")
	tok := a.submit("/admin/pools", "/admin/pools/"+lonely.ID+"/enrollment-tokens", nil).mustStatus(t, http.StatusCreated)
	checkPage(t, "enrollment token", tok)
	tok.mustContain(t, "Lonely is in no plan:", "the node will serve nobody")

	m := regexp.MustCompile(`(tle_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(tok.Body)
	if m == nil {
		t.Fatal("no token on the page")
	}
	w.h.Do(request{Method: "POST", Path: "/agent/v1/enroll", Body: api.EnrollRequest{Token: m[1], Name: "lonely-1",
		PublicKey: newWGKey(t), Endpoint: "198.51.100.9:51820"}}).MustStatus(t, http.StatusCreated)
	nodes := a.get("/admin/nodes").mustStatus(t, http.StatusOK)
	checkPage(t, "/admin/nodes", nodes)
	if n := strings.Count(nodes.Body, `<span class="badge warn">Pool in no plan</span>`); n != 1 {
		t.Errorf("%d nodes flagged, want 1 (lonely-1)", n)
	}
	if !regexp.MustCompile(`lonely-1</h2>[\s\S]*?Pool in no plan[\s\S]*?node-1</h2>|node-1</h2>[\s\S]*?lonely-1</h2>[\s\S]*?Pool in no plan`).MatchString(nodes.Body) {
		t.Errorf("the flag is not on lonely-1:\n%s", nodes.Body)
	}

	// An owner on a plan without pools is told why there is no server.
	b := newBrowser(t, w.h)
	b.signup(w.h.NewEmail())
	b.get("/servers").mustStatus(t, http.StatusOK).mustContain(t, "No servers on your plan yet",
		"Your plan (Free) includes no server pool", "ask the operator")
	// Owner A's plan includes Frankfurt, with a node: no explanation.
	w.a.get("/servers").mustStatus(t, http.StatusOK).mustNotContain(t, "no-servers-reason")
}
