package controlplane

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/testoidc"
	"github.com/traceless-vpn/traceless/store"
)

// TestCanarySSO runs every single sign-on route with canaries — the
// client's address and user agent, the provider's subject and email for
// the person, the state, the code, the sealed cookies, the account's email
// and password — and checks that the log and /metrics hold none of them,
// each request logs one line with the usual keys, and the database holds
// nothing of the provider's answer but the issuer and the subject.
func TestCanarySSO(t *testing.T) {
	canaryUser := testoidc.User{ID: "canary-subject-5e1d", Username: "canary-user-5e1d", Password: "canary provider pass 5e1d",
		Email: "canary-claim-5e1d@example.org", EmailVerified: true}
	linkUser := testoidc.User{ID: "canary-link-subject-5e1d", Username: "canary-link-5e1d", Password: "canary link pass 5e1d",
		Email: "canary-linked-5e1d@example.org", EmailVerified: true}
	ln := mustListen(t)
	base := "http://" + ln.Addr().String()
	op := testoidc.Start(t, []testoidc.User{canaryUser, linkUser}, base+"/api/v1/auth/oidc/test/callback")
	h := newHarnessListening(t, ln, func(o *Options) {
		o.PublicURL = base
		o.OIDCProviders = []OIDCProvider{{Name: "test", Label: "Test ID", Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret}}
	})
	c := &canaryRun{t: t, h: h, called: map[string]bool{}, paths: map[string]string{}}
	c.secret(cnClient...)
	const ownEmail = "canary-sso-own-5e1d@example.org"
	c.secret(canaryUser.ID, canaryUser.Email, canaryUser.Username, canaryUser.Password, linkUser.ID, linkUser.Email, linkUser.Password,
		ownEmail, cnOwnerPass, op.ClientSecret)
	json := map[string]string{"Accept": "application/json"}
	provider := &http.Client{Timeout: 30 * time.Second}

	// signIn runs start (through c), the provider's login, and the
	// callback (through c) as u; it returns the callback's answer.
	signIn := func(u testoidc.User, want int) response {
		t.Helper()
		r := c.do(request{Method: http.MethodGet, Path: "/api/v1/auth/oidc/test/start?next=%2Fpools"}, "GET /api/v1/auth/oidc/:provider/start", http.StatusFound)
		flow := cookieOf(r, oidcFlowCookie)
		loc, _ := url.Parse(r.Header.Get("Location"))
		c.secret(flow.Value, loc.Query().Get("state"), loc.Query().Get("nonce"), loc.Query().Get("code_challenge"))
		cb, err := op.Login(provider, loc.String(), u.Username, u.Password)
		if err != nil {
			t.Fatal(err)
		}
		c.secret(cb.Query().Get("code"))
		return c.do(request{Method: http.MethodGet, Path: cb.RequestURI(), Cookie: flow, Header: json}, "GET /api/v1/auth/oidc/:provider/callback", want)
	}

	// A new account under an email of its own: the provider's email claim
	// is not stored.
	r := signIn(canaryUser, http.StatusAccepted)
	pending := cookieOf(r, oidcPendingCookie)
	c.secret(pending.Value)
	var ar api.AuthResponse
	c.do(request{Method: http.MethodPost, Path: "/api/v1/auth/oidc/signup", Cookie: pending, Body: api.SSOSignup{Email: ownEmail}},
		"POST /api/v1/auth/oidc/signup", http.StatusCreated).MustDecode(t, &ar)
	c.secret(ar.Token, ar.Owner.ID)
	var list api.IdentityList
	c.do(request{Method: http.MethodGet, Path: "/api/v1/me/identities", Token: ar.Token}, "GET /api/v1/me/identities", http.StatusOK).MustDecode(t, &list)
	c.secret(list.Identities[0].ID)
	// Its last provider, without a password: refused.
	c.do(request{Method: http.MethodDelete, Path: "/api/v1/me/identities/" + list.Identities[0].ID, Token: ar.Token},
		"DELETE /api/v1/me/identities/:identity_id", http.StatusForbidden)
	// Signed in again.
	var again api.AuthResponse
	signIn(canaryUser, http.StatusOK).MustDecode(t, &again)
	c.secret(again.Token)

	// An existing account linked with its password, then unlinked.
	if _, err := h.srv.createAccount(t.Context(), linkUser.Email, cnOwnerPass, store.RoleOwner); err != nil {
		t.Fatal(err)
	}
	r = signIn(linkUser, http.StatusAccepted)
	pending = cookieOf(r, oidcPendingCookie)
	c.secret(pending.Value)
	var linked api.AuthResponse
	c.do(request{Method: http.MethodPost, Path: "/api/v1/auth/oidc/link", Cookie: pending, Body: api.Credentials{Email: linkUser.Email, Password: cnOwnerPass}},
		"POST /api/v1/auth/oidc/link", http.StatusOK).MustDecode(t, &linked)
	c.secret(linked.Token, linked.Owner.ID)
	c.do(request{Method: http.MethodGet, Path: "/api/v1/me/identities", Token: linked.Token}, "GET /api/v1/me/identities", http.StatusOK).MustDecode(t, &list)
	c.secret(list.Identities[0].ID)
	// The dashboard's pages (without a waiting sign-in, and with forms
	// without their token: refused, but logged like any request).
	sess := &http.Cookie{Name: sessionCookie, Value: linked.Token}
	c.do(request{Method: http.MethodGet, Path: "/login/sso", Cookie: pending}, "GET /login/sso", 0)
	c.do(request{Method: http.MethodPost, Path: "/login/sso/signup", Cookie: pending, Body: "email=" + url.QueryEscape(ownEmail), ContentType: "application/x-www-form-urlencoded"}, "POST /login/sso/signup", 0)
	c.do(request{Method: http.MethodPost, Path: "/login/sso/link", Cookie: pending, Body: "email=" + url.QueryEscape(linkUser.Email) + "&password=" + url.QueryEscape(cnOwnerPass),
		ContentType: "application/x-www-form-urlencoded"}, "POST /login/sso/link", 0)
	c.do(request{Method: http.MethodPost, Path: "/account/sso/" + list.Identities[0].ID + "/unlink", Cookie: sess, Body: "password=" + url.QueryEscape(cnOwnerPass),
		ContentType: "application/x-www-form-urlencoded"}, "POST /account/sso/:identity_id/unlink", 0)
	c.do(request{Method: http.MethodDelete, Path: "/api/v1/me/identities/" + list.Identities[0].ID, Token: linked.Token, Body: api.IdentityUnlink{Password: cnOwnerPass}},
		"DELETE /api/v1/me/identities/:identity_id", http.StatusNoContent)
	metrics := c.do(request{Method: http.MethodGet, Path: "/metrics"}, "GET /metrics", http.StatusOK)

	for _, rt := range registeredRoutes(h) {
		if (strings.Contains(rt, "/oidc/") || strings.Contains(rt, "/identities") || strings.Contains(rt, "/sso")) && !c.called[rt] {
			t.Errorf("single sign-on route %s was not called", rt)
		}
	}
	logs, body := strings.ToLower(h.logs.String()), strings.ToLower(string(metrics.Body))
	for _, cn := range c.secrets {
		if strings.Contains(logs, strings.ToLower(cn)) {
			t.Errorf("the log holds %q", cn)
		}
		if strings.Contains(body, strings.ToLower(cn)) {
			t.Errorf("/metrics holds %q", cn)
		}
	}
	// The database holds the subjects (the control) and nothing else of
	// the provider's answers: not the email claim the owner did not sign
	// up with, not the provider's username.
	mustCheckpoint(t, h)
	files := mustFiles(t, h.dbPath)
	if !strings.Contains(string(files[h.dbPath]), canaryUser.ID) {
		t.Error("control: the database does not hold the linked subject; the byte search cannot be trusted")
	}
	mustNotHold(t, files, "after single sign-on", append([]string{canaryUser.Email, canaryUser.Username, linkUser.Username, linkUser.ID,
		op.ClientSecret, cnOwnerPass}, cnClient...)...)
	if t.Failed() {
		t.Logf("log:\n%s", h.logs.String())
	}
}

func cookieOf(r response, name string) *http.Cookie {
	for _, ck := range r.Cookies() {
		if ck.Name == name && ck.Value != "" {
			return &http.Cookie{Name: ck.Name, Value: ck.Value}
		}
	}
	return &http.Cookie{Name: name}
}
