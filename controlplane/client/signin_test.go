package client_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
	"github.com/traceless-vpn/traceless/internal/mailpit"
)

// TestSignInByMail: verification, reset and password change through the
// SDK against the real server, reading the mail from a real SMTP server.
func TestSignInByMail(t *testing.T) {
	ctx := context.Background()
	mp := mailpit.Start(t)
	url := newServer(t, func(o *controlplane.Options) {
		o.Alerts.SMTP = controlplane.SMTPConfig{Addr: mp.SMTPAddr, From: "traceless@example.org"}
	})
	const email = "sdk.owner@example.com"
	c := mustNew(t, url)
	res, err := c.Signup(ctx, email, password)
	if err != nil || res.Owner.EmailVerified || !res.Owner.EmailVerificationRequired {
		t.Fatalf("signup: %+v, %v", res.Owner, err)
	}
	app, err := c.CreateApp(ctx, "vpn")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateAPIKey(ctx, app.ID, "k")
	wantCode(t, err, http.StatusForbidden, api.CodeEmailUnverified)

	link := mp.WaitFor(t, email, "Confirm your email", 15*time.Second).Link(t, "/verify-email")
	if err := mustNew(t, url).VerifyEmail(ctx, link.Query().Get("token")); err != nil {
		t.Fatalf("VerifyEmail: %v", err)
	}
	if _, err := c.CreateAPIKey(ctx, app.ID, "k"); err != nil {
		t.Fatalf("CreateKey after verification: %v", err)
	}
	_, err = c.ResendVerification(ctx)
	wantCode(t, err, http.StatusConflict, api.CodeConflict)

	// A password change keeps this client signed in and ends the others.
	other := mustNew(t, url)
	if _, err := other.Login(ctx, email, password); err != nil {
		t.Fatal(err)
	}
	_, err = c.ChangePassword(ctx, "not the password", "a second passphrase")
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)
	if _, err := c.ChangePassword(ctx, password, "a second passphrase"); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	if _, err := c.Me(ctx); err != nil {
		t.Errorf("the changing client lost its session: %v", err)
	}
	_, err = other.Me(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)

	// A reset by mail ends every session.
	anon := mustNew(t, url)
	q, err := anon.RequestPasswordReset(ctx, email)
	if err != nil || q.Message == "" {
		t.Fatalf("RequestPasswordReset: %+v, %v", q, err)
	}
	tok := mp.WaitFor(t, email, "Reset your Traceless password", 15*time.Second).Link(t, "/reset-password").Query().Get("token")
	err = anon.ConfirmPasswordReset(ctx, tok+"x", "a third passphrase")
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)
	if err := anon.ConfirmPasswordReset(ctx, tok, "a third passphrase"); err != nil {
		t.Fatalf("ConfirmPasswordReset: %v", err)
	}
	_, err = c.Me(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	_, err = mustNew(t, url).Login(ctx, email, "a second passphrase")
	if !client.IsCode(err, api.CodeUnauthorized) {
		t.Errorf("login with the replaced password: %v, want unauthorized", err)
	}
	if _, err := mustNew(t, url).Login(ctx, email, "a third passphrase"); err != nil {
		t.Errorf("login with the new password: %v", err)
	}
}

// TestTwoFactor: enrolment, the two-step login and turning it off through
// the SDK against the real server; the codes come from the secret, as an
// authenticator app makes them.
func TestTwoFactor(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	c := mustNew(t, url)
	const email = "twofactor@example.com"
	if _, err := c.Signup(ctx, email, password); err != nil {
		t.Fatal(err)
	}
	e, err := c.StartTwoFactor(ctx)
	if err != nil || e.Secret == "" || e.OtpauthURL == "" {
		t.Fatalf("StartTwoFactor: %+v, %v", e, err)
	}
	_, err = c.ConfirmTwoFactor(ctx, "000000")
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)
	code, err := totp.GenerateCode(e.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	codes, err := c.ConfirmTwoFactor(ctx, code)
	if err != nil || len(codes) != 10 {
		t.Fatalf("ConfirmTwoFactor: %d codes, %v", len(codes), err)
	}

	_, err = mustNew(t, url).Login(ctx, email, password)
	wantCode(t, err, http.StatusUnauthorized, api.CodeSecondFactorRequired)
	_, err = mustNew(t, url).LoginWithCode(ctx, email, password, code) // spent by the confirmation
	wantCode(t, err, http.StatusUnauthorized, api.CodeSecondFactorInvalid)
	if _, err := mustNew(t, url).LoginWithCode(ctx, email, password, codes[0]); err != nil {
		t.Fatalf("LoginWithCode with a recovery code: %v", err)
	}
	// Five sign-in attempts of the email so far: the login limit's burst.
	if err := c.DisableTwoFactor(ctx, password, codes[1]); err != nil {
		t.Fatalf("DisableTwoFactor: %v", err)
	}
	if _, err := mustNew(t, url).Login(ctx, email, password); err != nil {
		t.Errorf("Login after turning two-factor off: %v", err)
	}
}
