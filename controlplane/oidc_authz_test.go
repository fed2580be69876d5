package controlplane

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// fakeDiscovery serves an OpenID provider's discovery document and
// nothing else: enough for GET .../start, which only builds the
// authorization URL. The sign-in itself is tested against a real provider
// (oidc_test.go).
func fakeDiscovery(t *testing.T) string {
	t.Helper()
	var ts *httptest.Server
	ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": ts.URL, "authorization_endpoint": ts.URL + "/authorize", "token_endpoint": ts.URL + "/token",
			"jwks_uri": ts.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// ssoAuthzOptions configures the matrix's provider "test".
func ssoAuthzOptions(t *testing.T) func(*Options) {
	issuer := fakeDiscovery(t)
	return func(o *Options) {
		o.PublicURL = "http://cp.example.com"
		o.OIDCProviders = []OIDCProvider{{Name: "test", Label: "Test", Issuer: issuer, ClientID: "c", ClientSecret: "s"}}
	}
}

// ssoAuthzIdentity links two identities to owner A and returns one.
func ssoAuthzIdentity(t *testing.T, w *authzWorld) string {
	t.Helper()
	var first string
	for _, sub := range []string{"a-1", "a-2"} {
		id, err := w.h.store.LinkIdentity(context.Background(), w.owner.Owner.ID, w.h.srv.oidc.list[0].cfg.Issuer, sub)
		if err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = id.ID
		}
	}
	return first
}

// ssoAuthzRoutes are the single sign-on rows of the authorization matrix.
// The provider routes are public and answer every credential alike: a
// sign-in starts for anyone, and without this browser's flow or waiting
// sign-in cookie a callback, a signup or a link is refused (400).
func ssoAuthzRoutes() map[string]route {
	return map[string]route{
		"GET /api/v1/auth/oidc/:provider/start": {class: classPublic, ok: 302, request: func(*authzWorld) request {
			return request{Method: "GET", Path: "/api/v1/auth/oidc/test/start"}
		}},
		"GET /api/v1/auth/oidc/:provider/callback": {class: classPublic, fixed: 400, request: func(*authzWorld) request {
			return request{Method: "GET", Path: "/api/v1/auth/oidc/test/callback?state=x&code=y", Header: map[string]string{"Accept": "application/json"}}
		}},
		"POST /api/v1/auth/oidc/signup": {class: classPublic, fixed: 400, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/auth/oidc/signup", Body: api.SSOSignup{Email: "new@example.com"}}
		}},
		"POST /api/v1/auth/oidc/link": {class: classPublic, fixed: 400, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/auth/oidc/link", Body: api.Credentials{Email: "a@example.com", Password: testPassword}}
		}},
		"GET /api/v1/me/identities": {class: classOwner, ok: 200, request: func(*authzWorld) request {
			return request{Method: "GET", Path: "/api/v1/me/identities"}
		}},
		"DELETE /api/v1/me/identities/:identity_id": {class: classOwner, scoped: true, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/me/identities/" + w.identA}
		}},
		// Pages: without a waiting sign-in the page sends the visitor to
		// /login, and its forms are refused.
		"GET /login/sso": {class: classPublic, page: true, fixed: 303, request: func(*authzWorld) request {
			return request{Method: "GET", Path: "/login/sso"}
		}},
		"POST /login/sso/signup": {class: classPublic, page: true, fixed: 400, request: func(*authzWorld) request {
			return form("/login/sso/signup", url.Values{"email": {"new@example.com"}})
		}},
		"POST /login/sso/link": {class: classPublic, page: true, fixed: 400, request: func(*authzWorld) request {
			return form("/login/sso/link", url.Values{"email": {"a@example.com"}, "password": {testPassword}})
		}},
		"POST /account/sso/:identity_id/unlink": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request {
			return form("/account/sso/"+w.identA+"/unlink", nil)
		}},
	}
}

func init() {
	wireAllowed["SSOStart.authorization_url"] = "the provider's sign-in page for the owner's own browser, not an address anyone visited"
	dashboardParity["listIdentities"] = []string{"GET /account"}
	dashboardParity["unlinkIdentity"] = []string{"POST /account/sso/:identity_id/unlink"}
}
