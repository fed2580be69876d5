package controlplane

import (
	"database/sql"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// mustEnrol turns two-factor on for the owner of tok and returns the
// secret and the recovery codes. The confirmation spends the code of the
// current step.
func mustEnrol(t *testing.T, h *harness, tok string) (string, []string) {
	t.Helper()
	var e api.TOTPEnrolment
	h.Do(request{Method: "POST", Path: "/api/v1/me/2fa", Token: tok}).MustStatus(t, 200).MustDecode(t, &e)
	code, err := totpCode(e.Secret, totpStep(h.clock.Now()))
	if err != nil {
		t.Fatal(err)
	}
	var rc api.RecoveryCodes
	h.Do(request{Method: "POST", Path: "/api/v1/me/2fa/confirm", Token: tok, Body: api.TOTPCode{Code: code}}).MustStatus(t, 200).MustDecode(t, &rc)
	return e.Secret, rc.RecoveryCodes
}

// codeNow is the secret's code for the harness clock's step plus offset.
func codeNow(t *testing.T, h *harness, secret string, offset int64) string {
	t.Helper()
	code, err := totpCode(secret, totpStep(h.clock.Now())+offset)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func login(h *harness, email, password, code string) response {
	return h.Serve(request{Method: "POST", Path: "/api/v1/auth/login", Body: api.Login{Email: email, Password: password, Code: code}})
}

// TestTOTPEnrolAndSignIn walks enrolment and the two-step sign-in: a code
// is accepted once (no replay within its window), recovery codes once.
func TestTOTPEnrolAndSignIn(t *testing.T) {
	h := newHarness(t)
	// Many sign-ins of one email follow; the limit is TestTOTPSecondStepRateLimited's.
	h.srv.loginEmail = newLimiter(time.Millisecond, 1000, time.Hour, h.clock.Now)
	email := h.NewEmail()
	owner := h.MustSignup(email, testPassword)

	var e api.TOTPEnrolment
	h.Do(request{Method: "POST", Path: "/api/v1/me/2fa", Token: owner.Token}).MustStatus(t, 200).MustDecode(t, &e)
	u, err := url.Parse(e.OtpauthURL)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("secret") != e.Secret || u.Query().Get("issuer") != totpIssuer ||
		!strings.Contains(u.Path, email) {
		t.Fatalf("otpauth_url %q does not carry the secret, issuer and account", e.OtpauthURL)
	}
	if len(e.Secret) != 32 {
		t.Errorf("secret of %d base32 characters, want 32 (160 bits)", len(e.Secret))
	}
	// Until confirmed, sign-in needs no code.
	login(h, email, testPassword, "").MustStatus(t, 200)
	h.Do(request{Method: "POST", Path: "/api/v1/me/2fa/confirm", Token: owner.Token, Body: api.TOTPCode{Code: "000000"}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "code"})
	confirmCode := codeNow(t, h, e.Secret, 0)
	var rc api.RecoveryCodes
	h.Do(request{Method: "POST", Path: "/api/v1/me/2fa/confirm", Token: owner.Token, Body: api.TOTPCode{Code: confirmCode}}).MustStatus(t, 200).MustDecode(t, &rc)
	if len(rc.RecoveryCodes) != 10 {
		t.Fatalf("%d recovery codes, want 10", len(rc.RecoveryCodes))
	}
	var me api.Owner
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: owner.Token}).MustStatus(t, 200).MustDecode(t, &me)
	if !me.TwoFactor {
		t.Error("two_factor is false after the confirmation")
	}
	h.Do(request{Method: "POST", Path: "/api/v1/me/2fa", Token: owner.Token}).MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})

	// The password alone asks for the second factor; a wrong password
	// still answers as before.
	login(h, email, testPassword, "").MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorRequired})
	login(h, email, "not the password", "").MustHaveError(t, unauthorized)
	login(h, email, "not the password", confirmCode).MustHaveError(t, unauthorized)
	// The confirmation's code is spent: a replay within its window fails.
	login(h, email, testPassword, confirmCode).MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorInvalid})
	login(h, email, testPassword, "123").MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorInvalid})

	h.clock.Advance(totpPeriod * time.Second)
	next := codeNow(t, h, e.Secret, 0)
	r := login(h, email, testPassword, next)
	r.MustStatus(t, 200)
	var ar api.AuthResponse
	r.MustDecode(t, &ar)
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: ar.Token}).MustStatus(t, 200)
	login(h, email, testPassword, next).MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorInvalid})
	// A code of an earlier step than one accepted is refused too.
	login(h, email, testPassword, codeNow(t, h, e.Secret, -1)).MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorInvalid})
	// The clock may be one step ahead on the phone.
	login(h, email, testPassword, codeNow(t, h, e.Secret, 1)).MustStatus(t, 200)

	// A recovery code works once, typed in any case and with or without
	// its dashes.
	typed := strings.ToUpper(strings.ReplaceAll(rc.RecoveryCodes[3], "-", " "))
	login(h, email, testPassword, typed).MustStatus(t, 200)
	login(h, email, testPassword, rc.RecoveryCodes[3]).MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorInvalid})
	if n, _ := h.store.CountRecoveryCodes(t.Context(), owner.Owner.ID); n != 9 {
		t.Errorf("%d recovery codes left, want 9", n)
	}
}

// TestTOTPSecondStepRateLimited: the second step counts against the same
// login limit as the first; guessing codes gets 429, and then even the
// right code waits.
func TestTOTPSecondStepRateLimited(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	owner := h.MustSignup(email, testPassword)
	secret, _ := mustEnrol(t, h, owner.Token)
	h.clock.Advance(totpPeriod * time.Second)
	for i := 0; i < 5; i++ {
		login(h, email, testPassword, "00000"+string(rune('0'+i))).MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorInvalid})
	}
	login(h, email, testPassword, codeNow(t, h, secret, 0)).MustHaveError(t, wantErr{Status: 429, Code: api.CodeRateLimited})
	// From one address, the per-address limit holds as well.
	var last response
	for i := 0; i < 11; i++ {
		last = h.Serve(request{Method: "POST", Path: "/api/v1/auth/login", RemoteAddr: "198.51.100.9:4000",
			Body: api.Login{Email: h.NewEmail(), Password: testPassword, Code: "123456"}})
	}
	last.MustHaveError(t, wantErr{Status: 429, Code: api.CodeRateLimited})
}

// TestTOTPDisable needs the password and a code.
func TestTOTPDisable(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	owner := h.MustSignup(email, testPassword)
	secret, codes := mustEnrol(t, h, owner.Token)
	h.clock.Advance(totpPeriod * time.Second)
	disable := func(pw, code string) response {
		return h.Serve(request{Method: "DELETE", Path: "/api/v1/me/2fa", Token: owner.Token, Body: api.TOTPDisable{Password: pw, Code: code}})
	}
	disable("not the password", codeNow(t, h, secret, 0)).MustHaveError(t, wantErr{Status: 403, Code: api.CodeForbidden, Field: "password"})
	disable(testPassword, "000000").MustHaveError(t, wantErr{Status: 403, Code: api.CodeSecondFactorInvalid, Field: "code"})
	disable(testPassword, codes[0]).MustStatus(t, 204)
	disable(testPassword, codes[1]).MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})
	h.clock.Advance(time.Minute)
	login(h, email, testPassword, "").MustStatus(t, 200)
	for _, table := range []string{"totp_credentials", "recovery_codes"} {
		if n := countRows(t, h, table); n != 0 {
			t.Errorf("%d %s rows after disabling, want 0", n, table)
		}
	}
}

// TestTOTPSecretSealed: the stored secret is AES-GCM ciphertext bound to
// its owner; a server started with a new key first and the old one after
// re-seals it at start, and one with the new key alone still reads it.
func TestTOTPSecretSealed(t *testing.T) {
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	for i := range oldKey {
		oldKey[i], newKey[i] = byte(i), byte(100+i)
	}
	h := newHarness(t, func(o *Options) { o.SecretKeys = [][]byte{oldKey} })
	email := h.NewEmail()
	owner := h.MustSignup(email, testPassword)
	secret, _ := mustEnrol(t, h, owner.Token)

	stored := func() string {
		db, err := sql.Open("sqlite3", "file:"+h.dbPath+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var s string
		if err := db.QueryRow(`SELECT secret FROM totp_credentials`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	sealed := stored()
	if strings.Contains(sealed, secret) || strings.Contains(strings.ToLower(sealed), strings.ToLower(secret)) {
		t.Fatal("the stored secret holds the secret in clear")
	}
	box, _ := newSecretBox([][]byte{oldKey})
	if got, err := box.open(owner.Owner.ID, sealed); err != nil || got != secret {
		t.Fatalf("open with the key: %q, %v", got, err)
	}
	if _, err := box.open("another-owner", sealed); err == nil {
		t.Error("the sealed secret opens for another owner")
	}
	if _, err := newSecretBoxMust(t, newKey).open(owner.Owner.ID, sealed); err == nil {
		t.Error("the sealed secret opens with another key")
	}

	// Rotation: the new key first, the old one after.
	rotated, err := New(withKeys(h.opts, newKey, oldKey))
	if err != nil {
		t.Fatal(err)
	}
	defer rotated.Close()
	if _, err := rotated.Bootstrap(t.Context(), "", "", h.ts.URL); err != nil {
		t.Fatal(err)
	}
	resealed := stored()
	if resealed == sealed || !strings.HasPrefix(resealed, "v1."+newSecretBoxMust(t, newKey).ids[0]+".") {
		t.Fatalf("after a start with the new key first, the secret is %q (was %q)", resealed, sealed)
	}
	// The old key can go now.
	only, err := New(withKeys(h.opts, newKey))
	if err != nil {
		t.Fatal(err)
	}
	defer only.Close()
	o := h.MustGetOwner(owner.Owner.ID)
	h.clock.Advance(totpPeriod * time.Second)
	if err := only.checkSecondFactor(t.Context(), o, codeNow(t, h, secret, 0)); err != nil {
		t.Errorf("a server with the new key alone: %v", err)
	}
}

func withKeys(o Options, keys ...[]byte) Options {
	o.SecretKeys = keys
	return o
}

func newSecretBoxMust(t *testing.T, keys ...[]byte) *secretBox {
	t.Helper()
	b, err := newSecretBox(keys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecretBoxRejects(t *testing.T) {
	for name, keys := range map[string][][]byte{
		"none":      nil,
		"short key": {make([]byte, 16)},
		"twice":     {make([]byte, 32), make([]byte, 32)},
	} {
		if _, err := newSecretBox(keys); err == nil {
			t.Errorf("%s: newSecretBox accepted", name)
		}
	}
	b := newSecretBoxMust(t, make([]byte, 32))
	sealed := b.seal("o", "JBSWY3DPEHPK3PXP")
	for _, bad := range []string{"", "v1", "v2." + sealed[3:], sealed[:len(sealed)-2], strings.Replace(sealed, ".", "x", 1), sealed + "A"} {
		if _, err := b.open("o", bad); err == nil {
			t.Errorf("open(%q) succeeded", bad)
		}
	}
}

// TestRequireOperator2FA: an operator without a second factor may only
// enrol (and sign out) until it is on; owners are not affected.
func TestRequireOperator2FA(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.RequireOperator2FA = true })
	admin := h.MustAdmin()
	owner := h.MustOwner()
	enrol := wantErr{Status: 403, Code: api.CodeSecondFactorEnrolment}
	for _, q := range []request{
		{Method: "GET", Path: "/api/v1/me"},
		{Method: "GET", Path: "/api/v1/admin/owners"},
		{Method: "PUT", Path: "/api/v1/me/password", Body: api.PasswordChange{CurrentPassword: adminPassword, NewPassword: "a brand new passphrase"}},
		{Method: "DELETE", Path: "/api/v1/me"},
	} {
		q.Token = admin.Token
		h.Serve(q).MustHaveError(t, enrol)
	}
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: owner.Token}).MustStatus(t, 200)

	// The dashboard sends the operator to the security page.
	b := newBrowser(t, h)
	b.signInAs(admin.Token)
	b.get("/admin").mustRedirect(t, "/account/security?done=enrol-required")
	b.get("/apps").mustRedirect(t, "/account/security?done=enrol-required")
	b.get("/account/security?done=enrol-required").mustStatus(t, 200).mustContain(t, "requires operators to use two-factor")

	secret, _ := mustEnrol(t, h, admin.Token)
	h.Do(request{Method: "GET", Path: "/api/v1/admin/owners", Token: admin.Token}).MustStatus(t, 200)
	b.get("/admin").mustStatus(t, 200)
	h.clock.Advance(totpPeriod * time.Second)
	login(h, adminEmail, adminPassword, "").MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorRequired})
	login(h, adminEmail, adminPassword, codeNow(t, h, secret, 0)).MustStatus(t, 200)
}

// TestDashboardSecondFactor walks the dashboard's two-step sign-in and
// enrolment with its QR code; the pending cookie is no session.
func TestDashboardSecondFactor(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	b := newBrowser(t, h)
	b.signup(email)
	b.submit("/account/security", "/account/2fa", nil).mustRedirect(t, "/account/security")
	page := b.get("/account/security").mustStatus(t, 200).mustContain(t, "Scan this QR code")
	secret := regexpSubmatch(t, `<code id="totp-secret">([A-Z2-7]+)</code>`, page.Body)
	qr := b.get("/account/2fa/qr").mustStatus(t, 200)
	if qr.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(qr.Body, "\x89PNG") || qr.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("QR: %s, %q, cache %q", qr.Header.Get("Content-Type"), qr.Body[:4], qr.Header.Get("Cache-Control"))
	}
	b.submit("/account/security", "/account/2fa/confirm", url.Values{"code": {"000000"}}).mustStatus(t, 400)
	done := b.submit("/account/security", "/account/2fa/confirm", url.Values{"code": {codeNow(t, h, secret, 0)}}).mustStatus(t, 200)
	done.mustContain(t, "Two-factor authentication is on", "recovery-codes")
	b.submit("/apps", "/logout", nil).mustRedirect(t, "/login")

	// Sign in: the password, then the code.
	step := b.submit("/login", "/login", url.Values{"email": {email}, "password": {testPassword}}).mustStatus(t, 200)
	step.mustContain(t, "Enter the 6-digit code")
	pending := b.jar[pendingCookie]
	if pending == "" {
		t.Fatal("no pending cookie after the password")
	}
	if _, ok := b.jar[sessionCookie]; ok {
		t.Fatal("a session cookie before the second factor")
	}
	// The pending token opens nothing.
	thief := newBrowser(t, h)
	thief.signInAs(pending)
	thief.get("/apps").mustRedirect(t, "/login")
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: pending}).MustHaveError(t, unauthorized)

	b.jar[pendingCookie] = pending
	b.submit("/login", "/login/code", url.Values{"code": {codeNow(t, h, secret, 0)}}).mustStatus(t, 401) // spent by the confirmation
	h.clock.Advance(totpPeriod * time.Second)
	code := codeNow(t, h, secret, 0)
	b.jar[pendingCookie] = pending
	b.submit("/login", "/login/code", url.Values{"code": {code}}).mustRedirect(t, "/apps")
	b.get("/apps").mustStatus(t, 200)
	if _, ok := b.jar[pendingCookie]; ok {
		t.Error("the pending cookie stays after the sign-in")
	}

	// A replayed code in another browser is refused.
	other := newBrowser(t, h)
	other.submit("/login", "/login", url.Values{"email": {email}, "password": {testPassword}}).mustStatus(t, 200)
	other.submit("/login", "/login/code", url.Values{"code": {code}}).mustStatus(t, 401).mustContain(t, "was used already")
	// Without the pending cookie (or after 5 minutes) the step starts over.
	h.clock.Advance(pendingTTL + time.Second)
	other.submit("/login", "/login/code", url.Values{"code": {codeNow(t, h, secret, 0)}}).mustRedirect(t, "/login?done=code-expired")

	// Turning it off.
	h.clock.Advance(totpPeriod * time.Second)
	b.submit("/account/security", "/account/2fa/disable", url.Values{"password": {testPassword}, "code": {codeNow(t, h, secret, 0)}}).
		mustRedirect(t, "/account/security?done=two-factor-off")
	on, err := h.store.TOTPEnabled(t.Context(), h.MustGetOwnerByEmail(email).ID)
	if err != nil || on {
		t.Errorf("TOTPEnabled after turning off = %v, %v", on, err)
	}
}

func (h *harness) MustGetOwnerByEmail(email string) store.Owner {
	h.tb.Helper()
	o, err := h.store.GetOwnerByEmail(h.tb.Context(), email)
	if err != nil {
		h.tb.Fatal(err)
	}
	return o
}

// TestTOTPNamesNoSecret: enrolment, sign-in and turning off log no secret,
// code or recovery code.
func TestTOTPNamesNoSecret(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	owner := h.MustSignup(email, testPassword)
	secret, codes := mustEnrol(t, h, owner.Token)
	h.clock.Advance(totpPeriod * time.Second)
	code := codeNow(t, h, secret, 0)
	login(h, email, testPassword, code).MustStatus(t, 200)
	login(h, email, testPassword, codes[0]).MustStatus(t, 200)
	logs := h.logs.String()
	for _, s := range append([]string{secret, code}, codes...) {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q", s)
		}
	}
}

// regexpSubmatch returns the first group of pattern in s.
func regexpSubmatch(t *testing.T, pattern, s string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%.2000s", pattern, s)
	}
	return m[1]
}

// TestOIDCSecondFactor: single sign-on into an account with a second
// factor does not skip it. A browser goes on to the code step with the
// pending cookie; a JSON client gets 401 second_factor_required; linking
// with the password signs in only after the code.
func TestOIDCSecondFactor(t *testing.T) {
	w := newSSOWorlds(t, func(*Options) {})[0]
	h := w.h
	b := w.browser(t)
	mustPending(t, b.signIn(ssoAnn, true))
	var ar api.AuthResponse
	b.do("POST", "/api/v1/auth/oidc/signup", api.SSOSignup{}, true).MustStatus(t, 201).MustDecode(t, &ar)
	secret, _ := mustEnrol(t, h, ar.Token)
	h.clock.Advance(totpPeriod * time.Second)

	w.browser(t).signIn(ssoAnn, true).MustHaveError(t, wantErr{Status: 401, Code: api.CodeSecondFactorRequired})

	pb := w.browser(t)
	r := pb.signIn(ssoAnn, false).MustStatus(t, 200)
	if r.SessionCookie() != nil {
		t.Fatal("a session cookie before the second factor")
	}
	if !strings.Contains(string(r.Body), `url=/login/code?next=`) {
		t.Fatalf("the callback does not continue to the code step:\n%s", r.Body)
	}
	page := pb.do("GET", "/login/code", nil, false).MustStatus(t, 200)
	csrf := regexpSubmatch(t, `name="csrf" value="([^"]+)"`, string(page.Body))
	form := url.Values{"csrf": {csrf}, "code": {codeNow(t, h, secret, 0)}}
	req, _ := http.NewRequest("POST", h.ts.URL+"/login/code", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := pb.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 303 || res.Header.Get("Location") != "/apps" {
		t.Fatalf("code step: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	pb.do("GET", "/apps", nil, false).MustStatus(t, 200)
}

// TestDeleteAccountTakesSignInData: the export lists the second factor,
// its recovery codes and a pending link, their secrets withheld; deleting
// the account removes them.
func TestDeleteAccountTakesSignInData(t *testing.T) {
	h := newHarness(t)
	owner := h.MustOwner()
	mustEnrol(t, h, owner.Token)
	now := h.clock.Now()
	if err := h.store.CreateOwnerToken(t.Context(), owner.Owner.ID, store.TokenResetPassword, hashAPIKey(randomSecret("")), now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	var ex api.Export
	h.Do(request{Method: "GET", Path: "/api/v1/me/export", Token: owner.Token}).MustStatus(t, 200).MustDecode(t, &ex)
	for table, n := range map[string]int{"totp_credentials": 1, "recovery_codes": 10, "owner_tokens": 1} {
		if got := len(ex.Tables[table]); got != n {
			t.Errorf("export: %d %s rows, want %d", got, table, n)
		}
	}
	if ex.Tables["totp_credentials"][0]["secret"] != store.Withheld || ex.Tables["owner_tokens"][0]["hash"] != store.Withheld {
		t.Errorf("export shows a secret: %v %v", ex.Tables["totp_credentials"], ex.Tables["owner_tokens"])
	}
	h.Do(request{Method: "DELETE", Path: "/api/v1/me", Token: owner.Token}).MustStatus(t, 204)
	for _, table := range []string{"totp_credentials", "recovery_codes", "owner_tokens"} {
		if n := countRows(t, h, table); n != 0 {
			t.Errorf("%d %s rows after the account was deleted", n, table)
		}
	}
}
