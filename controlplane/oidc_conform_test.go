package controlplane_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/testoidc"
	"github.com/traceless-vpn/traceless/store"
)

// TestOpenAPISSOConform drives the single sign-on routes against a real
// OpenID provider and validates every request and answer, errors
// included, against the served document.
func TestOpenAPISSOConform(t *testing.T) {
	ann := testoidc.User{ID: "ann-subject", Username: "ann", Password: "ann's provider password", Email: "ann@example.com", EmailVerified: true}
	bob := testoidc.User{ID: "bob-subject", Username: "bob", Password: "bob's provider password", Email: "bob@example.com", EmailVerified: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	op := testoidc.Start(t, []testoidc.User{ann, bob}, base+"/api/v1/auth/oidc/test/callback")
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := controlplane.New(controlplane.Options{Store: st, Argon2: controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1},
		PublicURL: base, OIDCProviders: []controlplane.OIDCProvider{{Name: "test", Label: "Test ID", Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	if _, err := srv.Bootstrap(ctx, oaOperatorEmail, oaOperatorPassword, base); err != nil {
		t.Fatal(err)
	}
	c := newOAClient(t, &oaServer{srv: srv, http: hs})
	provider := &http.Client{Timeout: 30 * time.Second}

	// sign runs start (not validated here: this client follows its
	// redirect) and the provider's login, and returns the callback's path
	// and the flow cookie.
	noFollow := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sign := func(u testoidc.User) (string, *http.Cookie) {
		t.Helper()
		res, err := noFollow.Get(base + "/api/v1/auth/oidc/test/start")
		if err != nil || res.StatusCode != http.StatusFound {
			t.Fatalf("start: %v %v", res, err)
		}
		res.Body.Close()
		var flow *http.Cookie
		for _, ck := range res.Cookies() {
			if ck.Name == "traceless_oidc" {
				flow = ck
			}
		}
		cb, err := op.Login(provider, res.Header.Get("Location"), u.Username, u.Password)
		if err != nil {
			t.Fatal(err)
		}
		return cb.RequestURI(), flow
	}

	// A new account.
	cb, flow := sign(ann)
	var p api.SSOPending
	r := c.do(oaCall{method: "GET", path: cb, cookie: flow, want: http.StatusAccepted})
	r.decode(t, &p)
	pending := r.cookie("traceless_sso")
	c.do(oaCall{method: "POST", path: "/api/v1/auth/oidc/signup", cookie: pending, body: api.SSOSignup{Email: "not an email"}, want: 400, wantCode: api.CodeInvalidRequest})
	var ar api.AuthResponse
	c.do(oaCall{method: "POST", path: "/api/v1/auth/oidc/signup", cookie: pending, body: api.SSOSignup{}, want: http.StatusCreated}).decode(t, &ar)
	c.do(oaCall{method: "POST", path: "/api/v1/auth/oidc/signup", body: api.SSOSignup{}, want: 400, wantCode: api.CodeInvalidRequest})
	// The replayed callback, and one without the flow cookie.
	c.do(oaCall{method: "GET", path: cb, cookie: flow, want: http.StatusUnauthorized, wantCode: api.CodeUnauthorized})
	c.do(oaCall{method: "GET", path: cb, want: http.StatusBadRequest, wantCode: api.CodeInvalidRequest})
	// Signed in again.
	cb, flow = sign(ann)
	c.do(oaCall{method: "GET", path: cb, cookie: flow, want: http.StatusOK})
	var list api.IdentityList
	c.do(oaCall{method: "GET", path: "/api/v1/me/identities", token: ar.Token, want: 200}).decode(t, &list)
	id := list.Identities[0].ID
	c.do(oaCall{method: "DELETE", path: "/api/v1/me/identities/" + id, token: ar.Token, want: 403, wantCode: api.CodeForbidden})
	c.do(oaCall{method: "DELETE", path: "/api/v1/me/identities/00000000-0000-4000-8000-000000000000", token: ar.Token, want: 404, wantCode: api.CodeNotFound})

	// Linking an existing account with its password.
	var bobAuth api.AuthResponse
	c.do(oaCall{method: "POST", path: "/api/v1/auth/signup", body: api.Credentials{Email: bob.Email, Password: oaOwnerPassword}, want: 201}).decode(t, &bobAuth)
	cb, flow = sign(bob)
	pending = c.do(oaCall{method: "GET", path: cb, cookie: flow, want: http.StatusAccepted}).cookie("traceless_sso")
	c.do(oaCall{method: "POST", path: "/api/v1/auth/oidc/signup", cookie: pending, body: api.SSOSignup{}, want: 409, wantCode: api.CodeConflict})
	c.do(oaCall{method: "POST", path: "/api/v1/auth/oidc/link", cookie: pending, body: api.Credentials{Email: bob.Email, Password: "wrong password 123"}, want: 401, wantCode: api.CodeUnauthorized})
	c.do(oaCall{method: "POST", path: "/api/v1/auth/oidc/link", cookie: pending, body: api.Credentials{Email: bob.Email, Password: oaOwnerPassword}, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/me/identities", token: bobAuth.Token, want: 200}).decode(t, &list)
	c.do(oaCall{method: "DELETE", path: "/api/v1/me/identities/" + list.Identities[0].ID, token: bobAuth.Token,
		body: api.IdentityUnlink{Password: oaOwnerPassword}, want: http.StatusNoContent})

	// Unknown providers.
	c.do(oaCall{method: "GET", path: "/api/v1/auth/oidc/nope/start", want: 404, wantCode: api.CodeNotFound})
	c.do(oaCall{method: "GET", path: "/api/v1/auth/oidc/nope/callback?state=x&code=y", want: 404, wantCode: api.CodeNotFound})
	if !strings.HasPrefix(op.Issuer, "http://localhost:") {
		t.Errorf("issuer %s", op.Issuer)
	}
}
