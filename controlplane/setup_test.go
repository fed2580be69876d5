package controlplane

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func TestBootstrapArmsSetupLink(t *testing.T) {
	h := newHarness(t)
	if !strings.Contains(h.welcome, h.ts.URL+"/setup?token=") {
		t.Fatalf("Bootstrap message has no setup link: %q", h.welcome)
	}
	tok := h.SetupToken()
	if len(tok) < 40 {
		t.Errorf("setup token %q is short", tok)
	}
	// The token is held only as a hash.
	if strings.Contains(string(h.srv.setup.hash), tok) {
		t.Error("the setup token is held in clear")
	}
	if n := h.OwnerCount(); n != 0 {
		t.Errorf("%d accounts before setup", n)
	}
}

func TestSetupAPI(t *testing.T) {
	h := newHarness(t)
	tok := h.SetupToken()
	setup := func(token, email, password string) response {
		return h.Do(request{Method: http.MethodPost, Path: "/api/v1/setup", Body: api.Setup{Token: token, Email: email, Password: password}})
	}
	forbidden := wantErr{http.StatusForbidden, api.CodeForbidden, ""}

	setup("wrong", adminEmail, adminPassword).MustHaveError(t, forbidden)
	setup("", adminEmail, adminPassword).MustHaveError(t, forbidden)
	setup(tok+"x", adminEmail, adminPassword).MustHaveError(t, forbidden)
	// A bad password does not spend the token.
	setup(tok, adminEmail, "short").MustHaveError(t, wantErr{http.StatusBadRequest, api.CodeInvalidRequest, "password"})
	setup(tok, "not-an-email", adminPassword).MustHaveError(t, wantErr{http.StatusBadRequest, api.CodeInvalidRequest, "email"})
	if n := h.OwnerCount(); n != 0 {
		t.Fatalf("%d accounts after refused setups", n)
	}

	r := setup(tok, adminEmail, adminPassword)
	r.MustStatus(t, http.StatusCreated)
	var ar api.AuthResponse
	r.MustDecode(t, &ar)
	if ar.Owner.Role != store.RoleAdmin || ar.Owner.Email != adminEmail || ar.Token == "" || r.SessionCookie() == nil {
		t.Errorf("setup answer = %+v", ar)
	}
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/admin/owners", Token: ar.Token}).MustStatus(t, http.StatusOK)

	// Spent.
	setup(tok, "second@example.net", adminPassword).MustHaveError(t, forbidden)
	if n := h.OwnerCount(); n != 1 {
		t.Errorf("%d accounts, want 1", n)
	}
	r = h.Do(request{Method: http.MethodGet, Path: "/setup?token=" + tok})
	r.MustStatus(t, http.StatusGone)
	if msg, err := h.srv.Bootstrap(context.Background(), "", "", h.ts.URL); err != nil || msg != "" {
		t.Errorf("Bootstrap with an operator = %q, %v; want nothing to say", msg, err)
	}
	h.Do(request{Method: http.MethodGet, Path: "/setup"}).MustStatus(t, http.StatusGone)
}

func TestSetupHTMLForm(t *testing.T) {
	h := newHarness(t)
	tok := h.SetupToken()

	r := h.Do(request{Method: http.MethodGet, Path: "/setup?token=" + url.QueryEscape(tok)})
	r.MustStatus(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !strings.Contains(string(r.Body), `name="token" value="`+tok+`"`) || !strings.Contains(string(r.Body), `action="/setup"`) {
		t.Errorf("setup page has no form carrying the token:\n%s", r.Body)
	}

	// Markup in the query is escaped, not reflected.
	r = h.Do(request{Method: http.MethodGet, Path: "/setup?token=" + url.QueryEscape(`"><script>alert(1)</script>`)})
	r.MustStatus(t, http.StatusOK)
	if strings.Contains(string(r.Body), "<script>alert(1)") {
		t.Error("setup page reflects markup from the query")
	}

	form := func(v url.Values) response {
		return h.Do(request{Method: http.MethodPost, Path: "/setup", ContentType: "application/x-www-form-urlencoded", Body: v.Encode()})
	}
	// A weak password re-renders the form with the error next to the field.
	r = form(url.Values{"token": {tok}, "email": {adminEmail}, "password": {"short"}})
	r.MustStatus(t, http.StatusBadRequest)
	if !strings.Contains(string(r.Body), `id="password-error"`) || !strings.Contains(string(r.Body), `value="`+adminEmail+`"`) {
		t.Errorf("form error page:\n%s", r.Body)
	}
	if strings.Contains(string(r.Body), "short") {
		t.Error("the rejected password is echoed")
	}
	form(url.Values{"token": {"wrong"}, "email": {adminEmail}, "password": {adminPassword}}).MustStatus(t, http.StatusForbidden)

	r = form(url.Values{"token": {tok}, "email": {adminEmail}, "password": {adminPassword}})
	r.MustStatus(t, http.StatusCreated)
	ck := r.SessionCookie()
	if ck == nil || !ck.HttpOnly {
		t.Fatalf("setup form set no HttpOnly session cookie: %v", r.Header["Set-Cookie"])
	}
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Cookie: ck}).MustStatus(t, http.StatusOK)
	if !strings.Contains(string(r.Body), adminEmail) {
		t.Errorf("done page does not name the account:\n%s", r.Body)
	}

	// Gone now, for the page and the form.
	h.Do(request{Method: http.MethodGet, Path: "/setup?token=" + tok}).MustStatus(t, http.StatusGone)
	form(url.Values{"token": {tok}, "email": {"second@example.net"}, "password": {adminPassword}}).MustStatus(t, http.StatusGone)
	if n := h.OwnerCount(); n != 1 {
		t.Errorf("%d accounts, want 1", n)
	}
}

// TestSetupClosesWhenOperatorExists: a link armed before an operator
// appeared some other way (another replica's link, TRACELESS_ADMIN_* on a
// restart) no longer works.
func TestSetupClosesWhenOperatorExists(t *testing.T) {
	h := newHarness(t)
	tok := h.SetupToken()
	h.MustAdmin()
	h.Do(request{Method: http.MethodGet, Path: "/setup?token=" + tok}).MustStatus(t, http.StatusGone)
	h.Do(request{Method: http.MethodPost, Path: "/api/v1/setup", Body: api.Setup{Token: tok, Email: "second@example.net", Password: adminPassword}}).
		MustHaveError(t, wantErr{http.StatusForbidden, api.CodeForbidden, ""})
	if n, err := h.store.CountAdmins(context.Background()); err != nil || n != 1 {
		t.Errorf("CountAdmins = %d, %v; want 1", n, err)
	}
}

func TestBootstrapWithOperator(t *testing.T) {
	st, _ := MustOpenStore(t)
	srv := MustNew(t, Options{Store: st, Argon2: cheapArgon2})
	ctx := context.Background()
	msg, err := srv.Bootstrap(ctx, " Operator@Example.NET ", adminPassword, "https://cp.example.net")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, adminEmail) || strings.Contains(msg, "setup?token") || strings.Contains(msg, adminPassword) {
		t.Errorf("message = %q; want it to name the account, without a setup link or the password", msg)
	}
	o, err := st.GetOwnerByEmail(ctx, adminEmail)
	if err != nil || o.Role != store.RoleAdmin {
		t.Fatalf("operator = %+v, %v", o, err)
	}
	// Idempotent: nothing more to say, nothing more created, even with
	// other credentials.
	for _, creds := range [][2]string{{adminEmail, adminPassword}, {"other@example.net", adminPassword}, {"", ""}} {
		msg, err := srv.Bootstrap(ctx, creds[0], creds[1], "https://cp.example.net")
		if err != nil || msg != "" {
			t.Errorf("Bootstrap again = %q, %v; want \"\", nil", msg, err)
		}
	}
	if n, _ := st.CountAdmins(ctx); n != 1 {
		t.Errorf("%d operators, want 1", n)
	}
	// The operator signs in.
	ts := newHarnessOn(t, srv)
	r := ts.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: adminEmail, Password: adminPassword}})
	r.MustStatus(t, http.StatusOK)
	// The setup page is gone.
	r = ts.Serve(request{Method: http.MethodGet, Path: "/setup"})
	r.MustStatus(t, http.StatusGone)
}

// newHarnessOn wraps an existing Server just enough for Serve.
func newHarnessOn(tb testing.TB, srv *Server) *harness {
	return &harness{tb: tb, srv: srv}
}

func TestBootstrapRefusesWeakOperator(t *testing.T) {
	for _, tc := range []struct {
		name, email, password, wantInErr string
	}{
		{"short password", adminEmail, "short", "password"},
		{"common password", adminEmail, "password123", "password"},
		{"password holds the email", adminEmail, "operator-secret-99", "password"},
		{"bad email", "operator", adminPassword, "email"},
		{"email without password", adminEmail, "", "password"},
		{"password without email", "", adminPassword, "email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := MustOpenStore(t)
			srv := MustNew(t, Options{Store: st, Argon2: cheapArgon2})
			msg, err := srv.Bootstrap(context.Background(), tc.email, tc.password, "http://127.0.0.1:1")
			if err == nil {
				t.Fatalf("Bootstrap succeeded: %q", msg)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q does not name %s", err, tc.wantInErr)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Errorf("error %q echoes the password", err)
			}
			if n, _ := st.CountAdmins(context.Background()); n != 0 {
				t.Errorf("%d operators created", n)
			}
		})
	}
}

func TestSetupPageWithoutBootstrap(t *testing.T) {
	st, _ := MustOpenStore(t)
	srv := MustNew(t, Options{Store: st, Argon2: cheapArgon2})
	h := newHarnessOn(t, srv)
	r := h.Serve(request{Method: http.MethodGet, Path: "/setup"})
	r.MustStatus(t, http.StatusGone)
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/setup", Body: api.Setup{Token: "x", Email: adminEmail, Password: adminPassword}}).
		MustHaveError(t, wantErr{http.StatusForbidden, api.CodeForbidden, ""})
}
