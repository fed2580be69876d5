package controlplane

// The dashboard's single sign-on: the providers' buttons on the sign-in
// and sign-up pages, the page that finishes a provider sign-in linked to
// no account (a new account, or a link to an existing one with its
// password), and the linked providers on the account page.

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// ssoButton is a provider's button.
type ssoButton struct {
	Label string
	URL   string
}

// ssoButtons are the configured providers' buttons; a sign-in through one
// continues to next.
func (d *dashboard) ssoButtons(next string) []ssoButton {
	var out []ssoButton
	for _, p := range d.s.oidc.list {
		u := oidcFlowPath + p.cfg.Name + "/start"
		if next = safeNext(next); next != "" {
			u += "?next=" + url.QueryEscape(next)
		}
		out = append(out, ssoButton{Label: p.cfg.Label, URL: u})
	}
	return out
}

// ssoBody is the page finishing a provider sign-in.
type ssoBody struct {
	Provider string // the provider's label
	Email    string // the provider's email, or what was typed
	// Exists: an account has the provider's email, so only a link can
	// follow.
	Exists bool
	// LinkEmail is what the link form's email holds; SignupEmail the
	// signup form's (not an existing account's email).
	LinkEmail, SignupEmail string
	// SignedInAs is the account signed in in this browser, if any.
	SignedInAs string
}

func (d *dashboard) ssoPage(c echo.Context, status int, p *page, pend oidcPending, email, linkEmail string) error {
	b := ssoBody{Provider: d.s.oidc.byName[pend.Provider].cfg.Label, Email: email, LinkEmail: linkEmail}
	if o, _, ok := d.session(c); ok {
		b.SignedInAs = o.Email
		if b.LinkEmail == "" {
			b.LinkEmail = o.Email
		}
	}
	if pend.Email != "" {
		_, err := d.s.store.GetOwnerByEmail(c.Request().Context(), pend.Email)
		b.Exists = err == nil
		if b.Exists && b.LinkEmail == "" {
			b.LinkEmail = pend.Email
		}
	}
	if !b.Exists || email != pend.Email {
		b.SignupEmail = email
	}
	p.Body = b
	return d.render(c, status, "sso.html", p)
}

// handleSSOPage offers what can follow a provider sign-in linked to no
// account. Without one waiting, it sends the visitor to the sign-in page.
func (d *dashboard) handleSSOPage(c echo.Context) error {
	pend, err := d.s.pending(c)
	if err != nil {
		return redirect(c, "/login")
	}
	return d.ssoPage(c, http.StatusOK, d.newPage(c, "Finish signing in", "login"), pend, pend.Email, "")
}

// handleSSOSignup creates an account for the waiting sign-in, like POST
// /api/v1/auth/oidc/signup.
func (d *dashboard) handleSSOSignup(c echo.Context) error {
	pend, err := d.s.pending(c)
	if err != nil {
		return d.errorPage(c, http.StatusBadRequest, "No single sign-on is waiting in this browser. Sign in with the provider again.")
	}
	email := formValue(c, "email")
	o, err := d.s.ssoSignup(c, pend, email)
	if err != nil {
		p := d.newPage(c, "Finish signing in", "login")
		status, err := p.setError("ssosignup", err, "email")
		if err != nil {
			return err
		}
		return d.ssoPage(c, status, p, pend, email, "")
	}
	d.s.dropCookie(c, oidcPendingCookie, "/", http.SameSiteStrictMode)
	if err := d.startSession(c, o); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/plan", "welcome"))
}

// handleSSOLink links the waiting sign-in to an account with its email and
// password, like POST /api/v1/auth/oidc/link.
func (d *dashboard) handleSSOLink(c echo.Context) error {
	pend, err := d.s.pending(c)
	if err != nil {
		return d.errorPage(c, http.StatusBadRequest, "No single sign-on is waiting in this browser. Sign in with the provider again.")
	}
	email, password := formValue(c, "email"), c.FormValue("password")
	var o = currentOwner(c)
	if email == "" {
		err = badRequest("email", "is required")
	} else if password == "" {
		err = badRequest("password", "is required")
	} else {
		o, err = d.s.ssoLink(c, pend, email, password)
	}
	if err != nil {
		if err == errBadLogin {
			err = errBadLoginForm
		}
		p := d.newPage(c, "Finish signing in", "login")
		status, err := p.setError("ssolink", err, "email", "password")
		if err != nil {
			return err
		}
		return d.ssoPage(c, status, p, pend, pend.Email, email)
	}
	d.s.dropCookie(c, oidcPendingCookie, "/", http.SameSiteStrictMode)
	switch err := d.s.secondFactor(c.Request().Context(), o, ""); {
	case err == errSecondFactorRequired:
		return d.beginSecondFactor(c, o, pend.Next)
	case err != nil:
		return err
	}
	if err := d.startSession(c, o); err != nil {
		return err
	}
	next := pend.Next
	if next == "" {
		next = landing(o)
	}
	return redirect(c, next)
}

// accountSSO is the account page's single sign-on section.
type accountSSO struct {
	Identities []api.Identity
	// Buttons link providers not linked yet.
	Buttons []ssoButton
}

// accountSSO returns the account page's single sign-on section, nil when
// no provider is configured and none is linked.
func (d *dashboard) accountSSO(c echo.Context) (*accountSSO, error) {
	o := currentOwner(c)
	ids, err := d.s.identities(c.Request().Context(), o.ID)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 && len(d.s.oidc.list) == 0 {
		return nil, nil
	}
	linked := map[string]bool{}
	for _, i := range ids {
		linked[i.Provider] = true
	}
	sso := &accountSSO{Identities: ids}
	for _, p := range d.s.oidc.list {
		if !linked[p.cfg.Name] {
			sso.Buttons = append(sso.Buttons, ssoButton{Label: p.cfg.Label, URL: oidcFlowPath + p.cfg.Name + "/start?next=%2Faccount"})
		}
	}
	return sso, nil
}

// handleUnlinkIdentityForm unlinks a provider like DELETE
// /api/v1/me/identities/{identity_id}.
func (d *dashboard) handleUnlinkIdentityForm(c echo.Context) error {
	password := c.FormValue("password")
	if password != "" {
		if err := checkRate(c, d.s.loginEmail, "email:"+currentOwner(c).Email); err != nil {
			return err
		}
	}
	if err := d.s.unlinkIdentity(c.Request().Context(), currentOwner(c), c.Param("identity_id"), password); err != nil {
		body, berr := d.accountBody(c)
		if berr != nil {
			return berr
		}
		p := d.newPage(c, "Account", "account")
		status, err := p.setError("unlink", err, "password")
		if err != nil {
			return err
		}
		p.Body = body
		return d.render(c, status, "account.html", p)
	}
	return redirect(c, pathWithDone("/account", "sso-unlinked"))
}

// ssoDashboardRoutes registers the single sign-on pages.
func (d *dashboard) ssoDashboardRoutes(e *echo.Echo) {
	e.GET("/login/sso", d.h(d.handleSSOPage))
	e.POST("/login/sso/signup", d.h(d.handleSSOSignup), d.csrf)
	e.POST("/login/sso/link", d.h(d.handleSSOLink), d.csrf)
	e.POST("/account/sso/:identity_id/unlink", d.h(d.handleUnlinkIdentityForm), d.requireSession, d.csrf)
}
