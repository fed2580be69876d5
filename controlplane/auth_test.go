package controlplane

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func TestSignup(t *testing.T) {
	h := newHarness(t)
	r := h.Do(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", Body: api.Credentials{Email: "  New.Owner@Example.COM ", Password: testPassword}})
	r.MustStatus(t, http.StatusCreated)
	var ar api.AuthResponse
	r.MustDecode(t, &ar)
	if ar.Token == "" {
		t.Fatal("no token")
	}
	if want := harnessStart.Add(12 * time.Hour); !ar.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v, want %v (now + default SessionTTL)", ar.ExpiresAt, want)
	}
	want := api.Owner{Email: "new.owner@example.com", Role: store.RoleOwner, Plan: "free", Status: store.StatusActive, EmailVerified: true}
	if diff := cmp.Diff(want, ar.Owner, cmpopts.IgnoreFields(api.Owner{}, "ID", "CreatedAt")); diff != "" {
		t.Errorf("owner mismatch (-want +got):\n%s", diff)
	}
	if ar.Owner.ID == "" || ar.Owner.CreatedAt.IsZero() {
		t.Errorf("owner has no id or created_at: %+v", ar.Owner)
	}
	ck := r.SessionCookie()
	if ck == nil {
		t.Fatalf("no session cookie in %v", r.Header["Set-Cookie"])
	}
	got := cookieFlags{Value: ck.Value, Path: ck.Path, HttpOnly: ck.HttpOnly, Secure: ck.Secure, SameSite: ck.SameSite, MaxAge: ck.MaxAge}
	wantCk := cookieFlags{Value: ar.Token, Path: "/", HttpOnly: true, Secure: false, SameSite: http.SameSiteStrictMode, MaxAge: int((12 * time.Hour).Seconds())}
	if diff := cmp.Diff(wantCk, got); diff != "" {
		t.Errorf("cookie mismatch (-want +got):\n%s", diff)
	}

	// The same email again, in any case, is a conflict on the email field.
	r = h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", Body: api.Credentials{Email: "NEW.OWNER@example.com", Password: testPassword}})
	r.MustHaveError(t, wantErr{http.StatusConflict, api.CodeConflict, "email"})

	// The password is stored as an argon2id hash with the configured costs.
	o := h.MustGetOwner(ar.Owner.ID)
	if !strings.HasPrefix(o.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(o.PasswordHash, testPassword) {
		t.Errorf("password hash = %q", o.PasswordHash)
	}
}

// cookieFlags are the attributes of the session cookie a test checks.
type cookieFlags struct {
	Value    string
	Path     string
	HttpOnly bool
	Secure   bool
	SameSite http.SameSite
	MaxAge   int
}

func TestSessionCookieSecure(t *testing.T) {
	for _, tc := range []struct {
		name          string
		secureCookies bool
		target        string
		want          bool
	}{
		{"plain http", false, "/api/v1/auth/signup", false},
		{"SecureCookies", true, "/api/v1/auth/signup", true},
		{"TLS", false, "https://cp.example.com/api/v1/auth/signup", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.SecureCookies = tc.secureCookies })
			r := h.Serve(request{Method: http.MethodPost, Path: tc.target, Body: api.Credentials{Email: h.NewEmail(), Password: testPassword}})
			r.MustStatus(t, http.StatusCreated)
			ck := r.SessionCookie()
			if ck == nil {
				t.Fatal("no session cookie")
			}
			if ck.Secure != tc.want || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie Secure=%v HttpOnly=%v SameSite=%v; want Secure=%v, HttpOnly, Strict", ck.Secure, ck.HttpOnly, ck.SameSite, tc.want)
			}
			// Logout clears the cookie with the same attributes.
			var ar api.AuthResponse
			r.MustDecode(t, &ar)
			r = h.Serve(request{Method: http.MethodPost, Path: strings.Replace(tc.target, "signup", "logout", 1), Token: ar.Token})
			r.MustStatus(t, http.StatusNoContent)
			ck = r.SessionCookie()
			if ck == nil || ck.Value != "" || ck.MaxAge >= 0 || ck.Secure != tc.want || !ck.HttpOnly {
				t.Errorf("logout cookie = %+v, want a cleared HttpOnly cookie with Secure=%v", ck, tc.want)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	su := h.MustSignup(email, testPassword)

	// Right password, email in another case and with spaces.
	r := h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: " " + strings.ToUpper(email), Password: testPassword}})
	r.MustStatus(t, http.StatusOK)
	var ar api.AuthResponse
	r.MustDecode(t, &ar)
	if diff := cmp.Diff(su.Owner, ar.Owner); diff != "" {
		t.Errorf("login owner mismatch (-want +got):\n%s", diff)
	}
	if ar.Token == "" || ar.Token == su.Token || r.SessionCookie() == nil {
		t.Errorf("login gave token %q, cookie %v", ar.Token, r.SessionCookie())
	}

	// Unknown email and wrong password get the very same error.
	var bodies []api.Error
	for _, c := range []api.Credentials{
		{Email: "nobody@example.com", Password: testPassword},
		{Email: email, Password: testPassword + "x"},
		{Email: email, Password: strings.Repeat("p", 300)},
		{Email: strings.Repeat("a", 300) + "@example.com", Password: testPassword},
		{Email: "", Password: ""},
	} {
		r := h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: c})
		r.MustStatus(t, http.StatusUnauthorized)
		if r.SessionCookie() != nil {
			t.Errorf("failed login set a cookie")
		}
		bodies = append(bodies, r.MustError(t))
	}
	for i, b := range bodies {
		if diff := cmp.Diff(bodies[0], b); diff != "" {
			t.Errorf("login failure %d differs from an unknown email's (-want +got):\n%s", i, diff)
		}
	}
	if bodies[0].Code != api.CodeUnauthorized {
		t.Errorf("code = %q, want %q", bodies[0].Code, api.CodeUnauthorized)
	}
}

// TestLoginRunsOneVerification proves, without timing anything, that every
// failing login runs exactly one argon2id verification with the same costs
// as a real account's, so an unknown email cannot be told from a wrong
// password by how long the answer takes.
func TestLoginRunsOneVerification(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	su := h.MustSignup(email, testPassword)

	stored, _, _, err := parsePHC(h.MustGetOwner(su.Owner.ID).PasswordHash)
	if err != nil {
		t.Fatal(err)
	}
	dummy, _, _, err := parsePHC(h.srv.hasher.dummy)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stored, dummy); diff != "" {
		t.Errorf("dummy hash costs differ from a real account's (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name   string
		c      api.Credentials
		status int
	}{
		{"right password", api.Credentials{Email: email, Password: testPassword}, http.StatusOK},
		{"wrong password", api.Credentials{Email: email, Password: "wrong horse battery staple"}, http.StatusUnauthorized},
		{"unknown email", api.Credentials{Email: "nobody@example.com", Password: testPassword}, http.StatusUnauthorized},
		{"unknown email, empty password", api.Credentials{Email: "nobody@example.com"}, http.StatusUnauthorized},
		{"overlong password", api.Credentials{Email: email, Password: strings.Repeat("x", 1000)}, http.StatusUnauthorized},
		{"overlong email", api.Credentials{Email: strings.Repeat("x", 300), Password: testPassword}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.srv.hasher.verifies.Load()
			r := h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: tc.c})
			r.MustStatus(t, tc.status)
			if n := h.srv.hasher.verifies.Load() - before; n != 1 {
				t.Errorf("ran %d argon2id verifications, want 1", n)
			}
		})
	}
}

func TestMe(t *testing.T) {
	h := newHarness(t)
	su := h.MustOwner()
	for _, tc := range []struct {
		name string
		q    request
	}{
		{"bearer", request{Token: su.Token}},
		{"lower-case bearer", request{Header: map[string]string{"Authorization": "bearer " + su.Token}}},
		{"cookie", request{Cookie: &http.Cookie{Name: sessionCookie, Value: su.Token}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Method, tc.q.Path = http.MethodGet, "/api/v1/me"
			r := h.Do(tc.q)
			r.MustStatus(t, http.StatusOK)
			var got api.Owner
			r.MustDecode(t, &got)
			if diff := cmp.Diff(su.Owner, got); diff != "" {
				t.Errorf("me mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogoutRevokes(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	first := h.MustSignup(email, testPassword)
	second := h.MustLogin(email, testPassword)

	h.Do(request{Method: http.MethodPost, Path: "/api/v1/auth/logout", Token: first.Token}).MustStatus(t, http.StatusNoContent)
	for _, tok := range []string{first.Token, second.Token} {
		h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: tok}).MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
		h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Cookie: &http.Cookie{Name: sessionCookie, Value: tok}}).
			MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
	}
	// Logging out twice needs a valid token.
	h.Do(request{Method: http.MethodPost, Path: "/api/v1/auth/logout", Token: first.Token}).MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
	// A new sign-in works again.
	third := h.MustLogin(email, testPassword)
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: third.Token}).MustStatus(t, http.StatusOK)
}

func TestSessionExpiry(t *testing.T) {
	const ttl = 2 * time.Hour
	h := newHarness(t, func(o *Options) { o.SessionTTL = ttl })
	su := h.MustOwner()
	if want := harnessStart.Add(ttl); !su.ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v, want %v", su.ExpiresAt, want)
	}
	h.clock.Advance(ttl - time.Second)
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: su.Token}).MustStatus(t, http.StatusOK)
	h.clock.Advance(2 * time.Second)
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: su.Token}).MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
}

// TestCookieMaxAgeUsesServerClock: the cookie's Max-Age is computed from
// Options.Now, like its expiry, not from the wall clock.
func TestCookieMaxAgeUsesServerClock(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.SessionTTL = time.Hour })
	r := h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", Body: api.Credentials{Email: h.NewEmail(), Password: testPassword}})
	r.MustStatus(t, http.StatusCreated)
	if ck := r.SessionCookie(); ck == nil || ck.MaxAge != 3600 {
		t.Errorf("cookie = %+v, want Max-Age 3600", ck)
	}
}

func TestForgedTokens(t *testing.T) {
	h := newHarness(t)
	su := h.MustOwner()
	o := h.MustGetOwner(su.Owner.ID)
	now := h.clock.Now()
	claims := func() sessionClaims {
		return sessionClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: tokenIssuer, Subject: o.ID,
				IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
			},
			Epoch: o.TokenEpoch,
		}
	}
	sign := func(m jwt.SigningMethod, c sessionClaims, key any) string {
		t.Helper()
		tok, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatalf("sign %s: %v", m.Alg(), err)
		}
		return tok
	}
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv := h.srv.sessions.priv
	pub := h.srv.sessions.pub

	// The control: our own key with these claims is accepted.
	good := sign(jwt.SigningMethodEdDSA, claims(), priv)
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: good}).MustStatus(t, http.StatusOK)

	wrongIssuer := claims()
	wrongIssuer.Issuer = "evil"
	wrongEpoch := claims()
	wrongEpoch.Epoch++
	noExpiry := claims()
	noExpiry.ExpiresAt = nil
	noSubject := claims()
	noSubject.Subject = ""
	future := claims()
	future.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour))
	future.ExpiresAt = jwt.NewNumericDate(now.Add(2 * time.Hour))
	otherOwner := claims()
	otherOwner.Subject = "00000000-0000-4000-8000-000000000000"

	for _, tc := range []struct {
		name  string
		token string
	}{
		{"other ed25519 key", sign(jwt.SigningMethodEdDSA, claims(), otherKey)},
		{"alg none", sign(jwt.SigningMethodNone, claims(), jwt.UnsafeAllowNoneSignatureType)},
		{"alg none, signature stripped", strings.Join(strings.Split(good, ".")[:2], ".") + "."},
		{"HS256 keyed with the public key", sign(jwt.SigningMethodHS256, claims(), []byte(pub))},
		{"HS256 keyed with the seed", sign(jwt.SigningMethodHS256, claims(), []byte(priv.Seed()))},
		{"wrong issuer", sign(jwt.SigningMethodEdDSA, wrongIssuer, priv)},
		{"wrong epoch", sign(jwt.SigningMethodEdDSA, wrongEpoch, priv)},
		{"no expiry", sign(jwt.SigningMethodEdDSA, noExpiry, priv)},
		{"no subject", sign(jwt.SigningMethodEdDSA, noSubject, priv)},
		{"issued in the future", sign(jwt.SigningMethodEdDSA, future, priv)},
		{"unknown owner", sign(jwt.SigningMethodEdDSA, otherOwner, priv)},
		{"tampered payload", tamper(good)},
		{"garbage", "garbage"},
		{"three dots", "a.b.c"},
		{"huge", strings.Repeat("A", 5000)},
		{"api key", "tlk_" + strings.Repeat("k", 43)},
		{"api key prefix on a valid token", "tlk_" + good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, q := range []request{
				{Token: tc.token},
				{Cookie: &http.Cookie{Name: sessionCookie, Value: tc.token}},
			} {
				q.Method, q.Path = http.MethodGet, "/api/v1/me"
				h.Do(q).MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
			}
		})
	}
}

// tamper flips a character of a JWT's payload.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if p[5] == 'A' {
		p[5] = 'B'
	} else {
		p[5] = 'A'
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

func TestNoCredentials(t *testing.T) {
	h := newHarness(t)
	for _, q := range []request{
		{Method: http.MethodGet, Path: "/api/v1/me"},
		{Method: http.MethodPut, Path: "/api/v1/me/plan", Body: api.PlanChange{Plan: "pro"}},
		{Method: http.MethodPost, Path: "/api/v1/auth/logout"},
		{Method: http.MethodGet, Path: "/api/v1/admin/owners"},
		{Method: http.MethodGet, Path: "/api/v1/admin/plans"},
		{Method: http.MethodPost, Path: "/api/v1/admin/plans", Body: api.PlanInput{}},
		{Method: http.MethodGet, Path: "/api/v1/me", Header: map[string]string{"Authorization": "Bearer "}},
		{Method: http.MethodGet, Path: "/api/v1/me", Header: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}},
	} {
		h.Do(q).MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
	}
}

func TestDeletedOwnerToken(t *testing.T) {
	h := newHarness(t)
	su := h.MustOwner()
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: su.Token}).MustStatus(t, http.StatusOK)
	mustExecSQL(t, h.dbPath, "DELETE FROM owners WHERE id = ?", su.Owner.ID)
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: su.Token}).MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
}

// mustExecSQL runs a statement on the SQLite file behind the store's back
// (the store has no call for it yet).
func mustExecSQL(tb testing.TB, path, query string, args ...any) {
	tb.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	res, err := db.ExecContext(context.Background(), query, args...)
	if err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		tb.Fatalf("%s: %d rows affected, want 1", query, n)
	}
}

func TestSuspendedOwner(t *testing.T) {
	h := newHarness(t)
	admin := h.MustAdmin()
	email := h.NewEmail()
	su := h.MustSignup(email, testPassword)

	h.Do(request{Method: http.MethodPut, Path: "/api/v1/admin/owners/" + su.Owner.ID, Token: admin.Token, Body: map[string]any{"status": store.StatusSuspended}}).
		MustStatus(t, http.StatusOK)
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: su.Token}).MustHaveError(t, wantErr{http.StatusForbidden, api.CodeForbidden, ""})
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: email, Password: testPassword}}).
		MustHaveError(t, wantErr{http.StatusForbidden, api.CodeForbidden, ""})
	// A wrong password for a suspended account says nothing about the account.
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: email, Password: "not the password at all"}}).
		MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})

	h.Do(request{Method: http.MethodPut, Path: "/api/v1/admin/owners/" + su.Owner.ID, Token: admin.Token, Body: map[string]any{"status": store.StatusActive}}).
		MustStatus(t, http.StatusOK)
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: su.Token}).MustStatus(t, http.StatusOK)
}

func TestAdminRoutesNeedOperator(t *testing.T) {
	h := newHarness(t)
	admin := h.MustAdmin()
	su := h.MustOwner()
	planID := h.MustPlanID("free")
	for _, q := range []request{
		{Method: http.MethodGet, Path: "/api/v1/admin/plans"},
		{Method: http.MethodPost, Path: "/api/v1/admin/plans", Body: api.PlanInput{Slug: "x", Name: "X", Currency: "EUR"}},
		{Method: http.MethodPut, Path: "/api/v1/admin/plans/" + planID, Body: api.PlanInput{Slug: "x", Name: "X", Currency: "EUR"}},
		{Method: http.MethodDelete, Path: "/api/v1/admin/plans/" + planID},
		{Method: http.MethodGet, Path: "/api/v1/admin/owners"},
		{Method: http.MethodPut, Path: "/api/v1/admin/owners/" + su.Owner.ID, Body: map[string]any{"status": "suspended"}},
		{Method: http.MethodPut, Path: "/api/v1/admin/owners/" + admin.Owner.ID, Body: map[string]any{"status": "suspended"}},
		{Method: http.MethodGet, Path: "/api/v1/admin/no-such-route"},
	} {
		q.Token = su.Token
		h.Do(q).MustHaveError(t, wantErr{http.StatusForbidden, api.CodeForbidden, ""})
	}
	// Nothing changed.
	if o := h.MustGetOwner(admin.Owner.ID); o.Status != store.StatusActive {
		t.Errorf("operator status = %q", o.Status)
	}
	if n := len(h.MustPlans()); n != 3 {
		t.Errorf("%d plans, want 3", n)
	}
	// The operator gets through.
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/admin/owners", Token: admin.Token}).MustStatus(t, http.StatusOK)
}
