package controlplane

import (
	"context"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// authBody is the data of the sign-in and sign-up pages.
type authBody struct {
	Email string
	Next  string
	// SignedInAs is the account already signed in in this browser, if any:
	// the pages offer to continue with it.
	SignedInAs string
	// MailEnabled offers the password reset by mail.
	MailEnabled bool
	// SSO are the single sign-on providers' buttons.
	SSO []ssoButton
}

// signedInAs returns the email of the account signed in, or "".
func (d *dashboard) signedInAs(c echo.Context) string {
	if o, _, ok := d.session(c); ok {
		return o.Email
	}
	return ""
}

func (d *dashboard) handleLoginPage(c echo.Context) error {
	p := d.newPage(c, "Sign in", "login")
	next := safeNext(c.QueryParam("next"))
	p.Body = authBody{Next: next, SignedInAs: d.signedInAs(c), MailEnabled: d.s.mail.enabled(), SSO: d.ssoButtons(next)}
	return d.render(c, http.StatusOK, "login.html", p)
}

// handleLogin signs in like POST /api/v1/auth/login: the same rate limits,
// and the same answer (after one argon2id verification) for an unknown
// email and a wrong password.
func (d *dashboard) handleLogin(c echo.Context) error {
	email, password := formValue(c, "email"), c.FormValue("password")
	next := safeNext(formValue(c, "next"))
	o, err := d.authenticate(c, email, password)
	if err != nil {
		p := d.newPage(c, "Sign in", "login")
		p.Body = authBody{Email: email, Next: next, MailEnabled: d.s.mail.enabled(), SSO: d.ssoButtons(next)}
		status, err := p.setError("login", err, "email", "password")
		if err != nil {
			return err
		}
		return d.render(c, status, "login.html", p)
	}
	switch err := d.s.secondFactor(c.Request().Context(), o, ""); {
	case err == errSecondFactorRequired:
		return d.beginSecondFactor(c, o, next)
	case err != nil:
		return err
	}
	if err := d.startSession(c, o); err != nil {
		return err
	}
	if next == "" {
		next = landing(o)
	}
	return redirect(c, next)
}

// errBadLoginForm is the sign-in page's answer for an unknown email or a
// wrong password; it names no field, so neither is singled out.
var errBadLoginForm = apiError(http.StatusUnauthorized, api.CodeUnauthorized, "Wrong email or password.")

// authenticate checks the sign-in form with the API's authenticate,
// asking for missing fields first and wording refusals for people.
func (d *dashboard) authenticate(c echo.Context, email, password string) (store.Owner, error) {
	if strings.TrimSpace(email) == "" {
		return store.Owner{}, badRequest("email", "is required")
	}
	if password == "" {
		return store.Owner{}, badRequest("password", "is required")
	}
	o, err := d.s.authenticate(c, email, password)
	if err == nil {
		err = d.s.passwordSignInAllowed(o)
	}
	switch err {
	case errBadLogin:
		return store.Owner{}, errBadLoginForm
	case errSuspended:
		return store.Owner{}, apiError(http.StatusForbidden, api.CodeForbidden, "This account is suspended. Contact the operator of this service.")
	case errSSORequired:
		return store.Owner{}, apiError(http.StatusForbidden, api.CodeSSORequired, "Operators of this service sign in with single sign-on: use a button below.")
	}
	return o, err
}

// startSession sets the session cookie for o.
func (d *dashboard) startSession(c echo.Context, o store.Owner) error {
	tok, exp, err := d.s.sessions.issue(o.ID, o.TokenEpoch)
	if err != nil {
		return err
	}
	c.SetCookie(d.s.sessions.cookie(tok, exp, d.s.secureCookies(c)))
	return nil
}

func (d *dashboard) handleSignupPage(c echo.Context) error {
	p := d.newPage(c, "Create an account", "signup")
	p.Body = authBody{SignedInAs: d.signedInAs(c), SSO: d.ssoButtons("")}
	return d.render(c, http.StatusOK, "signup.html", p)
}

// handleSignup creates an owner account like POST /api/v1/auth/signup and
// continues to the plan choice.
func (d *dashboard) handleSignup(c echo.Context) error {
	email, password := formValue(c, "email"), c.FormValue("password")
	o, err := d.signup(c, email, password)
	if err != nil {
		p := d.newPage(c, "Create an account", "signup")
		p.Body = authBody{Email: email, SSO: d.ssoButtons("")}
		status, err := p.setError("signup", err, "email", "password")
		if err != nil {
			return err
		}
		return d.render(c, status, "signup.html", p)
	}
	if err := d.startSession(c, o); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/plan", "welcome"))
}

func (d *dashboard) signup(c echo.Context, email, password string) (store.Owner, error) {
	if err := checkRate(c, d.s.signupIP, clientKey(c)); err != nil {
		return store.Owner{}, err
	}
	o, err := d.s.createAccount(c.Request().Context(), email, password, store.RoleOwner)
	if err != nil {
		return store.Owner{}, err
	}
	_ = d.s.queueVerification(o) // a full queue: the owner asks for a new link later
	return o, nil
}

// handleLogout ends every session of the account, as the API's logout.
func (d *dashboard) handleLogout(c echo.Context) error {
	if err := d.s.store.BumpTokenEpoch(c.Request().Context(), currentOwner(c).ID); err != nil {
		return err
	}
	c.SetCookie(clearCookie(d.s.secureCookies(c)))
	return redirect(c, pathWithDone("/login", "signed-out"))
}

// ownerUsage counts an owner's apps and devices.
func (d *dashboard) ownerUsage(ctx context.Context, ownerID string) (apps []store.App, devices int64, err error) {
	apps, err = d.s.store.ListApps(ctx, ownerID)
	for _, a := range apps {
		devices += a.DeviceCount
	}
	return apps, devices, err
}
