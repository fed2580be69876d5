package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The dashboard's sign-in security: the account security page (password
// change, email verification, second factor), and the pages mailed links
// open (verify the email, reset the password). Each calls the same code
// as its API route.

// securityRoutes registers the pages of this file.
func (d *dashboard) securityRoutes(e *echo.Echo, own, post []echo.MiddlewareFunc) {
	e.GET("/account/security", d.h(d.handleSecurity), own...)
	e.POST("/account/password", d.h(d.handleChangePasswordForm), post...)
	e.POST("/account/verify-email", d.h(d.handleResendVerificationForm), post...)

	e.GET("/forgot-password", d.h(d.handleForgotPage))
	e.POST("/forgot-password", d.h(d.handleForgot), d.csrf)
	e.GET(resetPasswordPath, d.h(d.handleResetPage))
	e.POST(resetPasswordPath, d.h(d.handleReset), d.csrf)
	e.GET(verifyEmailPath, d.h(d.handleVerifyPage))
	e.POST(verifyEmailPath, d.h(d.handleVerify), d.csrf)

	e.POST("/account/2fa", d.h(d.handleStartTOTPForm), post...)
	e.GET("/account/2fa/qr", d.h(d.handleTOTPQR), own...)
	e.POST("/account/2fa/confirm", d.h(d.handleConfirmTOTPForm), post...)
	e.POST("/account/2fa/disable", d.h(d.handleDisableTOTPForm), post...)
	e.GET("/login/code", d.h(d.handleLoginCodePage))
	e.POST("/login/code", d.h(d.handleLoginCode), d.csrf)
}

// securityBody is the data of the account security page.
type securityBody struct {
	Owner api.Owner
	// MailEnabled says whether the server sends mail at all.
	MailEnabled bool
	// Pending holds the secret of an enrolment awaiting its code ("" when
	// none); the page shows it with its QR code.
	Pending string
	// RecoveryCodes are shown once, right after the confirmation.
	RecoveryCodes []string
	// RecoveryLeft counts the unused recovery codes.
	RecoveryLeft int64
	// MustEnrol is true for an operator the server holds back until a
	// second factor is on.
	MustEnrol bool
}

func (d *dashboard) securityPage(c echo.Context, status int, p *page) error {
	return d.securityPageWith(c, status, p, nil)
}

func (d *dashboard) securityPageWith(c echo.Context, status int, p *page, codes []string) error {
	ctx := c.Request().Context()
	o := currentOwner(c)
	v, err := d.s.ownerView(ctx, o)
	if err != nil {
		return err
	}
	b := securityBody{Owner: v, MailEnabled: d.s.mail.enabled(), RecoveryCodes: codes}
	if v.TwoFactor {
		if b.RecoveryLeft, err = d.s.store.CountRecoveryCodes(ctx, o.ID); err != nil {
			return err
		}
	} else {
		switch secret, err := d.s.pendingTOTP(ctx, o); {
		case err == nil:
			b.Pending = secret
		case err != errTOTPNotFound:
			return err
		}
		if b.MustEnrol, err = d.s.needsEnrolment(ctx, o); err != nil {
			return err
		}
	}
	p.Body = b
	return d.render(c, status, "security.html", p)
}

func (d *dashboard) handleSecurity(c echo.Context) error {
	return d.securityPage(c, http.StatusOK, d.newPage(c, "Sign-in and security", "account"))
}

// handleChangePasswordForm changes the password like PUT /api/v1/me/password;
// this browser stays signed in with a new session, every other one ends.
func (d *dashboard) handleChangePasswordForm(c echo.Context) error {
	cur, next := c.FormValue("current_password"), c.FormValue("new_password")
	limitForm(c)
	o, err := d.s.changePassword(c, currentOwner(c), cur, next)
	if err != nil {
		p := d.newPage(c, "Sign-in and security", "account")
		status, err := p.setError("password", err, "current_password", "new_password")
		if err != nil {
			return err
		}
		return d.securityPage(c, status, p)
	}
	if err := d.startSession(c, o); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/account/security", "password-changed"))
}

// handleResendVerificationForm mails a new verification link.
func (d *dashboard) handleResendVerificationForm(c echo.Context) error {
	o := currentOwner(c)
	if !d.s.mail.enabled() {
		return errMailUnavailable
	}
	if o.EmailVerified {
		return redirect(c, "/account/security")
	}
	if err := checkRate(c, d.s.mailOwner, "owner:"+o.ID); err != nil {
		return err
	}
	if !d.s.mail.enqueue(mailJob{kind: mailVerify, ownerID: o.ID}) {
		return errMailBusy
	}
	return redirect(c, pathWithDone("/account/security", "verification-sent"))
}

// linkBody is the data of the pages mailed links open.
type linkBody struct {
	Token string
	Email string
	// Sent is true once a reset request was accepted.
	Sent bool
	// MailEnabled is false on a server that sends no mail.
	MailEnabled bool
}

func (d *dashboard) handleForgotPage(c echo.Context) error {
	p := d.newPage(c, "Reset your password", "login")
	p.Body = linkBody{MailEnabled: d.s.mail.enabled()}
	return d.render(c, http.StatusOK, "forgot_password.html", p)
}

// handleForgot requests a reset like POST /api/v1/auth/password-reset: the
// same page follows for every address.
func (d *dashboard) handleForgot(c echo.Context) error {
	email := formValue(c, "email")
	p := d.newPage(c, "Reset your password", "login")
	if err := d.s.requestReset(c, email); err != nil {
		p.Body = linkBody{Email: email, MailEnabled: d.s.mail.enabled()}
		status, err := p.setError("forgot", err, "email")
		if err != nil {
			return err
		}
		return d.render(c, status, "forgot_password.html", p)
	}
	p.Body = linkBody{Sent: true, MailEnabled: true}
	return d.render(c, http.StatusOK, "forgot_password.html", p)
}

// handleResetPage shows the new-password form of a mailed link. The token
// is spent only by the form's POST, so a mail scanner that opens the link
// spends nothing.
func (d *dashboard) handleResetPage(c echo.Context) error {
	p := d.newPage(c, "Choose a new password", "login")
	p.Body = linkBody{Token: c.QueryParam("token")}
	return d.render(c, http.StatusOK, "reset_password.html", p)
}

// handleReset sets the new password like POST
// /api/v1/auth/password-reset/confirm; every session ends, this browser's
// too, and the owner signs in again.
func (d *dashboard) handleReset(c echo.Context) error {
	token, password := formValue(c, "token"), c.FormValue("new_password")
	if _, err := d.s.confirmReset(c, token, password); err != nil {
		p := d.newPage(c, "Choose a new password", "login")
		p.Body = linkBody{Token: token}
		status, err := p.setError("reset", err, "new_password")
		if err != nil {
			return err
		}
		return d.render(c, status, "reset_password.html", p)
	}
	c.SetCookie(clearCookie(d.s.secureCookies(c)))
	return redirect(c, pathWithDone("/login", "password-reset"))
}

// handleVerifyPage shows the confirmation button of a mailed verification
// link (a GET spends nothing; see handleResetPage).
func (d *dashboard) handleVerifyPage(c echo.Context) error {
	p := d.newPage(c, "Confirm your email address", "")
	p.Body = linkBody{Token: c.QueryParam("token")}
	return d.render(c, http.StatusOK, "verify_email.html", p)
}

// handleVerify spends the link like POST /api/v1/auth/verify-email.
func (d *dashboard) handleVerify(c echo.Context) error {
	token := formValue(c, "token")
	if _, err := d.s.verifyEmail(c, token); err != nil {
		p := d.newPage(c, "Confirm your email address", "")
		p.Body = linkBody{Token: token}
		status, err := p.setError("verify", err)
		if err != nil {
			return err
		}
		return d.render(c, status, "verify_email.html", p)
	}
	if _, _, ok := d.session(c); ok {
		return redirect(c, pathWithDone("/apps", "email-verified"))
	}
	return redirect(c, pathWithDone("/login", "email-verified"))
}

// unverifiedOwner reports whether the page's owner is held back until
// their email is verified (for the layout's banner).
func (d *dashboard) unverifiedOwner(o store.Owner) bool { return d.s.unverified(o) }

// handleStartTOTPForm starts an enrolment like POST /api/v1/me/2fa; the
// security page then shows the secret, its QR code and the code field.
func (d *dashboard) handleStartTOTPForm(c echo.Context) error {
	if _, err := d.s.startTOTP(c.Request().Context(), currentOwner(c)); err != nil {
		return err
	}
	return redirect(c, "/account/security#two-factor")
}

// handleTOTPQR is the QR code (PNG) of the pending enrolment's otpauth://
// URL, for the authenticator app's camera.
func (d *dashboard) handleTOTPQR(c echo.Context) error {
	o := currentOwner(c)
	secret, err := d.s.pendingTOTP(c.Request().Context(), o)
	if err != nil {
		return err
	}
	u, err := otpauthURL(o.Email, secret)
	if err != nil {
		return err
	}
	img, err := qrPNG(u)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.Blob(http.StatusOK, "image/png", img)
}

// handleConfirmTOTPForm confirms the enrolment like POST
// /api/v1/me/2fa/confirm and shows the recovery codes, once: they are
// this POST's answer, not a redirect's.
func (d *dashboard) handleConfirmTOTPForm(c echo.Context) error {
	codes, err := d.s.confirmTOTP(c, currentOwner(c), formValue(c, "code"))
	p := d.newPage(c, "Sign-in and security", "account")
	if err != nil {
		status, err := p.setError("totp", err, "code")
		if err != nil {
			return err
		}
		return d.securityPage(c, status, p)
	}
	p.Flash = "Two-factor authentication is on. Keep the recovery codes below somewhere safe: they are shown only now."
	return d.securityPageWith(c, http.StatusOK, p, codes)
}

// handleDisableTOTPForm turns the second factor off like DELETE
// /api/v1/me/2fa.
func (d *dashboard) handleDisableTOTPForm(c echo.Context) error {
	password := c.FormValue("password")
	if err := d.s.disableTOTP(c, currentOwner(c), password, formValue(c, "code")); err != nil {
		p := d.newPage(c, "Sign-in and security", "account")
		status, err := p.setError("disable", err, "password", "code")
		if err != nil {
			return err
		}
		return d.securityPage(c, status, p)
	}
	return redirect(c, pathWithDone("/account/security", "two-factor-off"))
}

// pendingCookie carries the dashboard's sign-in between the password (or
// single sign-on) and the second factor: a signed token with a purpose
// that no session check accepts, for five minutes, sent to /login only.
const pendingCookie = "traceless_pending"

// beginSecondFactor sends o, whose first sign-in step is done, to the code
// step: it sets the pending cookie and shows the code form.
func (d *dashboard) beginSecondFactor(c echo.Context, o store.Owner, next string) error {
	if err := d.s.setPendingCookie(c, o); err != nil {
		return err
	}
	p := d.newPage(c, "Two-factor authentication", "login")
	p.Body = authBody{Next: next}
	return d.render(c, http.StatusOK, "login_code.html", p)
}

// setPendingCookie gives the browser the pending cookie of o's sign-in.
func (s *Server) setPendingCookie(c echo.Context, o store.Owner) error {
	tok, exp, err := s.sessions.issuePending(o.ID, o.TokenEpoch)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: pendingCookie, Value: tok, Path: "/login", Expires: exp, MaxAge: int(pendingTTL.Seconds()),
		HttpOnly: true, Secure: s.secureCookies(c), SameSite: http.SameSiteStrictMode})
	return nil
}

// handleLoginCodePage shows the code step to a browser with a pending
// sign-in (after single sign-on, which arrives here from the provider).
func (d *dashboard) handleLoginCodePage(c echo.Context) error {
	if _, err := d.pendingOwner(c); err != nil {
		return redirect(c, pathWithDone("/login", "code-expired"))
	}
	p := d.newPage(c, "Two-factor authentication", "login")
	p.Body = authBody{Next: safeNext(c.QueryParam("next"))}
	return d.render(c, http.StatusOK, "login_code.html", p)
}

// handleLoginCode is the second sign-in step: the pending cookie names the
// account, the code proves the second factor, under the same rate limits
// as the password.
func (d *dashboard) handleLoginCode(c echo.Context) error {
	next := safeNext(formValue(c, "next"))
	code := formValue(c, "code")
	o, err := d.pendingOwner(c)
	if err != nil {
		return redirect(c, pathWithDone("/login", "code-expired"))
	}
	if err := d.checkLoginCode(c, o, code); err != nil {
		p := d.newPage(c, "Two-factor authentication", "login")
		p.Body = authBody{Next: next}
		status, err := p.setError("code", err, "code")
		if err != nil {
			return err
		}
		return d.render(c, status, "login_code.html", p)
	}
	c.SetCookie(&http.Cookie{Name: pendingCookie, Value: "", Path: "/login", MaxAge: -1, HttpOnly: true,
		Secure: d.s.secureCookies(c), SameSite: http.SameSiteStrictMode})
	if err := d.startSession(c, o); err != nil {
		return err
	}
	if next == "" {
		next = landing(o)
	}
	return redirect(c, next)
}

// checkLoginCode checks the second step's code under the login limits.
func (d *dashboard) checkLoginCode(c echo.Context, o store.Owner, code string) error {
	if err := d.s.checkCodeRate(c, o); err != nil {
		return err
	}
	if code == "" {
		return badRequest("code", "is required")
	}
	return d.s.checkSecondFactor(c.Request().Context(), o, code)
}

// pendingOwner returns the account the pending cookie names, while its
// token is valid and the account's epoch and status have not changed.
func (d *dashboard) pendingOwner(c echo.Context) (store.Owner, error) {
	ck, err := c.Cookie(pendingCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 4096 {
		return store.Owner{}, errUnauthorized
	}
	claims, err := d.s.sessions.verifyPending(ck.Value)
	if err != nil {
		return store.Owner{}, errUnauthorized
	}
	o, err := d.s.store.GetOwner(c.Request().Context(), claims.Subject)
	if err != nil || o.TokenEpoch != claims.Epoch || o.Status != store.StatusActive {
		return store.Owner{}, errUnauthorized
	}
	return o, nil
}

// enrolmentPages are the dashboard routes an operator who must enable a
// second factor may use.
var enrolmentPages = map[string]bool{
	"GET /account/security":     true,
	"POST /account/2fa":         true,
	"GET /account/2fa/qr":       true,
	"POST /account/2fa/confirm": true,
	"POST /logout":              true,
}
