package controlplane

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Canary values: each is sent to the server in some request and must never
// show up in the log or in /metrics.
const (
	canaryRemote      = "203.0.113.77:4242"
	canaryXFF         = "198.51.100.23"
	canaryRealIP      = "198.51.100.24"
	canaryUA          = "CanaryAgent/9.9 (canary-ua-7f3a)"
	canaryEmail       = "canary-7f3a@example.org"
	canaryPassword    = "Canary pass 7f3a secret!"
	canaryWrongPass   = "Wrong canary pass 9c1d"
	canaryUnknown     = "canary-unknown-7f3a@example.org"
	canaryAdminEmail  = "canary-admin-7f3a@example.org"
	canaryAdminPass   = "Canary admin pass 5e2b"
	canaryBadSetup    = "canary-bad-setup-token-3b9c"
	canaryBadToken    = "canary-bad-token-0d4e"
	canaryPathSegment = "canary-path-8a1f"
	canaryQuery       = "canary-query-6c2e"
	canaryHold        = "canary legal hold 2f7d"
	canaryPlanSlug    = "canary-plan-7f3a"
	canaryPlanName    = "Canary Plan 7f3a"
	canaryMissingID   = "0a0a0a0a-7f3a-4000-8000-canary000001"
	canaryMethod      = "CANARY-198.51.100.9-METHOD"
)

// requestLogKeys are the only keys a request log line may have.
var requestLogKeys = []string{"duration_ms", logLevelKey, logMethod, logMsgKey, logRoute, logStatus, logTimeKey}

const (
	logLevelKey = "level"
	logMsgKey   = "msg"
	logTimeKey  = "time"
)

// TestLogCanaries drives every route of the spine with canary client
// addresses, headers, credentials and path values, and proves that none of
// them reaches the log or /metrics, and that each request logs exactly one
// line with exactly method, route pattern, status and duration.
func TestLogCanaries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
	}{
		{name: "direct"},
		{name: "trusted proxies", trusted: []string{"203.0.113.0/24", "127.0.0.0/8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var nets []*net.IPNet
			for _, c := range tc.trusted {
				_, n, err := net.ParseCIDR(c)
				if err != nil {
					t.Fatal(err)
				}
				nets = append(nets, n)
			}
			h := newHarness(t, func(o *Options) { o.TrustedProxies = nets })
			testLogCanaries(t, h)
		})
	}
}

func testLogCanaries(t *testing.T, h *harness) {
	canaries := []string{
		canaryRemote, "203.0.113.", canaryXFF, canaryRealIP, "198.51.100.", canaryUA, "CanaryAgent", "canary-ua-7f3a",
		canaryEmail, canaryPassword, canaryWrongPass, canaryUnknown, canaryAdminEmail, canaryAdminPass,
		canaryBadSetup, canaryBadToken, canaryPathSegment, canaryQuery, canaryHold, canaryMissingID,
		h.SetupToken(),
	}
	addCanary := func(s string) {
		if s == "" {
			t.Fatal("empty canary")
		}
		canaries = append(canaries, s)
	}

	// step sends one request with the canary headers and checks its status
	// and its single log line.
	step := func(q request, route string, status int) response {
		t.Helper()
		q.RemoteAddr = canaryRemote
		if q.Header == nil {
			q.Header = map[string]string{}
		}
		q.Header["X-Forwarded-For"] = canaryXFF
		q.Header["X-Real-IP"] = canaryRealIP
		q.Header["User-Agent"] = canaryUA
		off := h.logs.Len()
		r := h.Serve(q)
		if r.Status != status {
			t.Fatalf("%s %s: status = %d, want %d; body %s", q.Method, q.Path, r.Status, status, r.Body)
		}
		lines := MustParseLogLines(t, h.logs.Since(off))
		if len(lines) != 1 {
			t.Fatalf("%s %s logged %d lines, want 1:\n%s", q.Method, q.Path, len(lines), h.logs.Since(off))
		}
		l := lines[0]
		if diff := cmp.Diff(requestLogKeys, logKeys(l)); diff != "" {
			t.Errorf("%s %s: log keys mismatch (-want +got):\n%s", q.Method, q.Path, diff)
		}
		want := map[string]any{logMsgKey: "request", logLevelKey: "INFO", logMethod: q.Method, logRoute: route, logStatus: float64(status)}
		got := map[string]any{logMsgKey: l[logMsgKey], logLevelKey: l[logLevelKey], logMethod: l[logMethod], logRoute: l[logRoute], logStatus: l[logStatus]}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s %s: log line mismatch (-want +got):\n%s", q.Method, q.Path, diff)
		}
		if _, ok := l[logDuration].(float64); !ok {
			t.Errorf("%s %s: duration_ms = %v, want a number", q.Method, q.Path, l[logDuration])
		}
		return r
	}
	get := func(path, token string) request {
		return request{Method: http.MethodGet, Path: path, Token: token}
	}

	// Public routes.
	step(get("/healthz", ""), "/healthz", http.StatusOK)
	step(request{Method: http.MethodHead, Path: "/healthz"}, "/healthz", http.StatusOK)
	step(get("/api/v1/plans", ""), "/api/v1/plans", http.StatusOK)
	step(get("/api/v1/privacy", ""), "/api/v1/privacy", http.StatusOK)
	step(get("/static/style.css", ""), "/static/*", http.StatusOK)

	// Setup: the page, a wrong token, the right one.
	step(get("/setup?token="+url.QueryEscape(h.SetupToken()), ""), "/setup", http.StatusOK)
	step(request{Method: http.MethodPost, Path: "/api/v1/setup", Body: api.Setup{Token: canaryBadSetup, Email: canaryAdminEmail, Password: canaryAdminPass}},
		"/api/v1/setup", http.StatusForbidden)
	r := step(request{Method: http.MethodPost, Path: "/api/v1/setup", Body: api.Setup{Token: h.SetupToken(), Email: canaryAdminEmail, Password: canaryAdminPass}},
		"/api/v1/setup", http.StatusCreated)
	var admin api.AuthResponse
	r.MustDecode(t, &admin)
	addCanary(admin.Token)
	addCanary(admin.Owner.ID)
	step(get("/setup?token="+url.QueryEscape(h.SetupToken()), ""), "/setup", http.StatusGone)

	// Owner sign-up, sign-in (right, wrong, unknown), me, plan change.
	r = step(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", Body: api.Credentials{Email: canaryEmail, Password: canaryPassword}},
		"/api/v1/auth/signup", http.StatusCreated)
	var owner api.AuthResponse
	r.MustDecode(t, &owner)
	addCanary(owner.Token)
	addCanary(owner.Owner.ID)
	r = step(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: canaryEmail, Password: canaryPassword}},
		"/api/v1/auth/login", http.StatusOK)
	var login api.AuthResponse
	r.MustDecode(t, &login)
	addCanary(login.Token)
	step(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: canaryEmail, Password: canaryWrongPass}},
		"/api/v1/auth/login", http.StatusUnauthorized)
	step(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: canaryUnknown, Password: canaryPassword}},
		"/api/v1/auth/login", http.StatusUnauthorized)
	step(get("/api/v1/me", owner.Token), "/api/v1/me", http.StatusOK)
	step(request{Method: http.MethodGet, Path: "/api/v1/me", Cookie: &http.Cookie{Name: sessionCookie, Value: login.Token}}, "/api/v1/me", http.StatusOK)
	step(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: owner.Token, Body: api.PlanChange{Plan: "pro"}}, "/api/v1/me/plan", http.StatusOK)

	// Operator: plan CRUD and owners.
	r = step(request{Method: http.MethodPost, Path: "/api/v1/admin/plans", Token: admin.Token,
		Body: api.PlanInput{Slug: canaryPlanSlug, Name: canaryPlanName, MaxApps: 1, MaxDevices: 7, Currency: "EUR"}},
		"/api/v1/admin/plans", http.StatusCreated)
	var plan api.Plan
	r.MustDecode(t, &plan)
	addCanary(plan.ID)
	step(request{Method: http.MethodPut, Path: "/api/v1/admin/plans/" + plan.ID, Token: admin.Token,
		Body: api.PlanInput{Slug: canaryPlanSlug, Name: canaryPlanName, MaxApps: 2, MaxDevices: 7, Currency: "EUR"}},
		"/api/v1/admin/plans/:plan_id", http.StatusOK)
	step(get("/api/v1/admin/plans", admin.Token), "/api/v1/admin/plans", http.StatusOK)
	step(get("/api/v1/admin/owners?limit=1&cursor="+owner.Owner.ID, admin.Token), "/api/v1/admin/owners", http.StatusOK)
	step(request{Method: http.MethodPut, Path: "/api/v1/admin/owners/" + owner.Owner.ID, Token: admin.Token,
		Body: map[string]any{"legal_hold": canaryHold}}, "/api/v1/admin/owners/:owner_id", http.StatusOK)
	step(request{Method: http.MethodPut, Path: "/api/v1/admin/owners/" + canaryMissingID, Token: admin.Token,
		Body: map[string]any{"status": "active"}}, "/api/v1/admin/owners/:owner_id", http.StatusNotFound)
	step(request{Method: http.MethodDelete, Path: "/api/v1/admin/plans/" + plan.ID, Token: admin.Token}, "/api/v1/admin/plans/:plan_id", http.StatusNoContent)
	step(request{Method: http.MethodDelete, Path: "/api/v1/admin/plans/" + canaryMissingID, Token: admin.Token}, "/api/v1/admin/plans/:plan_id", http.StatusNotFound)
	step(get("/api/v1/admin/owners", owner.Token), "/api/v1/admin/owners", http.StatusForbidden)

	// Error paths that do not panic.
	step(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", Body: `{"email":"` + canaryEmail + `","password":`},
		"/api/v1/auth/signup", http.StatusBadRequest)
	step(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", Body: map[string]string{"email": canaryEmail, canaryPathSegment: canaryPassword}},
		"/api/v1/auth/signup", http.StatusBadRequest)
	step(get("/api/v1/"+canaryPathSegment+"?q="+canaryQuery, ""), "unmatched", http.StatusNotFound)
	step(get("/api/v1/me", canaryBadToken), "/api/v1/me", http.StatusUnauthorized)
	step(request{Method: http.MethodPatch, Path: "/api/v1/plans?q=" + canaryQuery}, "/api/v1/plans", http.StatusMethodNotAllowed)
	// Any token is a valid method: a made-up one is logged as OTHER.
	off := h.logs.Len()
	h.Serve(request{Method: canaryMethod, Path: "/api/v1/plans", RemoteAddr: canaryRemote}).MustStatus(t, http.StatusMethodNotAllowed)
	if l := MustParseLogLines(t, h.logs.Since(off)); len(l) != 1 || l[0][logMethod] != "OTHER" {
		t.Errorf("made-up method logged as %v", l)
	}
	addCanary(canaryMethod)

	// Logout revokes.
	step(request{Method: http.MethodPost, Path: "/api/v1/auth/logout", Token: owner.Token}, "/api/v1/auth/logout", http.StatusNoContent)
	step(get("/api/v1/me", owner.Token), "/api/v1/me", http.StatusUnauthorized)

	metrics := step(get("/metrics", ""), "/metrics", http.StatusOK)

	logs := strings.ToLower(h.logs.String())
	body := strings.ToLower(string(metrics.Body))
	for _, c := range canaries {
		if strings.Contains(logs, strings.ToLower(c)) {
			t.Errorf("canary %q appears in the log", c)
		}
		if strings.Contains(body, strings.ToLower(c)) {
			t.Errorf("canary %q appears in /metrics", c)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", h.logs.String())
	}
	if !strings.Contains(body, `route="/api/v1/admin/owners/:owner_id"`) {
		t.Errorf("/metrics has no series for the owner route pattern:\n%s", body)
	}
}
