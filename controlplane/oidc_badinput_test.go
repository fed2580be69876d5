package controlplane

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// TestSSOBadInput: every single sign-on route refuses malformed and
// hostile input with the documented error and changes nothing. Signup and
// link are sent with a real waiting sign-in, so what refuses them is the
// input, not its absence.
func TestSSOBadInput(t *testing.T) {
	w := newSSOWorlds(t, func(*Options) {})[0]
	h := w.h
	ctx := context.Background()
	if _, err := h.srv.createAccount(ctx, "taken@example.com", testPassword, store.RoleOwner); err != nil {
		t.Fatal(err)
	}
	owner := h.MustOwner()
	b := w.browser(t)
	mustPending(t, b.signIn(ssoAnn, true))
	pending := &http.Cookie{Name: oidcPendingCookie, Value: b.cookie(oidcPendingCookie, "/")}
	if pending.Value == "" {
		t.Fatal("no waiting sign-in")
	}
	if _, err := h.store.LinkIdentity(ctx, owner.Owner.ID, w.op.Issuer, "owner-subject"); err != nil {
		t.Fatal(err)
	}
	ids, _ := h.store.ListIdentities(ctx, owner.Owner.ID)

	type tc struct {
		name, method, path, body, ct string
		auth                         bool
		cookie                       *http.Cookie
		want                         wantErr
	}
	var cases []tc
	add := func(prefix string, bs []badInputCase, cookie *http.Cookie, auth bool) {
		for _, c := range bs {
			if c.method == http.MethodDelete && c.body == "" {
				continue // the body is optional: an empty one is no error
			}
			cases = append(cases, tc{name: prefix + "/" + c.name, method: c.method, path: c.path, body: c.body, ct: c.ct, auth: auth, cookie: cookie, want: c.want})
		}
	}
	add("signup", decodingCases(http.MethodPost, "/api/v1/auth/oidc/signup", "", `{"email":"new@example.com"}`), pending, false)
	add("link", decodingCases(http.MethodPost, "/api/v1/auth/oidc/link", "", `{"email":"taken@example.com","password":"`+testPassword+`"}`), pending, false)
	add("unlink", decodingCases(http.MethodDelete, "/api/v1/me/identities/"+ids[0].ID, "", `{"password":"`+testPassword+`"}`), nil, true)

	signup := func(name, body string, want wantErr) tc {
		return tc{name: "signup/" + name, method: http.MethodPost, path: "/api/v1/auth/oidc/signup", body: body, cookie: pending, want: want}
	}
	link := func(name, body string, want wantErr) tc {
		return tc{name: "link/" + name, method: http.MethodPost, path: "/api/v1/auth/oidc/link", body: body, cookie: pending, want: want}
	}
	get := func(name, path string, want wantErr) tc {
		return tc{name: name, method: http.MethodGet, path: path, want: want}
	}
	conflict := wantErr{Status: http.StatusConflict, Code: api.CodeConflict, Field: "email"}
	notFound := wantErr{Status: http.StatusNotFound, Code: api.CodeNotFound}
	cases = append(cases,
		signup("mass assignment of role", `{"email":"new@example.com","role":"admin"}`, bad("role")),
		signup("a password", `{"email":"new@example.com","password":"chosen by me 123"}`, bad("password")),
		signup("a subject", `{"email":"new@example.com","subject":"someone-else"}`, bad("subject")),
		signup("email is a number", `{"email":5}`, bad("email")),
		signup("bidi in email", "{\"email\":\"new\u202e@example.com\"}", bad("email")),
		signup("display name", `{"email":"New <new@example.com>"}`, bad("email")),
		signup("newline in email", `{"email":"new@example.com\nBcc: x@example.com"}`, bad("email")),
		signup("email of 255", `{"email":"a@`+strings.Repeat("b", 241)+`.example.com"}`, bad("email")),
		signup("an existing account's email", `{"email":"Taken@Example.com"}`, conflict),
		tc{name: "signup/without a waiting sign-in", method: http.MethodPost, path: "/api/v1/auth/oidc/signup", body: `{"email":"new@example.com"}`, want: bad("")},
		tc{name: "link/without a waiting sign-in", method: http.MethodPost, path: "/api/v1/auth/oidc/link", body: `{"email":"taken@example.com","password":"` + testPassword + `"}`, want: bad("")},
		tc{name: "signup/a forged waiting sign-in", method: http.MethodPost, path: "/api/v1/auth/oidc/signup", body: `{"email":"new@example.com"}`,
			cookie: &http.Cookie{Name: oidcPendingCookie, Value: pending.Value[:len(pending.Value)-4] + "AAAA"}, want: bad("")},
		link("email is a number", `{"email":1,"password":"x"}`, bad("email")),
		link("password is an array", `{"email":"taken@example.com","password":["x"]}`, bad("password")),
		link("wrong password", `{"email":"taken@example.com","password":"not the password at all"}`, unauthorized),
		link("unknown email", `{"email":"nobody@example.com","password":"`+testPassword+`"}`, unauthorized),
		link("300-byte password", `{"email":"taken@example.com","password":"`+strings.Repeat("x", 300)+`"}`, unauthorized),
		link("no fields", `{}`, unauthorized),
		link("an issuer", `{"email":"taken@example.com","password":"x","issuer":"https://evil.example.com/"}`, bad("issuer")),
		tc{name: "unlink/password is a number", method: http.MethodDelete, path: "/api/v1/me/identities/" + ids[0].ID, body: `{"password":5}`, auth: true, want: bad("password")},
		tc{name: "unlink/unknown ID", method: http.MethodDelete, path: "/api/v1/me/identities/00000000-0000-4000-8000-000000000000", body: `{"password":"` + testPassword + `"}`, auth: true, want: notFound},
		tc{name: "unlink/ID with a quote", method: http.MethodDelete, path: "/api/v1/me/identities/x'%20OR%201=1", auth: true, want: notFound},
		tc{name: "unlink/an ID of 10 KiB", method: http.MethodDelete, path: "/api/v1/me/identities/" + strings.Repeat("a", 10<<10), auth: true, want: notFound},
		tc{name: "unlink/wrong password", method: http.MethodDelete, path: "/api/v1/me/identities/" + ids[0].ID, body: `{"password":"not the password at all"}`, auth: true,
			want: wantErr{Status: http.StatusForbidden, Code: api.CodeForbidden, Field: "password"}},
		get("start/unknown provider", "/api/v1/auth/oidc/nope/start", notFound),
		get("start/upper-case provider", "/api/v1/auth/oidc/TEST/start", notFound),
		get("start/provider with a dot dot", "/api/v1/auth/oidc/..%2Ftest/start", notFound),
		get("start/next of 513", "/api/v1/auth/oidc/test/start?next=/"+strings.Repeat("a", 512), bad("next")),
		get("callback/unknown provider", "/api/v1/auth/oidc/nope/callback?state=x&code=y", notFound),
		get("callback/no flow cookie", "/api/v1/auth/oidc/test/callback?state=x&code=y", bad("state")),
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := ssoSnapshot(t, h)
			q := request{Method: c.method, Path: c.path, Body: c.body, ContentType: c.ct, Cookie: c.cookie,
				Header: map[string]string{"Accept": "application/json"}}
			if c.body == "" && c.ct == "" && c.method != http.MethodPost {
				q.Body = nil
			}
			if c.auth {
				q.Token = owner.Token
			}
			r := h.Serve(q)
			r.MustHaveError(t, c.want)
			if diff := cmp.Diff(before, ssoSnapshot(t, h)); diff != "" {
				t.Errorf("refused request changed the store (-before +after):\n%s", diff)
			}
		})
	}

	// Callbacks with a real flow cookie and bad parameters.
	for _, p := range []struct {
		name, query string
		want        wantErr
	}{
		{"no state", "code=abc", bad("state")},
		{"empty state", "state=&code=abc", bad("state")},
		{"state of 10 KiB", "state=" + strings.Repeat("s", 10<<10) + "&code=abc", bad("state")},
		{"no code", "state={state}", bad("code")},
		{"code of 4 KiB", "state={state}&code=" + strings.Repeat("c", 4<<10), bad("code")},
		{"forged code", "state={state}&code=not-a-code-the-provider-gave", unauthorized},
		{"provider error with markup", "state={state}&error=%3Cscript%3Ealert(1)%3C/script%3E", unauthorized},
	} {
		t.Run("callback/"+p.name, func(t *testing.T) {
			before := ssoSnapshot(t, h)
			b := w.browser(t)
			loc := b.start()
			state := strings.SplitN(strings.SplitN(loc, "state=", 2)[1], "&", 2)[0]
			r := b.do("GET", "/api/v1/auth/oidc/test/callback?"+strings.ReplaceAll(p.query, "{state}", state), nil, true)
			r.MustHaveError(t, p.want)
			if strings.Contains(string(r.Body), "<script") {
				t.Errorf("the answer reflects the provider's error text: %s", r.Body)
			}
			if diff := cmp.Diff(before, ssoSnapshot(t, h)); diff != "" {
				t.Errorf("refused request changed the store (-before +after):\n%s", diff)
			}
		})
	}

	// A next that is not a path of this site is dropped, not followed.
	for _, next := range []string{"https://evil.example.com/", "//evil.example.com/x", "/\\evil.example.com", "javascript:alert(1)"} {
		b := w.browser(t)
		b.do("GET", "/api/v1/auth/oidc/test/start?next="+urlQuery(next), nil, false).MustStatus(t, http.StatusFound)
		var f oidcFlow
		if err := h.srv.unseal(oidcFlowCookie, b.cookie(oidcFlowCookie, oidcFlowPath), &f); err != nil || f.Next != "" {
			t.Errorf("next %q: flow %+v, %v; want no next", next, f, err)
		}
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20").Replace(s)
}

// ssoState is what a refused single sign-on request could have changed.
type ssoState struct {
	Owners     []store.Owner
	Identities map[string][]store.OwnerIdentity
}

func ssoSnapshot(tb testing.TB, h *harness) ssoState {
	tb.Helper()
	ctx := context.Background()
	owners, err := h.store.ListOwners(ctx, "", 10000)
	if err != nil {
		tb.Fatal(err)
	}
	s := ssoState{Owners: owners, Identities: map[string][]store.OwnerIdentity{}}
	for _, o := range owners {
		ids, err := h.store.ListIdentities(ctx, o.ID)
		if err != nil {
			tb.Fatal(err)
		}
		s.Identities[o.ID] = ids
	}
	return s
}

// TestSSORateLimit: one client address starts (and finishes) at most 60
// sign-ins at once, then one a second; others are not held back.
func TestSSORateLimit(t *testing.T) {
	h := newHarness(t, ssoAuthzOptions(t))
	const addr = "192.0.2.200:4000"
	for range 60 {
		h.Serve(request{Method: http.MethodGet, Path: "/api/v1/auth/oidc/test/start", RemoteAddr: addr}).MustStatus(t, http.StatusFound)
	}
	r := h.Serve(request{Method: http.MethodGet, Path: "/api/v1/auth/oidc/test/callback?state=x&code=y", RemoteAddr: addr,
		Header: map[string]string{"Accept": "application/json"}})
	r.MustHaveError(t, wantErr{Status: http.StatusTooManyRequests, Code: api.CodeRateLimited})
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	h.Serve(request{Method: http.MethodGet, Path: "/api/v1/auth/oidc/test/start", RemoteAddr: "192.0.2.201:4000"}).MustStatus(t, http.StatusFound)
	h.clock.Advance(2 * time.Second)
	h.Serve(request{Method: http.MethodGet, Path: "/api/v1/auth/oidc/test/start", RemoteAddr: addr}).MustStatus(t, http.StatusFound)
}

// TestSSOFailuresLogged: a provider the server cannot use (a wrong client
// secret, an unreachable issuer) fails the sign-in and tells the operator
// why in the log, without who was signing in.
func TestSSOFailuresLogged(t *testing.T) {
	w := newSSOWorlds(t, func(o *Options) { o.OIDCProviders[0].ClientSecret = "not the client secret" })[0]
	off := w.h.logs.Len()
	w.browser(t).signIn(ssoAnn, true).MustHaveError(t, wantErr{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized})
	logs := w.h.logs.Since(off)
	if !strings.Contains(logs, `"msg":"single sign-on failed"`) || !strings.Contains(logs, "the token endpoint refused the code: invalid_client") {
		t.Errorf("the log does not say why:\n%s", logs)
	}
	for _, s := range []string{ssoAnn.ID, ssoAnn.Username, strings.ToLower(ssoAnn.Email), "code="} {
		if strings.Contains(strings.ToLower(logs), strings.ToLower(s)) {
			t.Errorf("the log holds %q:\n%s", s, logs)
		}
	}

	h := newHarness(t, func(o *Options) {
		o.PublicURL = "http://cp.example.com"
		o.OIDCProviders = []OIDCProvider{{Name: "down", Label: "Down", Issuer: "http://127.0.0.1:1/", ClientID: "c", ClientSecret: "s"}}
	})
	off = h.logs.Len()
	h.Serve(request{Method: http.MethodGet, Path: "/api/v1/auth/oidc/down/start"}).MustHaveError(t, wantErr{Status: http.StatusBadGateway, Code: api.CodeProviderUnavailable})
	if logs := h.logs.Since(off); !strings.Contains(logs, "discovery failed") {
		t.Errorf("the log does not say why:\n%s", logs)
	}
	// A browser gets a page.
	r := h.Serve(request{Method: http.MethodGet, Path: "/api/v1/auth/oidc/down/start", Header: map[string]string{"Accept": "text/html"}})
	if r.Status != http.StatusBadGateway || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Errorf("a browser got %d %s", r.Status, r.Header.Get("Content-Type"))
	}
}
