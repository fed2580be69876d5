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
}

// securityBody is the data of the account security page.
type securityBody struct {
	Owner api.Owner
	// MailEnabled says whether the server sends mail at all.
	MailEnabled bool
}

func (d *dashboard) securityPage(c echo.Context, status int, p *page) error {
	v, err := d.s.ownerView(c.Request().Context(), currentOwner(c))
	if err != nil {
		return err
	}
	p.Body = securityBody{Owner: v, MailEnabled: d.s.mail.enabled()}
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
