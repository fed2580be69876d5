package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// inlineCodeRE finds what the CSP forbids in a page: inline scripts, style
// attributes or elements, and event handler attributes.
var inlineCodeRE = regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<script>|\sstyle\s*=|<style|\son[a-z]+\s*=|javascript:`)

// thirdPartyRE finds references to other origins in src or href.
var thirdPartyRE = regexp.MustCompile(`(?i)(?:src|href|action)\s*=\s*"(?:https?:)?//`)

// checkPage fails when a dashboard page breaks the CSP's rules or the
// security headers are missing.
func checkPage(t *testing.T, path string, p pageResponse) {
	t.Helper()
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	if m := inlineCodeRE.FindString(p.Body); m != "" {
		t.Errorf("%s: inline code the CSP forbids: %q", path, m)
	}
	if m := thirdPartyRE.FindString(p.Body); m != "" {
		t.Errorf("%s: reference to another origin: %q", path, m)
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "style-src 'self'") {
		t.Errorf("%s: CSP %q", path, csp)
	}
	if p.Header.Get("Cache-Control") != "no-store" || p.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("%s: security headers missing: %v", path, p.Header)
	}
	// Every form posts a CSRF token.
	forms := strings.Count(strings.ToLower(p.Body), `method="post"`)
	if tokens := len(csrfFieldRE.FindAllString(p.Body, -1)); tokens < forms {
		t.Errorf("%s: %d POST forms but %d CSRF fields", path, forms, tokens)
	}
}

// TestDashboardPagesRender renders every page for its audience.
func TestDashboardPagesRender(t *testing.T) {
	w := newDashWorld(t)
	// The node reports, so that it is online with a posture.
	w.h.Do(request{Method: "POST", Path: "/agent/v1/status", Token: w.nodeToken,
		Body: api.NodeStatus{AppliedRevision: 1, PeerCount: 1, InterfaceUp: true, Version: "9.9.9",
			Posture: api.Posture{ConntrackAccountingOff: true, NoLogRules: true, SwapOff: true}}}).MustStatus(t, 200)
	app, dev := w.app.ID, w.dev.ID
	plan := w.h.MustPlanID("pro")

	for _, tc := range []struct {
		b    *browser
		path string
		want []string
	}{
		{w.a, "/apps", []string{"Apps", "vpn", "1 of 5 apps", "1 of 10,000 devices"}},
		{w.a, "/apps/" + app, []string{"API keys", "k", "tlk_", "1 device", "Rename", "Delete app"}},
		{w.a, "/apps/" + app + "/devices", []string{w.dev.PublicKey, w.dev.IPv4, w.dev.IPv6, "Config"}},
		{w.a, "/apps/" + app + "/devices/" + dev, []string{w.dev.PublicKey, "node-1", "Frankfurt", "Online", ".conf file", "QR code"}},
		{w.a, "/servers", []string{"node-1", "eu-central", "Frankfurt, DE", "203.0.113.10:51820", "Online"}},
		{w.a, "/plan", []string{"Pro", "Your plan", "Free", "Switch to Business", "49.00 EUR"}},
		{w.a, "/account", []string{w.owner.Owner.Email, "Download my data", "Delete my account"}},
		{w.a, "/account/delete", []string{"Type your email address to confirm", "1 app", "1 device"}},
		{w.a, "/apps/" + app + "/delete", []string{"Delete the app “vpn”?", "Its 1 device is deleted", "Cancel"}},
		{w.a, "/pools", []string{"Your own servers", "Create a pool"}},
		{w.a, "/alerts", []string{"Alerts", "Tell me when", "Save alert settings"}},
		{w.a, "/alerts/history", []string{"Monitoring history", "The history is off"}},
		{w.a, "/apps/" + app + "/devices/" + dev + "/delete", []string{"Delete the device", "Cancel"}},
		{w.admin, "/admin/pools/" + w.pool.ID + "/delete", []string{"Delete the pool “Frankfurt”?", "Its 1 node is removed"}},
		{w.admin, "/admin/nodes/" + w.node.NodeID + "/delete", []string{"Remove the node “node-1”"}},
		{w.admin, "/admin/plans/" + plan + "/delete", []string{"Delete the plan “Pro”?"}},
		{w.admin, "/admin/owners/" + w.owner.Owner.ID + "/delete", []string{"Delete the account", "Its 1 device is deleted"}},
		{w.a, "/privacy", []string{"What we store about you and your users", "Never stored", "WireGuard handshake times", "devices", "public_key"}},
		{newBrowser(t, w.h), "/privacy", []string{"What we store about you and your users", "Sign in"}},
		{newBrowser(t, w.h), "/login", []string{"Sign in", "Email", "Password"}},
		{newBrowser(t, w.h), "/signup", []string{"Create an account", "at least 10 characters"}},
		{w.admin, "/admin/nodes", []string{"node-1", "Online", "Peers", "Applied revision", "9.9.9",
			"Conntrack accounting off", "Swap off or encrypted", "4 checks fail", "Agent not dumpable"}},
		{w.admin, "/admin", []string{"Overview", "Needs attention", "Frankfurt", "Plan Free includes no pool", "1 of 1"}},
		{w.admin, "/admin/pools", []string{"Frankfurt", "eu-central", "Add a node"}},
		{w.admin, "/admin/plans", []string{"Free", "Pro", "Business", "Retire", "Create a plan"}},
		{w.admin, "/admin/plans/" + plan, []string{"Edit Pro", "Retired", "Frankfurt"}},
		{w.admin, "/admin/owners", []string{w.owner.Owner.Email, adminEmail, "Operator"}},
		{w.admin, "/admin/owners/" + w.owner.Owner.ID, []string{w.owner.Owner.Email, "Legal hold", "Set legal hold", "Suspended"}},
		{w.admin, "/apps", []string{"Operator", "Nodes"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			p := tc.b.get(tc.path).mustStatus(t, http.StatusOK).mustContain(t, tc.want...)
			checkPage(t, tc.path, p)
		})
	}
	// Owners see no operator navigation.
	w.a.get("/apps").mustNotContain(t, "/admin/nodes")
	// Operators land on the overview, owners on their apps.
	w.admin.get("/").mustRedirect(t, "/admin")
	w.a.get("/").mustRedirect(t, "/apps")
	newBrowser(t, w.h).get("/").mustRedirect(t, "/login")
}

// TestDashboardEmptyStates shows a new owner what to do next.
func TestDashboardEmptyStates(t *testing.T) {
	h := newHarness(t)
	b := newBrowser(t, h)
	b.signup(h.NewEmail())
	b.get("/plan?done=welcome").mustStatus(t, 200).mustContain(t, "Welcome!", "Your plan", "Free")
	b.get("/apps").mustStatus(t, 200).mustContain(t, "You have no apps yet", "Create app")
	b.get("/servers").mustStatus(t, 200).mustContain(t, "No servers on your plan yet")
	p := b.submit("/apps", "/apps", url.Values{"name": {"First"}}).mustRedirect(t, "/apps/")
	b.get(p.Location).mustStatus(t, 200).mustContain(t, "App created", "No API keys yet")
	b.get(strings.Split(p.Location, "?")[0]+"/devices").mustStatus(t, 200).mustContain(t, "No devices yet", "POST /api/v1/devices")

	admin := newBrowser(t, h)
	admin.signInAs(h.MustAdmin().Token)
	admin.get("/admin/nodes").mustStatus(t, 200).mustContain(t, "No nodes yet")
	admin.get("/admin/pools").mustStatus(t, 200).mustContain(t, "No pools yet")
}

// ownerPages are every page of an owner, with A's resources.
func ownerPages(w *dashWorld) []string {
	app, dev := w.app.ID, w.dev.ID
	return []string{"/apps", "/apps/" + app, "/apps/" + app + "/delete", "/apps/" + app + "/devices",
		"/apps/" + app + "/devices/" + dev, "/apps/" + app + "/devices/" + dev + "/config?server=" + w.node.NodeID,
		"/servers", "/plan", "/account", "/account/export", "/account/delete",
		"/apps/" + app + "/devices/" + dev + "/delete", "/pools", "/alerts", "/alerts/history", "/alerts/history/delete"}
}

// adminPages are every operator page.
func adminPages(w *dashWorld) []string {
	return []string{"/admin", "/admin/nodes", "/admin/pools", "/admin/plans", "/admin/plans/" + w.h.MustPlanID("pro"),
		"/admin/owners", "/admin/owners/" + w.owner.Owner.ID, "/admin/plans/" + w.h.MustPlanID("pro") + "/delete",
		"/admin/pools/" + w.pool.ID + "/delete", "/admin/nodes/" + w.node.NodeID + "/delete", "/admin/owners/" + w.owner.Owner.ID + "/delete"}
}

// TestDashboardAnonymousRedirect sends visitors without a valid session to
// the sign-in page, which brings them back afterwards.
func TestDashboardAnonymousRedirect(t *testing.T) {
	w := newDashWorld(t)
	for _, cookie := range []string{"", "garbage", w.key, w.nodeToken} {
		for _, path := range append(ownerPages(w), adminPages(w)...) {
			b := newBrowser(t, w.h)
			if cookie != "" {
				b.jar[sessionCookie] = cookie
			}
			p := b.get(path).mustRedirect(t, "/login?next=")
			next, _ := url.QueryUnescape(strings.TrimPrefix(p.Location, "/login?next="))
			if next != path {
				t.Errorf("%s: next = %q", path, next)
			}
			if _, ok := b.jar[sessionCookie]; ok {
				t.Errorf("%s: a bad session cookie was not cleared", path)
			}
		}
	}
	// Signing in continues to the page asked for, and only to a local one.
	b := newBrowser(t, w.h)
	b.submit("/login?next=%2Fservers", "/login", url.Values{"email": {w.owner.Owner.Email}, "password": {testPassword}, "next": {"/servers"}}).
		mustRedirect(t, "/servers")
	for _, evil := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		b := newBrowser(t, w.h)
		b.submit("/login", "/login", url.Values{"email": {w.owner.Owner.Email}, "password": {testPassword}, "next": {evil}}).
			mustRedirect(t, "/apps")
	}
}

// TestDashboardOwnersIsolated: another owner's apps and devices do not
// exist for you (404), whatever the route, and nothing changes.
func TestDashboardOwnersIsolated(t *testing.T) {
	w := newDashWorld(t)
	bob := newBrowser(t, w.h)
	bob.signup(w.h.NewEmail())
	for _, path := range ownerPages(w) {
		if !strings.Contains(path, w.app.ID) {
			continue
		}
		p := bob.get(path).mustStatus(t, http.StatusNotFound).mustContain(t, "Not found")
		checkPage(t, path, p)
		p.mustNotContain(t, w.app.Name+"”", w.dev.PublicKey)
	}
	var keys api.APIKeyList
	w.h.Do(request{Method: "GET", Path: "/api/v1/apps/" + w.app.ID + "/keys", Token: w.owner.Token}).MustStatus(t, 200).MustDecode(t, &keys)
	for _, action := range []string{"/apps/" + w.app.ID + "/rename", "/apps/" + w.app.ID + "/delete", "/apps/" + w.app.ID + "/keys",
		"/apps/" + w.app.ID + "/keys/" + keys.Keys[0].ID + "/revoke"} {
		bob.submit("/apps", action, url.Values{"name": {"stolen"}}).mustStatus(t, http.StatusNotFound)
	}
	bob.get("/apps/"+w.app.ID+"/keys/"+keys.Keys[0].ID+"/revoke").mustStatus(t, http.StatusNotFound)
	a, err := w.h.store.GetApp(context.Background(), w.owner.Owner.ID, w.app.ID)
	if err != nil || a.Name != "vpn" || a.DeviceCount != 1 {
		t.Fatalf("A's app after B's attempts: %+v, %v", a, err)
	}
	ks, _ := w.h.store.ListAPIKeys(context.Background(), w.owner.Owner.ID, w.app.ID)
	if len(ks) != 1 {
		t.Fatalf("A's keys after B's attempts: %d", len(ks))
	}
	// Unknown IDs are 404 for the owner too.
	w.a.get("/apps/"+w.app.ID+"/devices/00000000-0000-4000-8000-000000000000").mustStatus(t, http.StatusNotFound)
	w.a.get("/apps/nope").mustStatus(t, http.StatusNotFound)
}

// TestDashboardAdminOnly: owners get 403 on operator pages and forms.
func TestDashboardAdminOnly(t *testing.T) {
	w := newDashWorld(t)
	for _, path := range adminPages(w) {
		p := w.a.get(path).mustStatus(t, http.StatusForbidden).mustContain(t, "for the operators")
		checkPage(t, path, p)
	}
	before := len(w.h.MustPlans())
	for _, action := range []string{"/admin/plans", "/admin/pools", "/admin/pools/" + w.pool.ID + "/enrollment-tokens",
		"/admin/owners/" + w.owner.Owner.ID, "/admin/owners/" + w.owner.Owner.ID + "/legal-hold",
		"/admin/plans/" + w.h.MustPlanID("business") + "/delete", "/admin/pools/" + w.pool.ID + "/delete",
		"/admin/nodes/" + w.node.NodeID + "/enabled", "/admin/nodes/" + w.node.NodeID + "/delete",
		"/admin/owners/" + w.owner.Owner.ID + "/delete"} {
		w.a.submit("/apps", action, url.Values{"slug": {"x"}, "name": {"X"}, "max_apps": {"1"}, "max_devices": {"1"},
			"max_own_nodes": {"0"}, "price": {"0"}, "currency": {"EUR"}, "status": {"active"}, "plan": {"business"},
			"action": {"set"}, "reason": {"mine"}}).mustStatus(t, http.StatusForbidden)
	}
	if after := len(w.h.MustPlans()); after != before {
		t.Errorf("plans %d -> %d after an owner's post", before, after)
	}
	if o := w.h.MustGetOwner(w.owner.Owner.ID); o.LegalHold != nil || o.PlanID != w.h.MustPlanID("pro") {
		t.Errorf("owner changed by its own post to operator forms: %+v", o)
	}
	if n, err := w.h.store.GetNode(context.Background(), w.node.NodeID); err != nil || !n.Enabled {
		t.Errorf("node after an owner's posts to operator forms: %+v, %v", n, err)
	}
	if pools, _ := w.h.store.ListPools(context.Background(), ""); len(pools) != 1 {
		t.Errorf("%d pools after an owner's posts to operator forms", len(pools))
	}
}

// TestDashboardCSRF: a POST without the form token, or with another
// session's token, is refused with 403 and changes nothing.
func TestDashboardCSRF(t *testing.T) {
	w := newDashWorld(t)
	bob := newBrowser(t, w.h)
	bob.signup(w.h.NewEmail())
	bobToken := csrfFieldRE.FindStringSubmatch(bob.get("/apps").Body)[1]
	aliceToken := csrfFieldRE.FindStringSubmatch(w.a.get("/apps").Body)[1]
	if bobToken == aliceToken {
		t.Fatal("two sessions got the same CSRF token")
	}
	var keys api.APIKeyList
	w.h.Do(request{Method: "GET", Path: "/api/v1/apps/" + w.app.ID + "/keys", Token: w.owner.Token}).MustStatus(t, 200).MustDecode(t, &keys)
	posts := []struct {
		b      *browser
		action string
		form   url.Values
	}{
		{w.a, "/apps", url.Values{"name": {"new"}}},
		{w.a, "/apps/" + w.app.ID + "/rename", url.Values{"name": {"renamed"}}},
		{w.a, "/apps/" + w.app.ID + "/delete", url.Values{}},
		{w.a, "/apps/" + w.app.ID + "/keys", url.Values{"name": {"k2"}}},
		{w.a, "/apps/" + w.app.ID + "/keys/" + keys.Keys[0].ID + "/revoke", url.Values{}},
		{w.a, "/plan", url.Values{"plan": {"business"}}},
		{w.a, "/account/delete", url.Values{"confirm": {w.owner.Owner.Email}}},
		{w.a, "/logout", url.Values{}},
		{w.admin, "/admin/plans", url.Values{"slug": {"x"}, "name": {"X"}, "max_apps": {"1"}, "max_devices": {"1"}, "max_own_nodes": {"0"}, "price": {"0"}, "currency": {"EUR"}}},
		{w.admin, "/admin/plans/" + w.h.MustPlanID("pro") + "/retire", url.Values{"retired": {"true"}}},
		{w.admin, "/admin/pools", url.Values{"name": {"P"}, "region": {"r"}, "country": {"FR"}, "city": {"Paris"}}},
		{w.admin, "/admin/pools/" + w.pool.ID + "/enrollment-tokens", url.Values{}},
		{w.admin, "/admin/owners/" + w.owner.Owner.ID, url.Values{"status": {"suspended"}, "plan": {"pro"}}},
		{w.admin, "/admin/owners/" + w.owner.Owner.ID + "/legal-hold", url.Values{"action": {"set"}, "reason": {"x"}}},
		{w.a, "/apps/" + w.app.ID + "/rotation", url.Values{"rotation_days": {"7"}}},
		{w.a, "/apps/" + w.app.ID + "/keys/" + keys.Keys[0].ID + "/replace", url.Values{"name": {"k2"}}},
		{w.a, "/apps/" + w.app.ID + "/tickets", url.Values{"reference": {"user-1"}}},
		{w.a, "/apps/" + w.app.ID + "/registration-cap", url.Values{"registration_cap": {"10"}}},
		{w.a, "/apps/" + w.app.ID + "/devices/" + w.dev.ID + "/delete", url.Values{}},
		{w.a, "/pools", url.Values{"name": {"Mine"}, "region": {"home"}, "country": {"NL"}, "city": {"Delft"}}},
		{w.a, "/alerts", url.Values{"webhook_url": {"https://hooks.example.com/x"}, "events": {"node_offline"}, "history": {"on"}, "retention_days": {"3"}}},
		{w.a, "/alerts/test", url.Values{}},
		{w.a, "/alerts/history/delete", url.Values{}},
		{w.admin, "/admin/nodes/" + w.node.NodeID + "/enabled", url.Values{"enabled": {"false"}}},
		{w.admin, "/admin/nodes/" + w.node.NodeID + "/delete", url.Values{}},
		{w.admin, "/admin/pools/" + w.pool.ID + "/delete", url.Values{}},
		{w.admin, "/admin/plans/" + w.h.MustPlanID("business") + "/delete", url.Values{}},
		{w.admin, "/admin/owners/" + w.owner.Owner.ID + "/delete", url.Values{}},
		{newBrowser(t, w.h), "/login", url.Values{"email": {w.owner.Owner.Email}, "password": {testPassword}}},
		{newBrowser(t, w.h), "/signup", url.Values{"email": {"csrf@example.com"}, "password": {testPassword}}},
	}
	stats := func() string {
		st, err := w.h.store.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		o := w.h.MustGetOwner(w.owner.Owner.ID)
		pools, _ := w.h.store.ListPools(context.Background(), "")
		ks, _ := w.h.store.ListAPIKeys(context.Background(), o.ID, w.app.ID)
		a, _ := w.h.store.GetApp(context.Background(), o.ID, w.app.ID)
		n, _ := w.h.store.GetNode(context.Background(), w.node.NodeID)
		al, alErr := w.h.store.GetAlertSettings(context.Background(), o.ID)
		ex, _ := w.h.store.ExportOwner(context.Background(), o.ID)
		var keyState []string
		for _, k := range ks {
			keyState = append(keyState, fmt.Sprint(k.ExpiresAt, k.ReplacedBy))
		}
		return fmt.Sprintf("%+v plans=%d pools=%d keys=%d%v tickets=%d owner=%s/%s/%v/%d app=%s/%d/%d node=%v alerts=%+v/%v", st, len(w.h.MustPlans()), len(pools), len(ks), keyState,
			len(ex["registration_tickets"]), o.Status, o.PlanID, o.LegalHold, o.TokenEpoch, a.Name, a.RotationDays, a.RegistrationCap, n.Enabled, al, alErr) + fmt.Sprint(w.h.MustPlans())
	}
	before := stats()
	for _, p := range posts {
		for name, token := range map[string]*string{"no token": nil, "empty token": new(string), "another session's token": &bobToken, "garbage": ptr("x")} {
			form := url.Values{}
			for k, v := range p.form {
				form[k] = v
			}
			if token != nil {
				form.Set(csrfField, *token)
			}
			res := p.b.do(http.MethodPost, p.action, form)
			if res.Status != http.StatusForbidden {
				t.Errorf("POST %s with %s: status %d, want 403", p.action, name, res.Status)
				continue
			}
			res.mustContain(t, "nothing was changed")
			if res.Header.Get("Set-Cookie") != "" && strings.Contains(res.Header.Get("Set-Cookie"), sessionCookie) {
				t.Errorf("POST %s with %s set a session cookie", p.action, name)
			}
		}
	}
	if after := stats(); after != before {
		t.Errorf("state changed by refused posts:\nbefore %s\nafter  %s", before, after)
	}
	// A token stops working at sign-out.
	old := csrfFieldRE.FindStringSubmatch(w.a.get("/apps").Body)[1]
	w.a.submit("/apps", "/logout", nil).mustRedirect(t, "/login")
	w.a.signInAs(w.h.MustLogin(w.owner.Owner.Email, testPassword).Token)
	w.a.do(http.MethodPost, "/apps", url.Values{"name": {"late"}, csrfField: {old}}).mustStatus(t, http.StatusForbidden)
	if n := w.appCount(t, w.owner.Owner.ID); n != 1 {
		t.Errorf("apps = %d after a post with a token of an ended session", n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestDashboardFormErrors: a bad form comes back with the message next to
// its field (aria-describedby), the field marked invalid and focused.
func TestDashboardFormErrors(t *testing.T) {
	w := newDashWorld(t)
	fieldErr := func(t *testing.T, p pageResponse, id, msg string) {
		t.Helper()
		re := regexp.MustCompile(`<input id="` + id + `"[^>]*aria-invalid="true" aria-describedby="` + id + `-error"[^>]*autofocus>`)
		if !re.MatchString(p.Body) {
			t.Errorf("field %s is not marked invalid, described and focused:\n%.4000s", id, p.Body)
		}
		if !strings.Contains(p.Body, `<p class="error" id="`+id+`-error">`) {
			t.Errorf("no error element %s-error", id)
		}
		p.mustContain(t, msg)
		if strings.Count(p.Body, " autofocus") != 1 {
			t.Errorf("%d autofocus attributes, want 1", strings.Count(p.Body, " autofocus"))
		}
	}
	t.Run("app name", func(t *testing.T) {
		p := w.a.submit("/apps", "/apps", url.Values{"name": {""}}).mustStatus(t, http.StatusBadRequest)
		fieldErr(t, p, "app-name", "Name must be 1-100 printable characters.")
	})
	t.Run("rename", func(t *testing.T) {
		p := w.a.submit("/apps/"+w.app.ID, "/apps/"+w.app.ID+"/rename", url.Values{"name": {strings.Repeat("x", 101)}}).mustStatus(t, http.StatusBadRequest)
		fieldErr(t, p, "rename-name", "Name must be 1-100 printable characters.")
	})
	t.Run("key name", func(t *testing.T) {
		p := w.a.submit("/apps/"+w.app.ID, "/apps/"+w.app.ID+"/keys", url.Values{"name": {" "}}).mustStatus(t, http.StatusBadRequest)
		fieldErr(t, p, "key-name", "Name must be 1-100 printable characters.")
	})
	t.Run("signup password", func(t *testing.T) {
		b := newBrowser(t, w.h)
		p := b.submit("/signup", "/signup", url.Values{"email": {"short@example.com"}, "password": {"short"}}).mustStatus(t, http.StatusBadRequest)
		fieldErr(t, p, "signup-password", "Password must be at least 10 characters.")
		p.mustContain(t, `value="short@example.com"`)
		if _, ok := b.jar[sessionCookie]; ok {
			t.Error("a failed signup signed in")
		}
	})
	t.Run("signup email taken", func(t *testing.T) {
		b := newBrowser(t, w.h)
		p := b.submit("/signup", "/signup", url.Values{"email": {w.owner.Owner.Email}, "password": {testPassword}}).mustStatus(t, http.StatusConflict)
		fieldErr(t, p, "signup-email", "An account with this email already exists")
	})
	t.Run("wrong password", func(t *testing.T) {
		b := newBrowser(t, w.h)
		p := b.submit("/login", "/login", url.Values{"email": {w.owner.Owner.Email}, "password": {"not the password"}}).mustStatus(t, http.StatusUnauthorized)
		p.mustContain(t, `role="alert">Wrong email or password.`)
		unknown := b.submit("/login", "/login", url.Values{"email": {"nobody@example.com"}, "password": {"not the password"}}).mustStatus(t, http.StatusUnauthorized)
		unknown.mustContain(t, "Wrong email or password.")
		if _, ok := b.jar[sessionCookie]; ok {
			t.Error("a failed login signed in")
		}
	})
	t.Run("pool country", func(t *testing.T) {
		p := w.admin.submit("/admin/pools", "/admin/pools", url.Values{"name": {"Paris"}, "region": {"eu-west"}, "country": {"France"}, "city": {"Paris"}}).
			mustStatus(t, http.StatusBadRequest)
		fieldErr(t, p, "pool-country", "Country must be an ISO 3166 alpha-2 code such as DE.")
		p.mustContain(t, `value="Paris"`, `value="eu-west"`)
	})
	t.Run("plan fields", func(t *testing.T) {
		base := url.Values{"slug": {"team"}, "name": {"Team"}, "max_apps": {"3"}, "max_devices": {"100"}, "max_own_nodes": {"0"}, "price": {"9.50"}, "currency": {"EUR"}}
		for _, tc := range []struct{ field, value, id, msg string }{
			{"slug", "Bad Slug", "plan-slug", "Slug must be 1-32 lower-case letters"},
			{"max_apps", "many", "plan-max_apps", "Max apps must be a whole number."},
			{"price", "9.999", "plan-price", "Price must be an amount such as 49 or 49.90."},
			{"currency", "euro", "plan-currency", "Currency must be an ISO 4217 code"},
		} {
			form := url.Values{}
			for k, v := range base {
				form[k] = v
			}
			form.Set(tc.field, tc.value)
			p := w.admin.submit("/admin/plans", "/admin/plans", form).mustStatus(t, http.StatusBadRequest)
			fieldErr(t, p, tc.id, tc.msg)
		}
		w.admin.submit("/admin/plans", "/admin/plans", base).mustRedirect(t, "/admin/plans?done=plan-created")
		p := w.admin.submit("/admin/plans", "/admin/plans", base).mustStatus(t, http.StatusConflict)
		p.mustContain(t, "Something with this name already exists")
	})
	t.Run("legal hold reason", func(t *testing.T) {
		path := "/admin/owners/" + w.owner.Owner.ID
		p := w.admin.submit(path, path+"/legal-hold", url.Values{"action": {"set"}, "reason": {""}}).mustStatus(t, http.StatusBadRequest)
		fieldErr(t, p, "hold-reason", "Reason must be 1-500 printable characters.")
	})
	t.Run("delete confirmation", func(t *testing.T) {
		p := w.a.submit("/account/delete", "/account/delete", url.Values{"confirm": {"someone@else.example"}}).mustStatus(t, http.StatusBadRequest)
		fieldErr(t, p, "delete-confirm", "Type your email address, "+w.owner.Owner.Email+", to confirm.")
		if !w.ownerExists(t, w.owner.Owner.ID) {
			t.Fatal("the account was deleted without the confirmation")
		}
	})
	t.Run("plan limit", func(t *testing.T) {
		b := newBrowser(t, w.h)
		b.signup(w.h.NewEmail())
		b.submit("/apps", "/apps", url.Values{"name": {"one"}}).mustRedirect(t, "/apps/")
		// Free allows one app: the form is replaced by an explanation, and
		// a post anyway is refused with a message a person understands.
		b.get("/apps").mustContain(t, "Your plan, Free, allows 1 app").mustNotContain(t, `action="/apps"`)
		p := b.submit("/apps", "/apps", url.Values{"name": {"two"}}).mustStatus(t, http.StatusForbidden)
		p.mustContain(t, `role="alert">Your plan's limit is reached.`)
		// Moving down below usage is refused too.
		b.submit("/plan", "/plan", url.Values{"plan": {"pro"}}).mustRedirect(t, "/plan?done=plan-changed")
		b.submit("/apps", "/apps", url.Values{"name": {"two"}}).mustRedirect(t, "/apps/")
		p = b.submit("/plan", "/plan", url.Values{"plan": {"free"}}).mustStatus(t, http.StatusForbidden)
		p.mustContain(t, "You use more apps or devices than that plan allows.")
	})
}

// TestDashboardOwnerFlow goes through an owner's work: app, key shown once,
// devices with paging, config and QR, rename, revoke, delete.
func TestDashboardOwnerFlow(t *testing.T) {
	w := newDashWorld(t)
	logStart := w.h.logs.Len()
	appPath := "/apps/" + w.app.ID

	// A key is shown once, and works.
	p := w.a.submit(appPath, appPath+"/keys", url.Values{"name": {"backend"}}).mustStatus(t, http.StatusCreated)
	checkPage(t, "key created", p)
	m := regexp.MustCompile(`<code id="new-key" class="secret">(tlk_[A-Za-z0-9_-]{43})</code>`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no key on the page:\n%s", p.Body)
	}
	key := m[1]
	p.mustContain(t, `data-copy="new-key"`, "shown only this once")
	w.a.get(appPath).mustStatus(t, 200).mustContain(t, "backend", key[:12]).mustNotContain(t, key)
	for i := 0; i < 4; i++ {
		w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: key, Body: api.DeviceInput{PublicKey: newWGKey(t), ExternalRef: ptr(fmt.Sprintf("user-%d", i))}}).
			MustStatus(t, 201)
	}

	// Paging through five devices two at a time.
	var seen []string
	next := appPath + "/devices?limit=2"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		p := w.a.get(next).mustStatus(t, 200)
		rows := regexp.MustCompile(`<code class="key">([^<]+)</code>`).FindAllStringSubmatch(p.Body, -1)
		for _, r := range rows {
			seen = append(seen, r[1])
		}
		next = ""
		if m := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(p.Body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 5 {
		t.Fatalf("device browser showed %d devices over its pages, want 5: %v", len(seen), seen)
	}
	w.a.get(appPath+"/devices?cursor=bogus").mustStatus(t, http.StatusBadRequest)
	w.a.get(appPath+"/devices").mustContain(t, "user-0", "5 devices")

	// Config and QR.
	cfg := w.a.get(appPath+"/devices/"+w.dev.ID+"/config?server="+w.node.NodeID).mustStatus(t, 200)
	if cd := cfg.Header.Get("Content-Disposition"); !strings.Contains(cd, "attachment") {
		t.Errorf("Content-Disposition = %q", cd)
	}
	for _, s := range []string{"[Interface]", "Address = " + w.dev.IPv4 + "/32, " + w.dev.IPv6 + "/128", "[Peer]", "Endpoint = 203.0.113.10:51820", privateKeyPlaceholder} {
		if !strings.Contains(cfg.Body, s) {
			t.Errorf("config lacks %q:\n%s", s, cfg.Body)
		}
	}
	qrp := w.a.get(appPath+"/devices/"+w.dev.ID+"/config?server="+w.node.NodeID+"&format=qr").mustStatus(t, 200)
	if qrp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(qrp.Body, "\x89PNG") {
		t.Errorf("QR: %s, %q", qrp.Header.Get("Content-Type"), qrp.Body[:8])
	}
	w.a.get(appPath+"/devices/"+w.dev.ID+"?server="+w.node.NodeID).mustStatus(t, 200).
		mustContain(t, `<img src="`+appPath+"/devices/"+w.dev.ID+"/config?server="+w.node.NodeID+"&format=qr", "as a QR code")
	w.a.get(appPath+"/devices/"+w.dev.ID+"?server=nope").mustStatus(t, http.StatusBadRequest)
	w.a.get(appPath+"/devices/"+w.dev.ID+"/config").mustStatus(t, http.StatusBadRequest).mustContain(t, "Choose a server")
	w.a.get(appPath+"/devices/"+w.dev.ID+"/config?server=00000000-0000-4000-8000-000000000000").mustStatus(t, http.StatusBadRequest)

	// Rename, revoke, delete, each after a redirect with a confirmation.
	w.a.submit(appPath, appPath+"/rename", url.Values{"name": {"Renamed"}}).mustRedirect(t, appPath+"?done=app-renamed")
	w.a.get(appPath+"?done=app-renamed").mustContain(t, "App renamed.", "Renamed")
	keys, _ := w.h.store.ListAPIKeys(context.Background(), w.owner.Owner.ID, w.app.ID)
	var backend store.APIKey
	for _, k := range keys {
		if k.Name == "backend" {
			backend = k
		}
	}
	revoke := appPath + "/keys/" + backend.ID + "/revoke"
	w.a.get(revoke).mustStatus(t, 200).mustContain(t, "Revoke the secret API key “backend”")
	w.a.submit(revoke, revoke, nil).mustRedirect(t, appPath+"?done=key-revoked")
	w.h.Do(request{Method: "GET", Path: "/api/v1/devices", Token: key}).MustStatus(t, 401)
	w.a.submit(appPath+"/delete", appPath+"/delete", nil).mustRedirect(t, "/apps?done=app-deleted")
	w.a.get("/apps?done=app-deleted").mustContain(t, "App deleted", "You have no apps yet")
	if st, _ := w.h.store.Stats(context.Background()); st.Devices != 0 {
		t.Errorf("%d devices left after the app's deletion", st.Devices)
	}

	// The log holds the route patterns and nothing of the requests.
	logs := w.h.logs.Since(logStart)
	for _, secret := range []string{key, w.owner.Owner.Email, w.app.ID, w.dev.ID, w.dev.PublicKey, "Renamed", "user-0"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q", secret)
		}
	}
	for _, line := range MustParseLogLines(t, logs) {
		if line["msg"] == "request" {
			if got := strings.Join(logKeys(line), ","); got != strings.Join(requestLogKeys, ",") {
				t.Errorf("request log keys %s", got)
			}
		}
	}
	if !strings.Contains(logs, `"route":"/apps/:app_id/devices/:device_id/config"`) {
		t.Error("the dashboard's requests are not logged by route pattern")
	}
}

// TestDashboardAccount: export, legal hold, deletion, sign-out.
func TestDashboardAccount(t *testing.T) {
	w := newDashWorld(t)
	ex := w.a.get("/account/export").mustStatus(t, 200)
	if !strings.Contains(ex.Header.Get("Content-Disposition"), "traceless-export.json") {
		t.Errorf("export Content-Disposition = %q", ex.Header.Get("Content-Disposition"))
	}
	var export api.Export
	if err := json.Unmarshal([]byte(ex.Body), &export); err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	if !strings.Contains(ex.Body, w.owner.Owner.Email) || !strings.Contains(ex.Body, w.dev.PublicKey) {
		t.Errorf("export lacks the account's data:\n%s", ex.Body)
	}

	// An operator sets a legal hold; the owner's deletion is refused with
	// the reason; after the release it goes through.
	ownerPath := "/admin/owners/" + w.owner.Owner.ID
	w.admin.submit(ownerPath, ownerPath+"/legal-hold", url.Values{"action": {"set"}, "reason": {"Open billing dispute #42"}}).
		mustRedirect(t, ownerPath+"?done=hold-set")
	w.admin.get(ownerPath+"?done=hold-set").mustContain(t, "Legal hold set", "Open billing dispute #42", "Release the legal hold")
	w.a.get("/account/delete").mustContain(t, "under a legal hold", "Open billing dispute #42")
	p := w.a.submit("/account/delete", "/account/delete", url.Values{"confirm": {strings.ToUpper(w.owner.Owner.Email)}}).mustStatus(t, http.StatusConflict)
	p.mustContain(t, `role="alert">The account is under legal hold and cannot be deleted now: Open billing dispute #42`)
	if !w.ownerExists(t, w.owner.Owner.ID) {
		t.Fatal("a held account was deleted")
	}
	w.admin.submit(ownerPath, ownerPath+"/legal-hold", url.Values{"action": {"release"}}).mustRedirect(t, ownerPath+"?done=hold-released")

	p = w.a.submit("/account/delete", "/account/delete", url.Values{"confirm": {w.owner.Owner.Email}}).mustRedirect(t, "/login?done=deleted")
	if _, ok := w.a.jar[sessionCookie]; ok {
		t.Error("the session cookie outlived the account")
	}
	w.a.get(p.Location).mustStatus(t, 200).mustContain(t, "Your account was deleted")
	if w.ownerExists(t, w.owner.Owner.ID) {
		t.Fatal("the account still exists")
	}
	if st, _ := w.h.store.Stats(context.Background()); st.Devices != 0 || st.Apps != 0 {
		t.Errorf("after deletion: %+v", st)
	}
	// The old session no longer works anywhere.
	old := newBrowser(t, w.h)
	old.signInAs(w.owner.Token)
	old.get("/apps").mustRedirect(t, "/login")

	// Sign-out ends the session everywhere.
	b := newBrowser(t, w.h)
	b.signup(w.h.NewEmail())
	tok := b.jar[sessionCookie]
	b.submit("/apps", "/logout", nil).mustRedirect(t, "/login?done=signed-out")
	again := newBrowser(t, w.h)
	again.signInAs(tok)
	again.get("/apps").mustRedirect(t, "/login")
}

// TestDashboardSessionCookie: the dashboard's cookies are HttpOnly and
// SameSite=Strict.
func TestDashboardSessionCookie(t *testing.T) {
	h := newHarness(t)
	r := h.Serve(request{Method: "GET", Path: "/login"})
	r.MustStatus(t, 200)
	var csrf *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == csrfCookie {
			csrf = c
		}
	}
	if csrf == nil || !csrf.HttpOnly || csrf.SameSite != http.SameSiteStrictMode {
		t.Fatalf("form cookie = %+v", csrf)
	}
	tok := csrfFieldRE.FindStringSubmatch(string(r.Body))[1]
	email := h.NewEmail()
	res := h.Serve(request{Method: "POST", Path: "/signup", ContentType: "application/x-www-form-urlencoded", Cookie: csrf,
		Body: url.Values{"email": {email}, "password": {testPassword}, "csrf": {tok}}.Encode()})
	res.MustStatus(t, http.StatusSeeOther)
	ck := res.SessionCookie()
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Fatalf("session cookie = %+v", ck)
	}
}

// TestDashboardOperatorFlow: plans, pools, tokens with the agent command,
// nodes online with their posture, owners' status and plan.
func TestDashboardOperatorFlow(t *testing.T) {
	w := newDashWorld(t)
	a := w.admin

	// Plan: create, edit, retire, offer again.
	a.submit("/admin/plans", "/admin/plans", url.Values{"slug": {"team"}, "name": {"Team"}, "max_apps": {"3"}, "max_devices": {"1,000"},
		"max_own_nodes": {"1"}, "price": {"19.9"}, "currency": {"eur"}, "pools": {w.pool.ID}}).mustRedirect(t, "/admin/plans?done=plan-created")
	team, err := w.h.store.GetPlanBySlug(context.Background(), "team")
	if err != nil {
		t.Fatal(err)
	}
	if team.PriceCents != 1990 || team.MaxDevices != 1000 || team.Currency != "EUR" || len(team.PoolIDs) != 1 {
		t.Fatalf("created plan = %+v", team)
	}
	edit := "/admin/plans/" + team.ID
	a.get(edit).mustContain(t, `value="19.90"`, `value="1000"`, "checked")
	a.submit(edit, edit, url.Values{"slug": {"team"}, "name": {"Team+"}, "max_apps": {"4"}, "max_devices": {"2000"},
		"max_own_nodes": {"1"}, "price": {"29"}, "currency": {"EUR"}}).mustRedirect(t, "/admin/plans?done=plan-saved")
	team, _ = w.h.store.GetPlanBySlug(context.Background(), "team")
	if team.Name != "Team+" || team.PriceCents != 2900 || len(team.PoolIDs) != 0 {
		t.Fatalf("edited plan = %+v", team)
	}
	a.submit("/admin/plans", edit+"/retire", url.Values{"retired": {"true"}}).mustRedirect(t, "/admin/plans?done=plan-retired")
	w.a.get("/plan").mustNotContain(t, "Team+")
	a.get("/admin/plans").mustContain(t, "Retired", "Offer again")
	a.submit("/admin/plans", edit+"/retire", url.Values{"retired": {"false"}}).mustRedirect(t, "/admin/plans?done=plan-restored")
	w.a.get("/plan").mustContain(t, "Team+", "29.00 EUR")

	// Pool and enrollment token with the agent's command line.
	a.submit("/admin/pools", "/admin/pools", url.Values{"name": {"Paris 1"}, "region": {"eu-west"}, "country": {"fr"}, "city": {"Paris"}}).
		mustRedirect(t, "/admin/pools?done=pool-created")
	pools, _ := w.h.store.ListPools(context.Background(), "")
	var paris store.Pool
	for _, p := range pools {
		if p.Name == "Paris 1" {
			paris = p
		}
	}
	if paris.Country != "FR" {
		t.Fatalf("pool = %+v", paris)
	}
	p := a.submit("/admin/pools", "/admin/pools/"+paris.ID+"/enrollment-tokens", nil).mustStatus(t, http.StatusCreated)
	checkPage(t, "enrollment token", p)
	m := regexp.MustCompile(`<code id="enroll-token" class="secret">(tle_[A-Za-z0-9_-]+)</code>`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no token on the page:\n%s", p.Body)
	}
	// The commands are api.EnrollCommand's, as the CLI prints them: the
	// token in the environment, never on the command line.
	p.mustContain(t, api.EnrollCommand("http://example.com", m[1], "", api.AgentCredentialFile),
		api.EnrollCommand("http://example.com", m[1], "", api.AgentTmpfsCredentialFile),
		"TRACELESS_AGENT_ENROLL_TOKEN="+m[1]+" traceless-agent --server http://example.com --endpoint <HOST:PORT> --credential-file /var/lib/traceless-agent/credential.json",
		api.AgentTmpfsConsequence, "shown only this once").mustNotContain(t, "--enroll-token")
	var er api.EnrollResponse
	w.h.Do(request{Method: "POST", Path: "/agent/v1/enroll", Body: api.EnrollRequest{Token: m[1], Name: "paris-a", PublicKey: newWGKey(t), Endpoint: "198.51.100.7:51820"}}).
		MustStatus(t, 201).MustDecode(t, &er)
	a.get("/admin/nodes").mustContain(t, "paris-a", "Offline", "No report yet")
	var nt api.NodeToken
	w.h.Do(request{Method: "POST", Path: "/agent/v1/token", Token: er.Credential}).MustStatus(t, 200).MustDecode(t, &nt)
	all := api.Posture{ConntrackAccountingOff: true, ConntrackTimestampsOff: true, NoLogRules: true, SwapOff: true, NotDumpable: true, CoreSizeZero: true, NoStateOnDisk: true}
	w.h.Do(request{Method: "POST", Path: "/agent/v1/status", Token: nt.Token, Body: api.NodeStatus{AppliedRevision: 3, PeerCount: 0, InterfaceUp: true, Version: "t", Posture: all}}).MustStatus(t, 200)
	nodes := a.get("/admin/nodes").mustStatus(t, 200)
	nodes.mustContain(t, "paris-a", "all checks pass")
	if n := strings.Count(nodes.Body, `<li class="pass">`); n != 7 {
		t.Errorf("%d passing checks shown, want 7", n)
	}
	a.get("/admin/pools").mustContain(t, "Paris 1")

	// Owners: suspend and reactivate, change plan.
	ownerPath := "/admin/owners/" + w.owner.Owner.ID
	a.submit(ownerPath, ownerPath, url.Values{"status": {"suspended"}, "plan": {"pro"}}).mustRedirect(t, ownerPath+"?done=owner-saved")
	w.a.get("/apps").mustStatus(t, http.StatusForbidden).mustContain(t, "suspended")
	a.get("/admin/owners").mustContain(t, "Suspended")
	a.submit(ownerPath, ownerPath, url.Values{"status": {"active"}, "plan": {"business"}}).mustRedirect(t, ownerPath)
	if o := w.h.MustGetOwner(w.owner.Owner.ID); o.Status != store.StatusActive || o.PlanID != w.h.MustPlanID("business") {
		t.Fatalf("owner = %+v", o)
	}
	w.a.get("/apps").mustStatus(t, 200)
	// Operators cannot suspend themselves.
	admin, _ := w.h.store.GetOwnerByEmail(context.Background(), adminEmail)
	self := "/admin/owners/" + admin.ID
	a.get(self).mustContain(t, "This is your own account")
	a.submit(self, self, url.Values{"status": {"suspended"}, "plan": {"free"}}).mustStatus(t, http.StatusBadRequest)
	if o := w.h.MustGetOwner(admin.ID); o.Status != store.StatusActive {
		t.Fatal("the operator suspended itself")
	}
}

// TestDashboardOwnersPaging pages through accounts.
func TestDashboardOwnersPaging(t *testing.T) {
	w := newDashWorld(t)
	for i := 0; i < 3; i++ {
		w.h.MustOwner()
	}
	seen := map[string]bool{}
	next := "/admin/owners?limit=2"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		p := w.admin.get(next).mustStatus(t, 200)
		for _, m := range regexp.MustCompile(`href="/admin/owners/([0-9a-f-]{36})"`).FindAllStringSubmatch(p.Body, -1) {
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`href="([^"]+)" rel="next"`).FindStringSubmatch(p.Body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if len(seen) != 5 {
		t.Errorf("saw %d accounts over the pages, want 5", len(seen))
	}
	w.admin.get("/admin/owners?cursor="+url.QueryEscape("' OR 1=1")).mustStatus(t, http.StatusBadRequest)
}
