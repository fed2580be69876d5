package controlplane

import (
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/mailpit"
)

// mailTimeout bounds the wait for a mail to reach Mailpit.
const mailTimeout = 15 * time.Second

// withMail sends the server's mail through mp.
func withMail(mp *mailpit.Server) func(*Options) {
	return func(o *Options) {
		o.Alerts.SMTP = SMTPConfig{Addr: mp.SMTPAddr, From: "traceless@example.org"}
	}
}

// mailToken returns the token of the link to path in the newest mail to
// to whose subject holds subject.
func mailToken(t *testing.T, mp *mailpit.Server, to, subject, path string) string {
	t.Helper()
	m := mp.WaitFor(t, to, subject, mailTimeout)
	tok := m.Link(t, path).Query().Get("token")
	if tok == "" {
		t.Fatalf("the link in %q has no token", m.Subject)
	}
	return tok
}

// TestEmailVerification: with mail configured, a new owner can sign in and
// look around, but creating a key waits for the mailed link, which works
// once.
func TestEmailVerification(t *testing.T) {
	mp := mailpit.Start(t)
	h := newHarness(t, withMail(mp))
	email := h.NewEmail()
	owner := h.MustSignup(email, testPassword)
	if owner.Owner.EmailVerified || !owner.Owner.EmailVerificationRequired {
		t.Fatalf("new owner: email_verified %v, email_verification_required %v; want false, true",
			owner.Owner.EmailVerified, owner.Owner.EmailVerificationRequired)
	}

	// Looking around works; an app too, but no key.
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: owner.Token}).MustStatus(t, 200)
	var app api.App
	h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: owner.Token, Body: api.AppInput{Name: "vpn"}}).MustStatus(t, 201).MustDecode(t, &app)
	keyReq := request{Method: "POST", Path: "/api/v1/apps/" + app.ID + "/keys", Token: owner.Token, Body: api.APIKeyInput{Name: "k"}}
	h.Do(keyReq).MustHaveError(t, wantErr{Status: 403, Code: api.CodeEmailUnverified})

	m := mp.WaitFor(t, email, "Confirm your email", mailTimeout)
	link := m.Link(t, verifyEmailPath)
	if !strings.HasPrefix(link.String(), h.ts.URL+verifyEmailPath+"?token=") {
		t.Errorf("link %s does not point at this server's %s", link, verifyEmailPath)
	}
	tok := link.Query().Get("token")
	if len(tok) != 43 {
		t.Errorf("token of %d characters, want 43 (256 bits)", len(tok))
	}
	checkMailPrivacy(t, m, email)

	// A wrong token, then the right one, once.
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/verify-email", Body: api.EmailVerification{Token: tok + "x"}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "token"})
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/verify-email", Body: api.EmailVerification{Token: tok}}).MustStatus(t, 204)
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/verify-email", Body: api.EmailVerification{Token: tok}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "token"})

	var me api.Owner
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: owner.Token}).MustStatus(t, 200).MustDecode(t, &me)
	if !me.EmailVerified || me.EmailVerificationRequired {
		t.Errorf("after the link: email_verified %v, email_verification_required %v", me.EmailVerified, me.EmailVerificationRequired)
	}
	h.Do(keyReq).MustStatus(t, 201)
	h.Do(request{Method: "POST", Path: "/api/v1/me/verify-email", Token: owner.Token}).MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})
	if n := countRows(t, h, "owner_tokens"); n != 0 {
		t.Errorf("%d owner_tokens rows after the link was used, want 0", n)
	}
}

// TestVerificationResend: a new link replaces the old one; the per-owner
// limit holds.
func TestVerificationResend(t *testing.T) {
	mp := mailpit.Start(t)
	h := newHarness(t, withMail(mp))
	email := h.NewEmail()
	owner := h.MustSignup(email, testPassword)
	first := mailToken(t, mp, email, "Confirm your email", verifyEmailPath)

	var q api.MailQueued
	h.Do(request{Method: "POST", Path: "/api/v1/me/verify-email", Token: owner.Token}).MustStatus(t, 202).MustDecode(t, &q)
	deadline := time.Now().Add(mailTimeout)
	var second string
	for second == "" || second == first {
		if time.Now().After(deadline) {
			t.Fatal("no second verification mail")
		}
		time.Sleep(50 * time.Millisecond)
		second = mailToken(t, mp, email, "Confirm your email", verifyEmailPath)
	}
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/verify-email", Body: api.EmailVerification{Token: first}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "token"})
	for i := 0; i < 2; i++ {
		h.Do(request{Method: "POST", Path: "/api/v1/me/verify-email", Token: owner.Token}).MustStatus(t, 202)
	}
	r := h.Do(request{Method: "POST", Path: "/api/v1/me/verify-email", Token: owner.Token})
	r.MustHaveError(t, wantErr{Status: 429, Code: api.CodeRateLimited})
}

// TestVerificationOff: without mail, or with verification turned off, a
// new owner creates keys at once and no mail is sent.
func TestVerificationOff(t *testing.T) {
	mp := mailpit.Start(t)
	for name, mods := range map[string][]func(*Options){
		"no SMTP":          nil,
		"turned off":       {withMail(mp), func(o *Options) { o.SkipEmailVerification = true }},
		"operator account": {withMail(mp)},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, mods...)
			var tok string
			if name == "operator account" {
				tok = h.MustAdmin().Token
			} else {
				o := h.MustOwner()
				if !o.Owner.EmailVerified || o.Owner.EmailVerificationRequired {
					t.Errorf("email_verified %v, email_verification_required %v; want true, false", o.Owner.EmailVerified, o.Owner.EmailVerificationRequired)
				}
				tok = o.Token
			}
			var app api.App
			h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: tok, Body: api.AppInput{Name: "vpn"}}).MustStatus(t, 201).MustDecode(t, &app)
			h.Do(request{Method: "POST", Path: "/api/v1/apps/" + app.ID + "/keys", Token: tok, Body: api.APIKeyInput{Name: "k"}}).MustStatus(t, 201)
		})
	}
	if n := mp.Count(t); n != 0 {
		t.Errorf("%d mails sent, want none", n)
	}
	h := newHarness(t)
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/password-reset", Body: api.PasswordResetRequest{Email: "a@example.com"}}).
		MustHaveError(t, wantErr{Status: 409, Code: api.CodeMailUnavailable})
}

// TestRegistrationNeedsVerifiedOwner: a key whose owner must still verify
// (say, verification was required after the key was made) registers no
// device.
func TestRegistrationNeedsVerifiedOwner(t *testing.T) {
	mp := mailpit.Start(t)
	h := newHarness(t, withMail(mp), func(o *Options) { o.SkipEmailVerification = true })
	sw := h.MustOwner()
	var app api.App
	h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: sw.Token, Body: api.AppInput{Name: "vpn"}}).MustStatus(t, 201).MustDecode(t, &app)
	var key api.APIKeyCreated
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + app.ID + "/keys", Token: sw.Token, Body: api.APIKeyInput{Name: "k"}}).MustStatus(t, 201).MustDecode(t, &key)
	h.srv.opts.SkipEmailVerification = false
	db, err := sql.Open("sqlite3", "file:"+h.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE owners SET email_verified = FALSE WHERE id = ?`, sw.Owner.ID); err != nil {
		t.Fatal(err)
	}
	var b [32]byte
	b[0] = 7
	h.Serve(request{Method: "POST", Path: "/api/v1/devices", Token: key.Key, Body: api.DeviceInput{PublicKey: newWGKeyFrom(b)}}).
		MustHaveError(t, wantErr{Status: 403, Code: api.CodeEmailUnverified})
}

// checkMailPrivacy fails when a mail carries more than it needs: any
// header beyond the fixed set, or a client address or user agent.
func checkMailPrivacy(t *testing.T, m mailpit.Message, to string) {
	t.Helper()
	head, _, _ := strings.Cut(m.Raw, "\r\n\r\n")
	allowed := map[string]bool{"from": true, "to": true, "subject": true, "date": true, "message-id": true,
		"mime-version": true, "content-type": true, "content-transfer-encoding": true,
		"received": true, "return-path": true} // the last two are Mailpit's own
	for _, line := range strings.Split(head, "\r\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		if !allowed[strings.ToLower(name)] {
			t.Errorf("mail has header %q", line)
		}
	}
	for _, bad := range []string{"192.0.2.", "Go-http-client", "User-Agent"} { // Serve's clients come from 192.0.2.0/24
		if strings.Contains(m.Text, bad) {
			t.Errorf("mail text holds %q:\n%s", bad, m.Text)
		}
	}
	if len(m.To) != 1 || !strings.EqualFold(m.To[0], to) {
		t.Errorf("mail to %v, want only %s", m.To, to)
	}
}

// countRows counts a table's rows straight from the database file.
func countRows(t *testing.T, h *harness, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+h.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPasswordReset walks a reset: the same answer for a known and an
// unknown address, a mail only for the known one, a link that works once
// and not after 30 minutes, every old session gone.
func TestPasswordReset(t *testing.T) {
	mp := mailpit.Start(t)
	h := newHarness(t, withMail(mp))
	email := h.NewEmail()
	owner := h.MustSignup(email, testPassword)
	other := h.MustLogin(email, testPassword)

	ask := func(addr string) response {
		return h.Serve(request{Method: "POST", Path: "/api/v1/auth/password-reset", Body: api.PasswordResetRequest{Email: addr}})
	}
	unknown, known := ask("nobody@example.com"), ask(strings.ToUpper(email))
	for _, r := range []response{unknown, known} {
		r.MustStatus(t, 202)
	}
	if string(unknown.Body) != string(known.Body) {
		t.Errorf("answers differ:\nunknown %s\nknown   %s", unknown.Body, known.Body)
	}
	for _, hdr := range []string{"Content-Type", "Content-Length", "Set-Cookie", "Cache-Control"} {
		if unknown.Header.Get(hdr) != known.Header.Get(hdr) {
			t.Errorf("header %s differs: %q vs %q", hdr, unknown.Header.Get(hdr), known.Header.Get(hdr))
		}
	}
	m := mp.WaitFor(t, email, "Reset your Traceless password", mailTimeout)
	checkMailPrivacy(t, m, email)
	tok := m.Link(t, resetPasswordPath).Query().Get("token")
	for _, msg := range mp.Messages(t) {
		if strings.Contains(msg.Subject, "Reset") && !strings.EqualFold(msg.To[0], email) {
			t.Errorf("a reset mail went to %v", msg.To)
		}
	}

	confirm := func(token, pw string) response {
		return h.Serve(request{Method: "POST", Path: "/api/v1/auth/password-reset/confirm", Body: api.PasswordResetConfirm{Token: token, NewPassword: pw}})
	}
	// A weak password is refused and leaves the link usable.
	confirm(tok, "short").MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "new_password"})
	confirm("x"+tok, "a brand new passphrase").MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "token"})
	const newPassword = "a brand new passphrase"
	confirm(tok, newPassword).MustStatus(t, 204)
	confirm(tok, "another new passphrase").MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "token"})

	for _, old := range []string{owner.Token, other.Token} {
		h.Do(request{Method: "GET", Path: "/api/v1/me", Token: old}).MustHaveError(t, unauthorized)
	}
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/login", Body: api.Credentials{Email: email, Password: testPassword}}).MustHaveError(t, unauthorized)
	h.MustLogin(email, newPassword)

	// A link expires after 30 minutes, and is gone after a try.
	ask(email).MustStatus(t, 202)
	late := waitNewToken(t, mp, email, "Reset your Traceless password", resetPasswordPath, tok)
	h.clock.Advance(resetTTL)
	confirm(late, "yet another passphrase").MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "token"})
	if n := countRows(t, h, "owner_tokens"); n != 0 {
		t.Errorf("%d owner_tokens rows left, want 0", n)
	}
}

// waitNewToken waits for a mail whose link token differs from old.
func waitNewToken(t *testing.T, mp *mailpit.Server, to, subject, path, old string) string {
	t.Helper()
	deadline := time.Now().Add(mailTimeout)
	for {
		if tok := mailToken(t, mp, to, subject, path); tok != old {
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new %q mail to %s", subject, to)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPasswordResetLooksUpLater: the request path does no account lookup,
// no token write and no mail: with the mail queue held, known and unknown
// addresses are answered alike and nothing is stored; the queue does the
// work afterwards, and only for the known address.
func TestPasswordResetLooksUpLater(t *testing.T) {
	mp := mailpit.Start(t)
	h := newHarness(t, withMail(mp))
	email := h.NewEmail()
	h.MustSignup(email, testPassword)
	mailToken(t, mp, email, "Confirm your email", verifyEmailPath) // the signup's mail is out of the way

	hold := make(chan struct{})
	taken := make(chan struct{}, 4)
	picked := func() { taken <- struct{}{}; <-hold }
	h.srv.mail.picked.Store(&picked)
	before := countRows(t, h, "owner_tokens")
	for _, addr := range []string{"nobody@example.com", email, "nobody2@example.com"} {
		h.Serve(request{Method: "POST", Path: "/api/v1/auth/password-reset", Body: api.PasswordResetRequest{Email: addr}}).MustStatus(t, 202)
	}
	<-taken // the worker holds the first job; the others wait in the queue
	if n := countRows(t, h, "owner_tokens"); n != before {
		t.Errorf("owner_tokens grew from %d to %d before the queue ran", before, n)
	}
	close(hold)
	mp.WaitFor(t, email, "Reset your Traceless password", mailTimeout)
	if got := mp.Count(t); got != 2 {
		t.Errorf("%d mails, want 2 (the verification and one reset)", got)
	}
}

// TestPasswordResetRateLimits: the per-address and per-email limits answer
// alike for known and unknown addresses.
func TestPasswordResetRateLimits(t *testing.T) {
	mp := mailpit.Start(t)
	h := newHarness(t, withMail(mp))
	email := h.MustOwner().Owner.Email
	for _, addr := range []string{email, "nobody@example.com"} {
		var last response
		for i := 0; i < 4; i++ {
			last = h.Serve(request{Method: "POST", Path: "/api/v1/auth/password-reset", Body: api.PasswordResetRequest{Email: addr}})
		}
		last.MustHaveError(t, wantErr{Status: 429, Code: api.CodeRateLimited})
	}
	var last response
	for i := 0; i < 6; i++ {
		last = h.Serve(request{Method: "POST", Path: "/api/v1/auth/password-reset", RemoteAddr: "198.51.100.7:1000",
			Body: api.PasswordResetRequest{Email: fmt.Sprintf("n%d@example.com", i)}})
	}
	last.MustHaveError(t, wantErr{Status: 429, Code: api.CodeRateLimited})
}

// TestChangePassword: the current password is checked, the new one must
// pass the policy, and every other session ends while the caller gets a
// new token.
func TestChangePassword(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	a := h.MustSignup(email, testPassword)
	b := h.MustLogin(email, testPassword)
	change := func(tok, cur, next string) response {
		return h.Serve(request{Method: "PUT", Path: "/api/v1/me/password", Token: tok, Body: api.PasswordChange{CurrentPassword: cur, NewPassword: next}})
	}
	change(a.Token, "wrong password here", "a brand new passphrase").MustHaveError(t, wantErr{Status: 403, Code: api.CodeForbidden, Field: "current_password"})
	change(a.Token, testPassword, "short").MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "new_password"})
	change(a.Token, testPassword, testPassword).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "new_password"})
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: b.Token}).MustStatus(t, 200) // refusals revoke nothing

	r := change(a.Token, testPassword, "a brand new passphrase")
	r.MustStatus(t, 200)
	var ar api.AuthResponse
	r.MustDecode(t, &ar)
	if r.SessionCookie() == nil {
		t.Error("no new session cookie")
	}
	for _, old := range []string{a.Token, b.Token} {
		h.Do(request{Method: "GET", Path: "/api/v1/me", Token: old}).MustHaveError(t, unauthorized)
	}
	h.Do(request{Method: "GET", Path: "/api/v1/me", Token: ar.Token}).MustStatus(t, 200)
	h.clock.Advance(time.Minute) // the attempts above count against the email's login limit
	h.MustLogin(email, "a brand new passphrase")
}

// TestChangePasswordRateLimited: guessing the current password with a
// stolen session meets the login limits.
func TestChangePasswordRateLimited(t *testing.T) {
	h := newHarness(t)
	a := h.MustOwner()
	var last response
	for i := 0; i < 6; i++ {
		last = h.Serve(request{Method: "PUT", Path: "/api/v1/me/password", Token: a.Token,
			Body: api.PasswordChange{CurrentPassword: fmt.Sprintf("guess number %d", i), NewPassword: "a brand new passphrase"}})
	}
	last.MustHaveError(t, wantErr{Status: 429, Code: api.CodeRateLimited})
}

// TestSignInMailNamesNoSecret: the log of a whole reset holds no email,
// token or password.
func TestSignInMailNamesNoSecret(t *testing.T) {
	mp := mailpit.Start(t)
	h := newHarness(t, withMail(mp))
	email := h.NewEmail()
	h.MustSignup(email, testPassword)
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/password-reset", Body: api.PasswordResetRequest{Email: email}}).MustStatus(t, 202)
	tok := mailToken(t, mp, email, "Reset your Traceless password", resetPasswordPath)
	h.Serve(request{Method: "POST", Path: "/api/v1/auth/password-reset/confirm", Body: api.PasswordResetConfirm{Token: tok, NewPassword: "a brand new passphrase"}}).MustStatus(t, 204)
	logs := h.logs.String()
	for _, secret := range []string{email, tok, hashAPIKey(tok), "a brand new passphrase"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	if regexp.MustCompile(`token=`).MatchString(logs) {
		t.Error("the log holds a link")
	}
}
