package controlplane

import (
	"context"
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/testoidc"
	"github.com/traceless-vpn/traceless/internal/testpg"
	"github.com/traceless-vpn/traceless/store"
)

// TestOIDCAcrossReplicas: two replicas on one PostgreSQL database share
// the session key and nothing else; a sign-in started on one finishes on
// the other, because its state travels in the sealed cookie, not in
// either replica's memory.
func TestOIDCAcrossReplicas(t *testing.T) {
	dsn := testpg.Database(t)
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	ln := mustListen(t)
	base := "http://" + ln.Addr().String()
	op := testoidc.Start(t, []testoidc.User{ssoAnn}, base+"/api/v1/auth/oidc/test/callback")
	replica := func() *harness {
		st, err := store.Open(ctx, store.Config{Driver: store.DriverPostgres, DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return newHarness(t, func(o *Options) {
			o.Store, o.SessionKey, o.PublicURL = st, key, base
			o.OIDCProviders = []OIDCProvider{{Name: "test", Label: "Test ID", Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret}}
		})
	}
	a, b := replica(), replica()
	_ = ln.Close() // the redirect URI's host only names the installation here

	signIn := func(start, finish *harness, want int) response {
		t.Helper()
		r := start.Serve(request{Method: http.MethodGet, Path: "/api/v1/auth/oidc/test/start"}).MustStatus(t, http.StatusFound)
		flow := cookieOf(r, oidcFlowCookie)
		cb, err := op.Login(&http.Client{}, r.Header.Get("Location"), ssoAnn.Username, ssoAnn.Password)
		if err != nil {
			t.Fatal(err)
		}
		return finish.Serve(request{Method: http.MethodGet, Path: cb.RequestURI(), Cookie: flow, Header: map[string]string{"Accept": "application/json"}}).MustStatus(t, want)
	}
	pending := cookieOf(signIn(a, b, http.StatusAccepted), oidcPendingCookie)
	var ar api.AuthResponse
	a.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/oidc/signup", Cookie: pending, Body: api.SSOSignup{}}).MustStatus(t, http.StatusCreated).MustDecode(t, &ar)
	var again api.AuthResponse
	signIn(b, a, http.StatusOK).MustDecode(t, &again)
	if again.Owner.ID != ar.Owner.ID {
		t.Fatalf("signed in as %s on the other replica, want %s", again.Owner.ID, ar.Owner.ID)
	}
	// A replica with another session key cannot open the cookie.
	c := newHarness(t, func(o *Options) {
		o.PublicURL = base
		o.OIDCProviders = []OIDCProvider{{Name: "test", Label: "Test ID", Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret}}
	})
	signIn(a, c, http.StatusBadRequest)
}
