package controlplane

// The dashboard: server-rendered pages for app owners and operators. Pages
// call the store and the Server's own methods directly, with the same
// validation and error table as the JSON API; only the rendering differs.
//
// Conventions:
//   - Pages sign in with the HttpOnly, SameSite=Strict session cookie
//     (never a bearer token). Anonymous visitors of a signed-in page are
//     redirected to /login (303); operators' pages answer 403 to owners.
//   - Every POST carries a CSRF token (dashboard_session.go) and answers
//     with a redirect (POST-redirect-GET), except where a secret is shown
//     once (a new API key, registration ticket, enrollment token or
//     webhook secret): that page is the POST's answer, because the secret
//     is not shown again and cannot be after a redirect. Responses are
//     Cache-Control: no-store.
//   - Whatever the API offers an owner or an operator, a page or form
//     offers too (TestDashboardParity).
//   - Errors are pages, not JSON: a failed form is shown again with the
//     message next to its field; anything else gets an error page.
//   - No inline script or style (the CSP forbids both); /static/app.js only
//     adds the copy buttons.

import (
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
	"github.com/traceless-vpn/traceless/web"
)

// dashboard holds the parsed page templates.
type dashboard struct {
	s *Server
	// pages maps a page's file name to its template set (layout + page).
	pages map[string]*template.Template
	err   error // a template parse error, reported on every page
}

// dashboardRoutes registers the server-rendered dashboard's pages.
func (s *Server) dashboardRoutes(e *echo.Echo) {
	d := &dashboard{s: s}
	d.pages, d.err = parsePages(s.opts.WebFS)
	s.dash = d
	if d.err != nil {
		s.log.Error("dashboard templates", logError, d.err.Error())
	}

	e.GET("/", d.handleRoot)
	e.GET("/login", d.h(d.handleLoginPage))
	e.POST("/login", d.h(d.handleLogin), d.csrf)
	e.GET("/signup", d.h(d.handleSignupPage))
	e.POST("/signup", d.h(d.handleSignup), d.csrf)
	e.GET("/privacy", d.h(d.handlePrivacyPage))
	e.GET("/api/docs", d.h(d.handleAPIDocs))
	d.ssoDashboardRoutes(e)

	own := []echo.MiddlewareFunc{d.requireSession}
	post := []echo.MiddlewareFunc{d.requireSession, d.csrf}
	e.POST("/logout", d.h(d.handleLogout), post...)
	e.GET("/apps", d.h(d.handleApps), own...)
	e.POST("/apps", d.h(d.handleCreateApp), post...)
	e.GET("/apps/:app_id", d.h(d.handleApp), own...)
	e.POST("/apps/:app_id/rename", d.h(d.handleRenameApp), post...)
	e.GET("/apps/:app_id/delete", d.h(d.handleDeleteAppPage), own...)
	e.POST("/apps/:app_id/delete", d.h(d.handleDeleteApp), post...)
	e.POST("/apps/:app_id/keys", d.h(d.handleCreateKey), post...)
	e.GET("/apps/:app_id/keys/:key_id/revoke", d.h(d.handleRevokeKeyPage), own...)
	e.POST("/apps/:app_id/keys/:key_id/revoke", d.h(d.handleRevokeKey), post...)
	e.GET("/apps/:app_id/keys/:key_id/replace", d.h(d.handleReplaceKeyPage), own...)
	e.POST("/apps/:app_id/keys/:key_id/replace", d.h(d.handleReplaceKey), post...)
	e.POST("/apps/:app_id/tickets", d.h(d.handleCreateTicket), post...)
	e.POST("/apps/:app_id/registration-cap", d.h(d.handleSetRegistrationCap), post...)
	e.GET("/apps/:app_id/devices", d.h(d.handleDevices), own...)
	e.GET("/apps/:app_id/devices/:device_id", d.h(d.handleDevice), own...)
	e.GET("/apps/:app_id/devices/:device_id/config", d.h(d.handleDeviceConfigDownload), own...)
	e.GET("/apps/:app_id/devices/:device_id/delete", d.h(d.handleDeleteDevicePage), own...)
	e.POST("/apps/:app_id/devices/:device_id/delete", d.h(d.handleDeleteDevice), post...)
	e.POST("/apps/:app_id/rotation", d.h(d.handleSetRotation), post...)
	e.GET("/servers", d.h(d.handleServers), own...)
	e.GET("/pools", d.h(d.handleOwnPools), own...)
	e.POST("/pools", d.h(d.handleCreateOwnPool), post...)
	e.GET("/pools/:pool_id/delete", d.h(d.handleDeleteOwnPoolPage), own...)
	e.POST("/pools/:pool_id/delete", d.h(d.handleDeleteOwnPool), post...)
	e.POST("/pools/:pool_id/enrollment-tokens", d.h(d.handleOwnEnrollmentToken), post...)
	e.GET("/nodes/:node_id/delete", d.h(d.handleDeleteOwnNodePage), own...)
	e.POST("/nodes/:node_id/delete", d.h(d.handleDeleteOwnNode), post...)
	e.GET("/alerts", d.h(d.handleAlerts), own...)
	e.POST("/alerts", d.h(d.handleSaveAlerts), post...)
	e.POST("/alerts/secret", d.h(d.handleRotateAlertSecret), post...)
	e.POST("/alerts/test", d.h(d.handleAlertTestForm), post...)
	e.GET("/alerts/history", d.h(d.handleAlertHistory), own...)
	e.GET("/alerts/history/delete", d.h(d.handleDeleteAlertHistoryPage), own...)
	e.POST("/alerts/history/delete", d.h(d.handleDeleteAlertHistoryForm), post...)
	e.GET("/plan", d.h(d.handlePlan), own...)
	e.POST("/plan", d.h(d.handleChoosePlan), post...)
	e.POST("/plan/checkout", d.h(d.handleCheckoutForm), post...)
	e.POST("/plan/portal", d.h(d.handlePortalForm), post...)
	e.GET("/account", d.h(d.handleAccount), own...)
	e.GET("/policy", d.h(d.handlePolicyPage), own...)
	e.POST("/policy", d.h(d.handleAcceptPolicy), post...)
	e.GET("/account/export", d.h(d.handleExport), own...)
	e.GET("/account/delete", d.h(d.handleDeleteAccountPage), own...)
	d.securityRoutes(e, own, post)
	e.POST("/account/delete", d.h(d.handleDeleteAccount), post...)

	adm := []echo.MiddlewareFunc{d.requireSession, d.requireAdmin}
	admPost := []echo.MiddlewareFunc{d.requireSession, d.requireAdmin, d.csrf}
	e.GET("/admin", d.h(d.handleAdminOverview), adm...)
	e.GET("/admin/plans", d.h(d.handleAdminPlans), adm...)
	e.POST("/admin/plans", d.h(d.handleAdminCreatePlan), admPost...)
	e.GET("/admin/plans/:plan_id", d.h(d.handleAdminPlan), adm...)
	e.POST("/admin/plans/:plan_id", d.h(d.handleAdminUpdatePlan), admPost...)
	e.POST("/admin/plans/:plan_id/retire", d.h(d.handleAdminRetirePlan), admPost...)
	e.GET("/admin/plans/:plan_id/delete", d.h(d.handleAdminDeletePlanPage), adm...)
	e.POST("/admin/plans/:plan_id/delete", d.h(d.handleAdminDeletePlan), admPost...)
	e.GET("/admin/pools", d.h(d.handleAdminPools), adm...)
	e.POST("/admin/pools", d.h(d.handleAdminCreatePool), admPost...)
	e.POST("/admin/pools/:pool_id/enrollment-tokens", d.h(d.handleAdminEnrollmentToken), admPost...)
	e.GET("/admin/pools/:pool_id/delete", d.h(d.handleAdminDeletePoolPage), adm...)
	e.POST("/admin/pools/:pool_id/delete", d.h(d.handleAdminDeletePool), admPost...)
	e.GET("/admin/nodes", d.h(d.handleAdminNodes), adm...)
	e.POST("/admin/nodes/:node_id/enabled", d.h(d.handleAdminNodeEnabled), admPost...)
	e.GET("/admin/nodes/:node_id/delete", d.h(d.handleAdminDeleteNodePage), adm...)
	e.POST("/admin/nodes/:node_id/delete", d.h(d.handleAdminDeleteNode), admPost...)
	e.GET("/admin/owners", d.h(d.handleAdminOwners), adm...)
	e.GET("/admin/owners/:owner_id", d.h(d.handleAdminOwner), adm...)
	e.POST("/admin/owners/:owner_id", d.h(d.handleAdminUpdateOwner), admPost...)
	e.POST("/admin/owners/:owner_id/legal-hold", d.h(d.handleAdminLegalHold), admPost...)
	e.POST("/admin/owners/:owner_id/comp", d.h(d.handleAdminCompForm), admPost...)
	e.POST("/admin/owners/:owner_id/comp/end", d.h(d.handleAdminEndCompForm), admPost...)
	e.GET("/admin/owners/:owner_id/delete", d.h(d.handleAdminDeleteOwnerPage), adm...)
	e.POST("/admin/owners/:owner_id/delete", d.h(d.handleAdminDeleteOwner), admPost...)
}

// parsePages parses every page template with the shared layout.
func parsePages(fsys fs.FS) (map[string]*template.Template, error) {
	if fsys == nil {
		fsys = web.FS()
	}
	sub, err := fs.Sub(fsys, "templates")
	if err != nil {
		return nil, err
	}
	base, err := template.New("").Funcs(templateFuncs).ParseFS(sub, "layout.html", "partials.html")
	if err != nil {
		return nil, fmt.Errorf("parse layout: %w", err)
	}
	names, err := fs.Glob(sub, "*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		if name == "layout.html" || name == "partials.html" || name == "setup.html" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(sub, name)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what every page template gets.
type page struct {
	Title string
	// Nav names the current section for the navigation bar.
	Nav string
	// Me is the signed-in account, nil for anonymous visitors.
	Me *pageUser
	// CSRF is the token every form carries.
	CSRF string
	// Flash is a confirmation shown at the top (from a fixed list, never
	// request text).
	Flash string
	// Errors holds form errors keyed "form.field"; "form." is a message
	// for the whole form.
	Errors map[string]string
	// Focus is the ID of the field with the first error.
	Focus string
	// Body is the page's own data.
	Body any
	// Policy, for a signed-in owner, is the privacy policy version still
	// to review (the current one not accepted, or an announced one).
	Policy *policyNotice
}

// pageUser is the signed-in account as the layout shows it.
type pageUser struct {
	ID, Email string
	Admin     bool
	// Unverified is true while the owner must still verify their email.
	Unverified bool
}

// flashes are the confirmations a redirect may ask a page to show.
var flashes = map[string]string{
	"app-created":     "App created. Create an API key for it below.",
	"app-renamed":     "App renamed.",
	"rotation-saved":  "Rotation policy saved. Devices read it the next time they ask (GET /api/v1/app).",
	"cap-saved":       "Registration cap saved. It applies to registrations with publishable keys from now on.",
	"device-deleted":  "Device deleted. It is being removed from every server.",
	"app-deleted":     "App deleted, with its keys and devices. The devices are being removed from every server.",
	"key-revoked":     "API key revoked. Requests with it are refused from now on.",
	"plan-changed":    "Your plan was changed.",
	"policy-accepted": "Thank you: you accepted the privacy policy.",
	"welcome":         "Welcome! Your account is ready. Choose a plan to start with — you can change it at any time.",
	"signed-out":      "You are signed out.",
	// Sign-in security.
	"password-changed":  "Password changed. Every other session of your account is signed out.",
	"verification-sent": "A new link is on its way to your email address. The previous one no longer works.",
	"password-reset":    "Your password is reset and every session was signed out. Sign in with the new password.",
	"email-verified":    "Thank you: your email address is verified.",
	"two-factor-off":    "Two-factor authentication is off. Your recovery codes no longer work.",
	"enrol-required":    "This server requires operators to use two-factor authentication. Turn it on below to continue.",
	"code-expired":      "The sign-in took too long. Sign in again.",
	"deleted":           "Your account was deleted, with all its apps, API keys and devices. Nothing about it remains on this server.",
	"plan-created":      "Plan created.",
	"plan-saved":        "Plan saved.",
	"plan-retired":      "Plan retired: new owners cannot choose it; owners on it keep it.",
	"plan-restored":     "Plan available again in the catalogue.",
	"pool-created":      "Pool created. Create an enrollment token to add a node to it.",
	"pool-created-no-plan": "Pool created, in no plan: its nodes serve nobody until a plan includes it. " +
		"Tick the pool on a plan's page (Plans) to include it.",
	"owner-saved":   "Account saved.",
	"hold-set":      "Legal hold set: this account cannot be deleted until the hold is released.",
	"comp-set":      "Plan given without charge.",
	"comp-ended":    "The plan is no longer given without charge.",
	"hold-released": "Legal hold released.",
	// Own servers, alerts and the operators' removals.
	"own-pool-created":  "Pool created. Add your servers to it with an enrollment token.",
	"own-pool-deleted":  "Pool deleted, with its nodes.",
	"own-node-deleted":  "Node removed. Its credential no longer works.",
	"alerts-saved":      "Alert settings saved.",
	"secret-rotated":    "Webhook secret replaced. Deliveries are signed with the new one from now on.",
	"alert-test-queued": "Test event queued. Its delivery shows below.",
	"alert-test-none":   "No channel is set up, so no test event was sent.",
	"history-deleted":   "Monitoring history deleted.",
	"node-enabled":      "Node enabled. Clients are offered it again.",
	"node-disabled":     "Node disabled. Clients are no longer offered it, and it gets an empty peer set.",
	"node-removed":      "Node removed. Its credential no longer works.",
	"pool-deleted":      "Pool deleted, with its nodes.",
	"plan-deleted":      "Plan deleted.",
	"owner-deleted":     "Account deleted, with all its apps, API keys and devices.",
	"sso-unlinked":      "Sign-in provider unlinked: it no longer signs in to this account.",
}

// newPage starts a page for the request: the signed-in account (if any),
// the form token and the confirmation asked for by ?done=.
func (d *dashboard) newPage(c echo.Context, title, nav string) *page {
	p := &page{Title: title, Nav: nav, Errors: map[string]string{}, CSRF: d.s.csrfToken(d.formBinding(c))}
	if o, ok := c.Get(ctxOwner).(store.Owner); ok {
		p.Me = &pageUser{ID: o.ID, Email: o.Email, Admin: o.Role == store.RoleAdmin, Unverified: d.unverifiedOwner(o)}
		p.Policy = d.s.policyNoticeFor(c.Request().Context(), o)
	}
	p.Flash = flashes[c.QueryParam("done")]
	return p
}

// setError records err against a form field: a 4xx API error whose field
// the form has (fields maps API field names to form field names; a name
// mapping to itself may be listed as "name") goes next to that field, any
// other 4xx above the form. It returns the status to answer with, or the
// error itself when it is internal.
func (p *page) setError(form string, err error, fields ...string) (int, error) {
	ae, internal := toAPIError(err)
	if internal {
		return 0, err
	}
	msg := readable(ae)
	for _, f := range fields {
		apiName, formName, ok := strings.Cut(f, "=")
		if !ok {
			formName = apiName
		}
		if ae.Field != "" && ae.Field == apiName {
			p.Errors[form+"."+formName] = fieldMessage(formName, msg)
			p.Focus = form + "-" + formName
			return ae.Status, nil
		}
	}
	p.Errors[form+"."] = sentence(msg)
	return ae.Status, nil
}

// sentence capitalises the first letter of an ASCII message.
func sentence(msg string) string {
	if msg != "" && msg[0] >= 'a' && msg[0] <= 'z' {
		return string(msg[0]-'a'+'A') + msg[1:]
	}
	return msg
}

// fieldMessage turns the API's "is required" style message, which follows
// the field's name, into a sentence.
func fieldMessage(field, msg string) string {
	if strings.HasPrefix(msg, "is ") || strings.HasPrefix(msg, "must ") {
		name := strings.ReplaceAll(field, "_", " ")
		return sentence(name) + " " + msg + "."
	}
	return sentence(msg)
}

// readable is the message a person sees for an API error.
func readable(ae *api.Error) string {
	switch ae.Code {
	case api.CodePlanLimit:
		if ae.Message == "the plan's limit is reached" {
			return "Your plan's limit is reached. Choose a larger plan on the Plan page, or remove something first."
		}
	case api.CodePaymentRequired:
		if ae.Message == paymentRequiredMessage {
			return "Your payment is overdue, so new apps, devices and servers are held to the free plan's limits until it is paid. " +
				"Update your card on the Plan page (Manage billing on Stripe); what is registered keeps working."
		}
	case api.CodeRateLimited:
		return "Too many attempts in a short time. Wait a minute, then try again."
	case api.CodeNotFound:
		return "We could not find that. It may have been deleted, or it belongs to another account."
	case api.CodeConflict:
		if ae.Message == "conflicts with an existing resource" {
			return "Something with this name already exists. Choose another name."
		}
	case api.CodeUnauthorized:
		if ae.Message == errUnauthorized.Message {
			return "Please sign in again."
		}
	}
	return ae.Message
}

// render writes a page template with a status.
func (d *dashboard) render(c echo.Context, status int, name string, p *page) error {
	if d.err != nil {
		return d.err
	}
	t := d.pages[name]
	if t == nil {
		return fmt.Errorf("no page template %s", name)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "page", p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return c.HTMLBlob(status, []byte(b.String()))
}

// h adapts a page handler: an error it returns becomes an error page.
func (d *dashboard) h(fn echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := fn(c)
		if err == nil || c.Response().Committed {
			return err
		}
		return d.fail(c, err)
	}
}

// errorBody is the error page's data.
type errorBody struct {
	Status  int
	Heading string
	Message string
}

// fail renders the error page for err; internal errors are logged (route
// pattern and error only) and shown as a generic message.
func (d *dashboard) fail(c echo.Context, err error) error {
	ae, internal := toAPIError(err)
	if internal {
		d.s.log.LogAttrs(c.Request().Context(), slog.LevelError, "internal error",
			slog.String(logRoute, routeOf(c)), slog.String(logError, err.Error()))
	}
	return d.errorPage(c, ae.Status, readable(ae))
}

// errorPage renders a message with a status. When even that fails, a plain
// text answer is sent.
func (d *dashboard) errorPage(c echo.Context, status int, msg string) error {
	heading := map[int]string{
		http.StatusBadRequest:      "That did not work",
		http.StatusForbidden:       "Not allowed",
		http.StatusNotFound:        "Not found",
		http.StatusConflict:        "That did not work",
		http.StatusTooManyRequests: "Slow down",
	}[status]
	if heading == "" {
		heading = "Something went wrong"
	}
	if status >= 500 {
		msg = "Something went wrong on our side. Please try again in a moment."
	}
	p := d.newPage(c, heading, "")
	p.Body = errorBody{Status: status, Heading: heading, Message: msg}
	if err := d.render(c, status, "error.html", p); err != nil {
		d.s.log.Error("render error page", logError, err.Error())
		return c.String(status, heading+": "+msg)
	}
	return nil
}

// redirect answers with 303 See Other, the PRG redirect.
func redirect(c echo.Context, path string) error {
	return c.Redirect(http.StatusSeeOther, path)
}

// pathWithDone appends ?done=flash to a path.
func pathWithDone(path, flash string) string {
	return path + "?done=" + url.QueryEscape(flash)
}

// formValue reads a form field, trimmed, with the body limited.
func formValue(c echo.Context, name string) string {
	limitForm(c)
	return strings.TrimSpace(c.FormValue(name))
}

// limitForm bounds the form body once per request.
func limitForm(c echo.Context) {
	if c.Get("traceless.formlimit") == nil {
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes)
		c.Set("traceless.formlimit", true)
	}
}

// handleRoot sends visitors to their landing page (operators to the
// overview, owners to their apps), or to the sign-in page.
func (d *dashboard) handleRoot(c echo.Context) error {
	if o, _, ok := d.session(c); ok {
		return redirect(c, landing(o))
	}
	return redirect(c, "/login")
}
