package controlplane

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The dashboard's forms for what the API offers (TestDashboardParity):
// each does what its API route does.

// TestDashboardRotationAndDeviceDelete: an owner sets an app's rotation
// policy, which its devices read with the app's key, and deletes a device,
// which its nodes drop at once.
func TestDashboardRotationAndDeviceDelete(t *testing.T) {
	w := newDashWorld(t)
	appPath := "/apps/" + w.app.ID
	w.a.get(appPath).mustStatus(t, 200).mustContain(t, "Key rotation", "No rotation policy")

	w.a.submit(appPath, appPath+"/rotation", url.Values{"rotation_days": {"30"}}).mustRedirect(t, appPath+"?done=rotation-saved")
	w.a.get(appPath+"?done=rotation-saved").mustContain(t, "Rotation policy saved", "every 30 days", `value="30"`)
	var pol api.AppPolicy
	w.h.Do(request{Method: "GET", Path: "/api/v1/app", Token: w.key}).MustStatus(t, 200).MustDecode(t, &pol)
	if pol.RotationDays != 30 {
		t.Fatalf("the app's key reads rotation_days %d, want 30", pol.RotationDays)
	}
	for typed, msg := range map[string]string{"soon": "Rotation days must be a whole number of days (0 for no policy).",
		"9999": "Rotation days must be 0 (no policy) to 365."} {
		p := w.a.submit(appPath, appPath+"/rotation", url.Values{"rotation_days": {typed}}).mustStatus(t, http.StatusBadRequest)
		p.mustContain(t, msg, `value="`+typed+`"`)
		checkPage(t, "rotation error", p)
	}
	w.a.submit(appPath, appPath+"/rotation", url.Values{"rotation_days": {"0"}}).mustRedirect(t, appPath)
	if a, _ := w.h.store.GetApp(context.Background(), w.owner.Owner.ID, w.app.ID); a.RotationDays != 0 {
		t.Errorf("rotation days %d after 0", a.RotationDays)
	}

	// Device deletion: confirmed, then gone from the store and, at once,
	// from the node (the change is published, not found later by polling).
	devPath := appPath + "/devices/" + w.dev.ID
	w.a.get(devPath).mustContain(t, "Delete device…")
	p := w.a.get(devPath+"/delete").mustStatus(t, 200).mustContain(t, "Delete the device "+w.dev.IPv4, "removed from every server")
	checkPage(t, "device delete", p)
	rev := w.peers(t, w.nodeToken, 0).Revision
	w.a.submit(devPath+"/delete", devPath+"/delete", nil).mustRedirect(t, appPath+"/devices?done=device-deleted")
	w.a.get(appPath+"/devices?done=device-deleted").mustContain(t, "Device deleted", "No devices yet")
	if _, err := w.h.store.GetDevice(context.Background(), w.app.ID, w.dev.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("device after deletion: %v", err)
	}
	if d := w.peers(t, w.nodeToken, rev); !slices.Contains(d.Removes, w.dev.PublicKey) {
		t.Errorf("the node was not told of the deletion at once: %+v", d)
	}
	w.a.get(devPath+"/delete").mustStatus(t, http.StatusNotFound)
}

// TestDashboardOwnServers: an owner whose plan allows own nodes creates a
// pool, enrolls a server with the token shown once, sees it, removes it
// and deletes the pool; an owner whose plan does not is told so.
func TestDashboardOwnServers(t *testing.T) {
	w := newDashWorld(t)
	w.a.get("/servers").mustContain(t, `href="/pools"`)
	p := w.a.get("/pools").mustStatus(t, 200).mustContain(t, "Your own servers", "Your plan, Pro, allows 2 own servers", "No pools of your own yet", "Create a pool")
	checkPage(t, "/pools", p)

	bad := w.a.submit("/pools", "/pools", url.Values{"name": {"Office"}, "region": {"home"}, "country": {"Netherlands"}, "city": {"Delft"}}).
		mustStatus(t, http.StatusBadRequest)
	bad.mustContain(t, "Country must be an ISO 3166 alpha-2 code such as DE.", `value="Office"`)
	w.a.submit("/pools", "/pools", url.Values{"name": {"Office"}, "region": {"home"}, "country": {"nl"}, "city": {"Delft"}}).
		mustRedirect(t, "/pools?done=own-pool-created")
	pools, err := w.h.store.ListPools(context.Background(), w.owner.Owner.ID)
	if err != nil || len(pools) != 1 || pools[0].Country != "NL" {
		t.Fatalf("own pools: %+v, %v", pools, err)
	}
	pool := pools[0]

	tok := w.a.submit("/pools", "/pools/"+pool.ID+"/enrollment-tokens", nil).mustStatus(t, http.StatusCreated)
	checkPage(t, "own enrollment token", tok)
	m := regexp.MustCompile(`<code id="enroll-token" class="secret">(tle_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(tok.Body)
	if m == nil {
		t.Fatalf("no token on the page:\n%s", tok.Body)
	}
	tok.mustContain(t, api.EnrollCommand("http://example.com", m[1], "", api.AgentCredentialFile), `href="/pools"`).
		mustNotContain(t, "/admin/")
	var er api.EnrollResponse
	w.h.Do(request{Method: "POST", Path: "/agent/v1/enroll", Body: api.EnrollRequest{Token: m[1], Name: "office-1", PublicKey: newWGKey(t), Endpoint: "198.51.100.9:51820"}}).
		MustStatus(t, 201).MustDecode(t, &er)
	w.a.get("/pools").mustContain(t, "office-1", "198.51.100.9:51820", "No report yet", "Office")

	// Others cannot see or touch it.
	bob := newBrowser(t, w.h)
	bob.signup(w.h.NewEmail())
	bob.get("/pools").mustNotContain(t, "office-1", "Office")
	bob.get("/pools/"+pool.ID+"/delete").mustStatus(t, http.StatusNotFound)
	bob.get("/nodes/"+er.NodeID+"/delete").mustStatus(t, http.StatusNotFound)
	bob.submit("/pools", "/nodes/"+er.NodeID+"/delete", nil).mustStatus(t, http.StatusNotFound)
	bob.submit("/pools", "/pools/"+pool.ID+"/enrollment-tokens", nil).mustStatus(t, http.StatusNotFound)
	// Bob's plan, Free, allows no own servers.
	bob.get("/pools").mustContain(t, "Your plan allows no servers of your own").mustNotContain(t, `action="/pools"`)
	bob.submit("/pools", "/pools", url.Values{"name": {"Mine"}, "region": {"home"}, "country": {"NL"}, "city": {"Delft"}}).
		mustStatus(t, http.StatusForbidden)

	w.a.get("/nodes/"+er.NodeID+"/delete").mustStatus(t, 200).mustContain(t, "Remove your node “office-1” from Office?")
	w.a.submit("/pools", "/nodes/"+er.NodeID+"/delete", nil).mustRedirect(t, "/pools?done=own-node-deleted")
	w.h.Do(request{Method: "POST", Path: "/agent/v1/token", Token: er.Credential}).MustStatus(t, http.StatusUnauthorized)
	w.a.get("/pools").mustNotContain(t, "office-1")

	w.a.get("/pools/"+pool.ID+"/delete").mustStatus(t, 200).mustContain(t, "Delete your pool “Office”?")
	w.a.submit("/pools", "/pools/"+pool.ID+"/delete", nil).mustRedirect(t, "/pools?done=own-pool-deleted")
	if pools, _ := w.h.store.ListPools(context.Background(), w.owner.Owner.ID); len(pools) != 0 {
		t.Errorf("own pools after deletion: %+v", pools)
	}
}

// TestDashboardAlerts: an owner sets a webhook (its secret shown once),
// chooses the kinds and the history, sends a test event and follows its
// delivery, reads and deletes the history, and replaces the secret.
func TestDashboardAlerts(t *testing.T) {
	sw := newSyncWorld(t, fastAlerts)
	aw := &alertWorld{syncWorld: sw}
	b := newBrowser(t, sw.h)
	b.signInAs(sw.owner.Token)
	r := newHookReceiver(t)

	p := b.get("/alerts").mustStatus(t, 200).mustContain(t, "No channel is set up", "A node goes offline", "Keep a history", `aria-current="page">Alerts`)
	checkPage(t, "/alerts", p)
	if n := strings.Count(p.Body, `name="events" value=`); n != len(api.AlertKinds) {
		t.Errorf("%d kind checkboxes, want %d", n, len(api.AlertKinds))
	}
	if n := strings.Count(p.Body, " checked>"); n != len(api.AlertKinds) {
		t.Errorf("%d boxes checked by default, want every kind", n)
	}

	bad := b.submit("/alerts", "/alerts", url.Values{"webhook_url": {"ftp://hooks.example.com/x"}, "events": {"node_offline"}, "retention_days": {"30"}}).
		mustStatus(t, http.StatusBadRequest)
	bad.mustContain(t, "Webhook url must use https://", `value="ftp://hooks.example.com/x"`)
	b.submit("/alerts", "/alerts", url.Values{"webhook_url": {r.URL("/hook")}, "events": {"node_offline"}, "retention_days": {"0"}}).
		mustStatus(t, http.StatusBadRequest).mustContain(t, "Retention days must be 1-365.")

	// The first webhook: its secret is the answer to the post, once.
	p = b.submit("/alerts", "/alerts", url.Values{"webhook_url": {r.URL("/hook")}, "events": {api.AlertNodeOffline, api.AlertNodeOnline},
		"history": {"on"}, "retention_days": {"7"}}).mustStatus(t, http.StatusOK)
	checkPage(t, "secret", p)
	m := regexp.MustCompile(`<code id="webhook-secret" class="secret">(tlw_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no secret on the page:\n%s", p.Body)
	}
	secret := m[1]
	p.mustContain(t, "Alert settings saved", "shown only this once", "Nothing sent yet")
	set, err := sw.h.store.GetAlertSettings(context.Background(), sw.owner.Owner.ID)
	if err != nil || set.WebhookSecret != secret || set.Events != "node_offline,node_online" || !set.KeepHistory || set.RetentionDays != 7 {
		t.Fatalf("stored settings: %+v, %v", set, err)
	}
	b.get("/alerts").mustNotContain(t, secret)
	// Saving again keeps the secret and shows none.
	b.submit("/alerts", "/alerts", url.Values{"webhook_url": {r.URL("/hook")}, "events": {api.AlertNodeOffline, api.AlertNodeOnline},
		"history": {"on"}, "retention_days": {"7"}}).mustRedirect(t, "/alerts?done=alerts-saved")
	if set, _ := sw.h.store.GetAlertSettings(context.Background(), sw.owner.Owner.ID); set.WebhookSecret != secret {
		t.Error("saving unchanged settings replaced the secret")
	}

	// A test event, and its delivery outcome.
	b.submit("/alerts", "/alerts/test", nil).mustRedirect(t, "/alerts?done=alert-test-queued")
	r.waitN(1)
	waitFor(t, "the delivery on the page", func() bool { return strings.Contains(b.get("/alerts").Body, "Delivered</span>") })
	r.fail(1, http.StatusNotFound)
	b.submit("/alerts", "/alerts/test", nil).mustRedirect(t, "/alerts?done=alert-test-queued")
	waitFor(t, "the refusal on the page", func() bool { return strings.Contains(b.get("/alerts").Body, "Gave up</span>") })
	page := b.get("/alerts").mustContain(t, "webhook answered 404").Body
	delivery := page[strings.Index(page, `id="delivery-h"`):strings.Index(page, `id="settings-h"`)]
	if host := strings.TrimPrefix(r.srv.URL, "http://"); strings.Contains(delivery, host) || !strings.Contains(delivery, "Gave up") {
		t.Errorf("the delivery outcome names the receiver or lacks the outcome:\n%s", delivery)
	}

	// The history holds the chosen kinds only.
	aw.report(t, sw.nodeToken, aw.healthy())
	aw.check(t)
	sw.h.clock.Advance(onlineWindow + time.Second)
	aw.check(t) // node_offline and pool_down: only the first is chosen
	h := b.get("/alerts/history").mustStatus(t, 200).mustContain(t, "node_offline", "node-1", "Frankfurt").mustNotContain(t, "pool_down")
	checkPage(t, "/alerts/history", h)
	b.get("/alerts/history/delete").mustStatus(t, 200).mustContain(t, "Delete your whole monitoring history?")
	b.submit("/alerts/history/delete", "/alerts/history/delete", nil).mustRedirect(t, "/alerts/history?done=history-deleted")
	b.get("/alerts/history?done=history-deleted").mustContain(t, "Monitoring history deleted", "Nothing happened yet")

	// A new secret, shown once.
	p = b.submit("/alerts", "/alerts/secret", nil).mustStatus(t, http.StatusOK)
	m = regexp.MustCompile(`<code id="webhook-secret" class="secret">(tlw_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(p.Body)
	if m == nil || m[1] == secret {
		t.Fatalf("rotated secret: %v", m)
	}

	// History off: nothing kept, and the page says so.
	b.submit("/alerts", "/alerts", url.Values{"webhook_url": {""}, "events": {api.AlertNodeOffline}, "retention_days": {"7"}}).
		mustRedirect(t, "/alerts")
	b.get("/alerts/history").mustContain(t, "The history is off")
	b.get("/alerts").mustContain(t, "No channel is set up").mustNotContain(t, "Replace the secret")
	b.submit("/alerts", "/alerts/test", nil).mustRedirect(t, "/alerts?done=alert-test-none")
}

// TestDashboardOperatorRemovals: operators disable, enable and remove
// nodes, delete pools, plans no owner is on, and accounts not held.
func TestDashboardOperatorRemovals(t *testing.T) {
	w := newDashWorld(t)
	a := w.admin
	ctx := context.Background()

	// Disable: clients are no longer offered the node; enable again.
	nodePath := "/admin/nodes/" + w.node.NodeID
	a.submit("/admin/nodes", nodePath+"/enabled", url.Values{"enabled": {"false"}}).mustRedirect(t, "/admin/nodes?done=node-disabled")
	a.get("/admin/nodes?done=node-disabled").mustContain(t, "Node disabled", "Disabled", "Enable")
	var servers api.ServerList
	w.h.Do(request{Method: "GET", Path: "/api/v1/servers", Token: w.key}).MustStatus(t, 200).MustDecode(t, &servers)
	if len(servers.Servers) != 0 {
		t.Errorf("a disabled node is offered: %+v", servers.Servers)
	}
	a.submit("/admin/nodes", nodePath+"/enabled", url.Values{"enabled": {"maybe"}}).mustStatus(t, http.StatusBadRequest)
	a.submit("/admin/nodes", nodePath+"/enabled", url.Values{"enabled": {"true"}}).mustRedirect(t, "/admin/nodes?done=node-enabled")
	if n, _ := w.h.store.GetNode(ctx, w.node.NodeID); !n.Enabled {
		t.Error("the node stayed disabled")
	}

	// A plan owners are on cannot go; an unused one can.
	pro := "/admin/plans/" + w.h.MustPlanID("pro")
	a.get(pro).mustContain(t, "Delete plan…")
	a.submit(pro+"/delete", pro+"/delete", nil).mustStatus(t, http.StatusConflict).mustContain(t, "Owners are on this plan", "Retire it instead")
	spare, err := w.h.store.CreatePlan(ctx, store.PlanWithPools{Plan: store.Plan{Slug: "spare", Name: "Spare", MaxApps: 1, MaxDevices: 1, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	sparePath := "/admin/plans/" + spare.ID
	a.get(sparePath+"/delete").mustStatus(t, 200).mustContain(t, "Delete the plan “Spare”?")
	a.submit(sparePath+"/delete", sparePath+"/delete", nil).mustRedirect(t, "/admin/plans?done=plan-deleted")
	if _, err := w.h.store.GetPlan(ctx, spare.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("plan after deletion: %v", err)
	}

	// A node removed: its credential stops working.
	extra, _ := w.enroll(t, w.pool.ID, "node-2")
	a.get("/admin/nodes/"+extra.NodeID+"/delete").mustStatus(t, 200).mustContain(t, "Remove the node “node-2” from Frankfurt?")
	a.submit("/admin/nodes", "/admin/nodes/"+extra.NodeID+"/delete", nil).mustRedirect(t, "/admin/nodes?done=node-removed")
	w.h.Do(request{Method: "POST", Path: "/agent/v1/token", Token: extra.Credential}).MustStatus(t, http.StatusUnauthorized)

	// An account: not one's own, not while held.
	admin, _ := w.h.store.GetOwnerByEmail(ctx, adminEmail)
	a.get("/admin/owners/"+admin.ID).mustNotContain(t, "Delete account…")
	a.get("/admin/owners/"+admin.ID+"/delete").mustStatus(t, http.StatusConflict).mustContain(t, "This is your own account")
	ownerPath := "/admin/owners/" + w.owner.Owner.ID
	a.submit(ownerPath, ownerPath+"/legal-hold", url.Values{"action": {"set"}, "reason": {"Audit 7"}}).mustRedirect(t, ownerPath)
	a.get(ownerPath+"/delete").mustStatus(t, 200).mustContain(t, "Delete the account "+w.owner.Owner.Email+"?", "Its 1 device is deleted", "under a legal hold (Audit 7)")
	a.submit(ownerPath, ownerPath+"/delete", nil).mustStatus(t, http.StatusConflict).mustContain(t, "legal hold", "Audit 7")
	a.submit(ownerPath, ownerPath+"/legal-hold", url.Values{"action": {"release"}}).mustRedirect(t, ownerPath)
	a.submit(ownerPath, ownerPath+"/delete", nil).mustRedirect(t, "/admin/owners?done=owner-deleted")
	if w.ownerExists(t, w.owner.Owner.ID) {
		t.Fatal("the account still exists")
	}
	w.a.get("/apps").mustRedirect(t, "/login")

	// A pool with its node.
	poolPath := "/admin/pools/" + w.pool.ID
	a.get("/admin/pools").mustContain(t, `href="`+poolPath+`/delete"`)
	a.get(poolPath+"/delete").mustStatus(t, 200).mustContain(t, "Delete the pool “Frankfurt”?", "Its 1 node is removed with it")
	a.submit("/admin/pools", poolPath+"/delete", nil).mustRedirect(t, "/admin/pools?done=pool-deleted")
	if _, err := w.h.store.GetPool(ctx, w.pool.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pool after deletion: %v", err)
	}
	if _, err := w.h.store.GetNode(ctx, w.node.NodeID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("node of a deleted pool: %v", err)
	}
}
