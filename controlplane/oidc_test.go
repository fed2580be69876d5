package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/testoidc"
	"github.com/traceless-vpn/traceless/store"
)

// ssoWorld is a control plane with one OpenID provider, "test", served by
// a real provider process (internal/testoidc).
type ssoWorld struct {
	h  *harness
	op *testoidc.Provider
}

// The provider's people. Their IDs are the subjects it names them by.
var (
	ssoAnn = testoidc.User{ID: "ann-subject", Username: "ann", Password: "ann's provider password", Email: "Ann@Example.com", EmailVerified: true}
	// Bob's provider email is that of an existing account here.
	ssoBob = testoidc.User{ID: "bob-subject", Username: "bob", Password: "bob's provider password", Email: "bob@example.com", EmailVerified: true}
	// Eve claims Bob's email at the provider, unverified.
	ssoEve = testoidc.User{ID: "eve-subject", Username: "eve", Password: "eve's provider password", Email: "bob@example.com"}
	ssoOps = testoidc.User{ID: "ops-subject", Username: "ops", Password: "ops' provider password", Email: adminEmail, EmailVerified: true}
)

// newSSOWorlds starts one provider and one control plane per mod list,
// each with the provider configured as "test".
func newSSOWorlds(t *testing.T, mods ...func(*Options)) []*ssoWorld {
	t.Helper()
	var lns []net.Listener
	var redirects []string
	for range mods {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		redirects = append(redirects, "http://"+ln.Addr().String()+"/api/v1/auth/oidc/test/callback")
	}
	op := testoidc.Start(t, []testoidc.User{ssoAnn, ssoBob, ssoEve, ssoOps}, redirects...)
	var out []*ssoWorld
	for i, mod := range mods {
		base := "http://" + lns[i].Addr().String()
		h := newHarnessListening(t, lns[i], func(o *Options) {
			o.PublicURL = base
			o.OIDCProviders = []OIDCProvider{{Name: "test", Label: "Test ID", Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret}}
		}, mod)
		out = append(out, &ssoWorld{h: h, op: op})
	}
	return out
}

// ssoBrowser is a client with a cookie jar that does not follow redirects.
type ssoBrowser struct {
	t   *testing.T
	w   *ssoWorld
	c   *http.Client
	jar *cookiejar.Jar
}

func (w *ssoWorld) browser(t *testing.T) *ssoBrowser {
	jar, _ := cookiejar.New(nil)
	return &ssoBrowser{t: t, w: w, jar: jar, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// get requests u (a path of the control plane or a full URL).
func (b *ssoBrowser) do(method, u string, body any, jsonAccept bool) response {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.w.h.ts.URL + u
	}
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = strings.NewReader(string(j))
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if jsonAccept {
		req.Header.Set("Accept", "application/json")
	} else {
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	rb, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: rb}
}

// start begins a sign-in and returns the provider's authorization URL.
func (b *ssoBrowser) start() string {
	b.t.Helper()
	r := b.do("GET", "/api/v1/auth/oidc/test/start", nil, false).MustStatus(b.t, http.StatusFound)
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, b.w.op.Issuer) {
		b.t.Fatalf("start sent the browser to %q, not to the provider %s", loc, b.w.op.Issuer)
	}
	u, _ := url.Parse(loc)
	for _, p := range []string{"state", "nonce", "code_challenge", "redirect_uri", "client_id"} {
		if u.Query().Get(p) == "" {
			b.t.Fatalf("the authorization URL has no %s: %s", p, loc)
		}
	}
	if u.Query().Get("code_challenge_method") != "S256" {
		b.t.Fatalf("code_challenge_method = %q, want S256", u.Query().Get("code_challenge_method"))
	}
	return loc
}

// login signs in at the provider and returns the callback URL.
func (b *ssoBrowser) login(authURL string, u testoidc.User) string {
	b.t.Helper()
	cb, err := b.w.op.Login(b.c, authURL, u.Username, u.Password)
	if err != nil {
		b.t.Fatalf("provider login as %s: %v", u.Username, err)
	}
	if !strings.HasPrefix(cb.String(), b.w.h.ts.URL+"/api/v1/auth/oidc/test/callback?") {
		b.t.Fatalf("the provider sent the browser to %s", cb)
	}
	return cb.String()
}

// signIn runs a whole sign-in as u and returns the callback's answer.
func (b *ssoBrowser) signIn(u testoidc.User, jsonAccept bool) response {
	b.t.Helper()
	return b.do("GET", b.login(b.start(), u), nil, jsonAccept)
}

// cookie returns the value of the control plane's cookie name in the jar.
func (b *ssoBrowser) cookie(name, path string) string {
	u, _ := url.Parse(b.w.h.ts.URL + path)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *ssoBrowser) setCookie(name, path, value string) {
	u, _ := url.Parse(b.w.h.ts.URL + path)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: path}})
}

func mustPending(t *testing.T, r response) api.SSOPending {
	t.Helper()
	var p api.SSOPending
	r.MustStatus(t, http.StatusAccepted).MustDecode(t, &p)
	return p
}

// TestOIDCSignUpAndSignIn: a person new here signs up through the
// provider, then signs in again; only the issuer and subject are stored.
func TestOIDCSignUpAndSignIn(t *testing.T) {
	w := newSSOWorlds(t, func(*Options) {})[0]
	h := w.h
	b := w.browser(t)

	p := mustPending(t, b.signIn(ssoAnn, true))
	if want := (api.SSOPending{Provider: "test", Email: "ann@example.com"}); p != want {
		t.Fatalf("pending = %+v, want %+v", p, want)
	}
	if b.cookie(oidcFlowCookie, oidcFlowPath) != "" {
		t.Error("the flow cookie outlives its callback")
	}
	var ar api.AuthResponse
	b.do("POST", "/api/v1/auth/oidc/signup", api.SSOSignup{}, true).MustStatus(t, http.StatusCreated).MustDecode(t, &ar)
	if ar.Owner.Email != "ann@example.com" || ar.Owner.Role != store.RoleOwner || ar.Token == "" {
		t.Fatalf("signed up as %+v", ar)
	}
	// The waiting sign-in is spent.
	b.do("POST", "/api/v1/auth/oidc/signup", api.SSOSignup{}, true).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest})

	var list api.IdentityList
	h.Do(request{Method: "GET", Path: "/api/v1/me/identities", Token: ar.Token}).MustStatus(t, 200).MustDecode(t, &list)
	if len(list.Identities) != 1 || list.Identities[0].Provider != "test" || list.Identities[0].Label != "Test ID" ||
		list.Identities[0].Issuer != w.op.Issuer {
		t.Fatalf("identities = %+v", list)
	}
	if len(list.Providers) != 1 || list.Providers[0] != (api.SSOProvider{Name: "test", Label: "Test ID"}) {
		t.Errorf("providers = %+v", list.Providers)
	}
	stored, err := h.store.ListIdentities(context.Background(), ar.Owner.ID)
	if err != nil || len(stored) != 1 || stored[0].Issuer != w.op.Issuer || stored[0].Subject != ssoAnn.ID {
		t.Fatalf("stored identities = %+v, %v", stored, err)
	}
	// The export lists it: issuer and subject, nothing of the token.
	var ex api.Export
	h.Do(request{Method: "GET", Path: "/api/v1/me/export", Token: ar.Token}).MustStatus(t, 200).MustDecode(t, &ex)
	rows := ex.Tables["owner_identities"]
	if len(rows) != 1 || rows[0]["subject"] != ssoAnn.ID || rows[0]["issuer"] != w.op.Issuer || len(rows[0]) != 4 {
		t.Errorf("exported identities = %+v", rows)
	}

	// Again, in a fresh browser: signed in at once (JSON).
	b2 := w.browser(t)
	var again api.AuthResponse
	b2.signIn(ssoAnn, true).MustStatus(t, http.StatusOK).MustDecode(t, &again)
	if again.Owner.ID != ar.Owner.ID {
		t.Fatalf("signed in as %s, want %s", again.Owner.ID, ar.Owner.ID)
	}
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: again.Token}).MustStatus(t, 200)

	// A browser gets the session cookie and a page that continues to the
	// apps (same-site, so the SameSite=Strict cookie goes along).
	b3 := w.browser(t)
	r := b3.signIn(ssoAnn, false).MustStatus(t, http.StatusOK)
	if !strings.Contains(string(r.Body), `http-equiv="refresh" content="0; url=/apps"`) {
		t.Errorf("callback page does not continue to /apps:\n%s", r.Body)
	}
	if r.SessionCookie() == nil {
		t.Fatal("callback set no session cookie")
	}
	b3.do("GET", "/apps", nil, false).MustStatus(t, http.StatusOK)

	// A sign-in started from a page comes back to it.
	b4 := w.browser(t)
	loc := b4.do("GET", "/api/v1/auth/oidc/test/start?next=%2Fpools", nil, false).MustStatus(t, http.StatusFound).Header.Get("Location")
	r = b4.do("GET", b4.login(loc, ssoAnn), nil, false).MustStatus(t, http.StatusOK)
	if !strings.Contains(string(r.Body), `url=/pools"`) {
		t.Errorf("callback page does not continue to /pools:\n%s", r.Body)
	}
	// A client that asks for JSON gets the authorization URL instead of a
	// redirect, and the flow cookie with it.
	b5 := w.browser(t)
	var st api.SSOStart
	b5.do("GET", "/api/v1/auth/oidc/test/start", nil, true).MustStatus(t, http.StatusOK).MustDecode(t, &st)
	if !strings.HasPrefix(st.AuthorizationURL, w.op.Issuer) || b5.cookie(oidcFlowCookie, oidcFlowPath) == "" {
		t.Fatalf("JSON start = %+v, flow cookie %q", st, b5.cookie(oidcFlowCookie, oidcFlowPath))
	}
	var viaJSON api.AuthResponse
	b5.do("GET", b5.login(st.AuthorizationURL, ssoAnn), nil, true).MustStatus(t, http.StatusOK).MustDecode(t, &viaJSON)
	if viaJSON.Owner.ID != ar.Owner.ID {
		t.Fatalf("signed in as %s", viaJSON.Owner.ID)
	}
	// An unknown provider has no routes.
	b4.do("GET", "/api/v1/auth/oidc/nope/start", nil, true).MustHaveError(t, wantErr{Status: 404, Code: api.CodeNotFound})
}

// TestOIDCLinkNeedsPassword: a provider sign-in whose email is that of an
// existing account links to it only with the account's password, whether
// the provider calls the email verified or not.
func TestOIDCLinkNeedsPassword(t *testing.T) {
	w := newSSOWorlds(t, func(*Options) {})[0]
	h := w.h
	ctx := context.Background()
	bob, err := h.srv.createAccount(ctx, "bob@example.com", testPassword, store.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []testoidc.User{ssoEve, ssoBob} {
		b := w.browser(t)
		p := mustPending(t, b.signIn(u, true))
		if !p.AccountExists || p.Email != "bob@example.com" {
			t.Fatalf("%s: pending = %+v; want an existing account", u.Username, p)
		}
		// No account is taken over by its email: a signup is refused, and
		// so is a link without the right password.
		b.do("POST", "/api/v1/auth/oidc/signup", api.SSOSignup{}, true).MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict, Field: "email"})
		b.do("POST", "/api/v1/auth/oidc/link", api.Credentials{Email: "bob@example.com", Password: "not bob's password"}, true).
			MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
		b.do("POST", "/api/v1/auth/oidc/link", api.Credentials{Email: "bob@example.com"}, true).
			MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
		if _, err := h.store.GetOwnerByIdentity(ctx, w.op.Issuer, u.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: identity linked without the password: %v", u.Username, err)
		}
		// A fresh browser signing in as bob is not bob either.
		mustPending(t, w.browser(t).signIn(u, true))
	}
	// With the password, Bob's provider sign-in links, and signs in.
	b := w.browser(t)
	mustPending(t, b.signIn(ssoBob, true))
	var ar api.AuthResponse
	b.do("POST", "/api/v1/auth/oidc/link", api.Credentials{Email: "bob@example.com", Password: testPassword}, true).
		MustStatus(t, http.StatusOK).MustDecode(t, &ar)
	if ar.Owner.ID != bob.ID {
		t.Fatalf("linked to %s, want bob %s", ar.Owner.ID, bob.ID)
	}
	var again api.AuthResponse
	w.browser(t).signIn(ssoBob, true).MustStatus(t, http.StatusOK).MustDecode(t, &again)
	if again.Owner.ID != bob.ID {
		t.Fatalf("signed in as %s, want bob", again.Owner.ID)
	}
	// Eve's sign-in cannot be linked to Bob's account by anyone but Bob;
	// it is still linked to nothing.
	mustPending(t, w.browser(t).signIn(ssoEve, true))

	// Unlinking the last provider needs the password.
	var list api.IdentityList
	h.Do(request{Method: "GET", Path: "/api/v1/me/identities", Token: ar.Token}).MustStatus(t, 200).MustDecode(t, &list)
	id := list.Identities[0].ID
	path := "/api/v1/me/identities/" + id
	other := h.MustOwner()
	h.Do(request{Method: "DELETE", Path: path, Token: other.Token}).MustHaveError(t, wantErr{Status: 404, Code: api.CodeNotFound})
	h.Do(request{Method: "DELETE", Path: path, Token: ar.Token}).MustHaveError(t, wantErr{Status: 403, Code: api.CodeForbidden, Field: "password"})
	h.Do(request{Method: "DELETE", Path: path, Token: ar.Token, Body: api.IdentityUnlink{Password: "wrong password here"}}).
		MustHaveError(t, wantErr{Status: 403, Code: api.CodeForbidden, Field: "password"})
	h.Do(request{Method: "DELETE", Path: path, Token: ar.Token, Body: api.IdentityUnlink{Password: testPassword}}).MustStatus(t, 204)
	h.Do(request{Method: "DELETE", Path: path, Token: ar.Token, Body: api.IdentityUnlink{Password: testPassword}}).MustHaveError(t, wantErr{Status: 404, Code: api.CodeNotFound})
	mustPending(t, w.browser(t).signIn(ssoBob, true))
}

// TestOIDCRefusesForgedCallbacks: a callback whose state is not this
// browser's, whose ID token carries another nonce, whose PKCE verifier is
// not the challenge's, or that is replayed, signs nobody in.
func TestOIDCRefusesForgedCallbacks(t *testing.T) {
	w := newSSOWorlds(t, func(*Options) {})[0]
	h := w.h
	ctx := context.Background()
	ann, err := h.srv.createAccount(ctx, "ann@example.com", testPassword, store.RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.LinkIdentity(ctx, ann.ID, w.op.Issuer, ssoAnn.ID); err != nil {
		t.Fatal(err)
	}
	signedIn := func(r response) bool { return r.SessionCookie() != nil && r.SessionCookie().Value != "" }

	t.Run("wrong state", func(t *testing.T) {
		b := w.browser(t)
		cb := b.login(b.start(), ssoAnn)
		u, _ := url.Parse(cb)
		q := u.Query()
		q.Set("state", "an-attacker-s-state")
		u.RawQuery = q.Encode()
		r := b.do("GET", u.String(), nil, true)
		r.MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "state"})
		if signedIn(r) {
			t.Fatal("signed in")
		}
		// The flow is spent: the right callback now fails too.
		b.do("GET", cb, nil, true).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "state"})
	})
	t.Run("another browser's callback", func(t *testing.T) {
		victim, attacker := w.browser(t), w.browser(t)
		cb := attacker.login(attacker.start(), ssoAnn)
		victim.start()
		victim.do("GET", cb, nil, true).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "state"})
		// Without any flow cookie.
		w.browser(t).do("GET", cb, nil, true).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "state"})
	})
	t.Run("wrong nonce", func(t *testing.T) {
		b := w.browser(t)
		u, _ := url.Parse(b.start())
		q := u.Query()
		q.Set("nonce", "a-nonce-of-another-sign-in")
		u.RawQuery = q.Encode()
		r := b.do("GET", b.login(u.String(), ssoAnn), nil, true)
		r.MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
		if e := r.MustError(t); !strings.Contains(e.Message, "nonce") || signedIn(r) {
			t.Fatalf("error %q; signed in %v", e.Message, signedIn(r))
		}
	})
	t.Run("wrong PKCE verifier", func(t *testing.T) {
		b := w.browser(t)
		authURL := b.start()
		var f oidcFlow
		if err := h.srv.unseal(oidcFlowCookie, b.cookie(oidcFlowCookie, oidcFlowPath), &f); err != nil {
			t.Fatal(err)
		}
		f.Verifier = strings.Repeat("x", 43)
		forged, err := h.srv.seal(oidcFlowCookie, f, h.clock.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		b.setCookie(oidcFlowCookie, oidcFlowPath, forged)
		r := b.do("GET", b.login(authURL, ssoAnn), nil, true)
		r.MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
	})
	t.Run("forged flow cookie", func(t *testing.T) {
		b := w.browser(t)
		authURL := b.start()
		v := []byte(b.cookie(oidcFlowCookie, oidcFlowPath))
		v[10] ^= 1
		b.setCookie(oidcFlowCookie, oidcFlowPath, string(v))
		b.do("GET", b.login(authURL, ssoAnn), nil, true).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "state"})
	})
	t.Run("expired flow", func(t *testing.T) {
		b := w.browser(t)
		authURL := b.start()
		h.clock.Advance(oidcCookieTTL + time.Second)
		b.do("GET", b.login(authURL, ssoAnn), nil, true).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "state"})
	})
	t.Run("replayed callback", func(t *testing.T) {
		b := w.browser(t)
		cb := b.login(b.start(), ssoAnn)
		flow := b.cookie(oidcFlowCookie, oidcFlowPath)
		var ar api.AuthResponse
		b.do("GET", cb, nil, true).MustStatus(t, http.StatusOK).MustDecode(t, &ar)
		if ar.Owner.ID != ann.ID {
			t.Fatalf("signed in as %s", ar.Owner.ID)
		}
		// The same callback with the same (captured) flow cookie: the code
		// is spent.
		b.setCookie(oidcFlowCookie, oidcFlowPath, flow)
		r := b.do("GET", cb, nil, true)
		r.MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
		if signedIn(r) {
			t.Fatal("the replay signed in")
		}
		// And in a browser: an error page, no session.
		b.setCookie(oidcFlowCookie, oidcFlowPath, flow)
		r = b.do("GET", cb, nil, false)
		if r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || signedIn(r) {
			t.Fatalf("replay in a browser: %d %s, signed in %v", r.Status, r.Header.Get("Content-Type"), signedIn(r))
		}
	})
	t.Run("refused at the provider", func(t *testing.T) {
		b := w.browser(t)
		u, _ := url.Parse(b.start())
		q := u.Query()
		cb := h.ts.URL + "/api/v1/auth/oidc/test/callback?error=access_denied&state=" + url.QueryEscape(q.Get("state"))
		b.do("GET", cb, nil, true).MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
	})
	t.Run("suspended account", func(t *testing.T) {
		if _, err := h.store.UpdateOwner(ctx, ann.ID, store.OwnerUpdate{Status: new(store.StatusSuspended)}); err != nil {
			t.Fatal(err)
		}
		defer h.store.UpdateOwner(ctx, ann.ID, store.OwnerUpdate{Status: new(store.StatusActive)})
		w.browser(t).signIn(ssoAnn, true).MustHaveError(t, wantErr{Status: 403, Code: api.CodeForbidden})
	})
}

// TestOIDCOperatorSSOOnly: with OperatorSSOOnly, an operator's password
// alone signs in nowhere; the operator links a provider sign-in with the
// password once and signs in through the provider from then on, and
// cannot unlink the last one. Owners keep their passwords.
func TestOIDCOperatorSSOOnly(t *testing.T) {
	w := newSSOWorlds(t, func(o *Options) { o.OperatorSSOOnly = true })[0]
	h := w.h
	if _, err := h.srv.Bootstrap(context.Background(), adminEmail, adminPassword, h.ts.URL); err != nil {
		t.Fatal(err)
	}
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/login", Body: api.Credentials{Email: adminEmail, Password: adminPassword}}).
		MustHaveError(t, wantErr{Status: 403, Code: api.CodeSSORequired})
	// A wrong password still gets the answer of any wrong password.
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/login", Body: api.Credentials{Email: adminEmail, Password: "not the operator's password"}}).
		MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
	owner := h.MustOwner()
	h.MustLogin(owner.Owner.Email, testPassword)

	// The dashboard's sign-in form refuses too.
	b := w.browser(t)
	r := b.do("GET", "/login", nil, false).MustStatus(t, 200)
	if !strings.Contains(string(r.Body), `href="/api/v1/auth/oidc/test/start"`) || !strings.Contains(string(r.Body), "Sign in with Test ID") {
		t.Errorf("the sign-in page has no button for the provider:\n%s", r.Body)
	}
	r = b.form("/login", "/login", url.Values{"email": {adminEmail}, "password": {adminPassword}})
	if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "sign in with single sign-on") || r.SessionCookie() != nil {
		t.Fatalf("the operator's password sign-in on the page: %d %s", r.Status, r.Body)
	}

	p := mustPending(t, b.signIn(ssoOps, true))
	if !p.AccountExists {
		t.Fatalf("pending = %+v", p)
	}
	var ar api.AuthResponse
	b.do("POST", "/api/v1/auth/oidc/link", api.Credentials{Email: adminEmail, Password: adminPassword}, true).MustStatus(t, 200).MustDecode(t, &ar)
	if ar.Owner.Role != store.RoleAdmin {
		t.Fatalf("linked to %+v", ar.Owner)
	}
	var again api.AuthResponse
	w.browser(t).signIn(ssoOps, true).MustStatus(t, 200).MustDecode(t, &again)
	h.Do(request{Method: "GET", Path: "/api/v1/admin/owners", Token: again.Token}).MustStatus(t, 200)

	var list api.IdentityList
	h.Do(request{Method: "GET", Path: "/api/v1/me/identities", Token: again.Token}).MustStatus(t, 200).MustDecode(t, &list)
	h.Do(request{Method: "DELETE", Path: "/api/v1/me/identities/" + list.Identities[0].ID, Token: again.Token, Body: api.IdentityUnlink{Password: adminPassword}}).
		MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
