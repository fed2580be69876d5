package controlplane

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/store"
)

// planChoice is one plan on the plan page.
type planChoice struct {
	store.PlanWithPools
	Current bool
	// Fits reports whether the owner's usage is within the plan's limits.
	Fits bool
	// Buy: with Stripe, the plan is bought through checkout. Switch: the
	// owner switches to it themselves (without a provider, or a free plan
	// with Stripe while not subscribed).
	Buy, Switch bool
}

// planBody is the plan page: the catalogue and the owner's usage.
type planBody struct {
	Plans   []planChoice
	Current store.PlanWithPools
	Apps    int
	Devices int64
	// Billing is the owner's billing state; Checkout is "done" or
	// "cancelled" on the return from Stripe Checkout.
	Billing  api.Billing
	Checkout string
	// Subscribed: a live Stripe subscription (changed in the portal).
	Subscribed bool
}

func (d *dashboard) planPage(c echo.Context, status int, p *page) error {
	o := currentOwner(c)
	ctx := c.Request().Context()
	apps, devices, err := d.ownerUsage(ctx, o.ID)
	if err != nil {
		return err
	}
	cur, err := d.s.store.GetPlan(ctx, o.PlanID)
	if err != nil {
		return err
	}
	plans, err := d.s.store.ListPlans(ctx, false)
	if err != nil {
		return err
	}
	bill, err := d.s.billingView(ctx, o)
	if err != nil {
		return err
	}
	body := planBody{Current: cur, Apps: len(apps), Devices: devices, Billing: bill, Subscribed: billing.Live(bill.Status)}
	switch c.QueryParam("checkout") {
	case "done", "cancelled":
		body.Checkout = c.QueryParam("checkout")
	}
	seen := false
	for _, pl := range plans {
		seen = seen || pl.ID == cur.ID
		body.Plans = append(body.Plans, planChoice{PlanWithPools: pl, Current: pl.ID == cur.ID,
			Fits: len(apps) <= pl.MaxApps && devices <= int64(pl.MaxDevices), Buy: slices.Contains(bill.PaidPlans, pl.Slug),
			Switch: bill.Provider == api.BillingNone || (pl.PriceCents == 0 && bill.CompReason == nil && !billing.Live(bill.Status))})
	}
	if !seen { // a retired plan the owner keeps
		body.Plans = append([]planChoice{{PlanWithPools: cur, Current: true, Fits: true}}, body.Plans...)
	}
	p.Body = body
	return d.render(c, status, "plan.html", p)
}

func (d *dashboard) handlePlan(c echo.Context) error {
	return d.planPage(c, http.StatusOK, d.newPage(c, "Plan", "plan"))
}

// handleChoosePlan moves the owner to another plan, like PUT /api/v1/me/plan.
func (d *dashboard) handleChoosePlan(c echo.Context) error {
	slug := formValue(c, "plan")
	var err error = badRequest("plan", "Choose a plan.")
	if slug != "" {
		_, err = d.s.changeOwnPlan(c.Request().Context(), currentOwner(c), slug)
		if err == nil {
			return redirect(c, pathWithDone("/plan", "plan-changed"))
		}
	}
	if errors.Is(err, store.ErrPlanLimit) && !errors.Is(err, store.ErrPaymentRequired) {
		err = apiError(http.StatusForbidden, api.CodePlanLimit,
			"You use more apps or devices than that plan allows. Delete some first, or choose a larger plan.")
	}
	p := d.newPage(c, "Plan", "plan")
	status, err := p.setError("plan", err)
	if err != nil {
		return err
	}
	return d.planPage(c, status, p)
}

// accountBody is the account page.
type accountBody struct {
	Owner   api.Owner
	Plan    store.PlanWithPools
	Apps    int
	Devices int64
	// Confirm is what was typed into the deletion confirmation.
	Confirm string
	// SSO lists the linked sign-in providers (nil: none configured).
	SSO *accountSSO
}

func (d *dashboard) accountBody(c echo.Context) (accountBody, error) {
	o := currentOwner(c)
	ctx := c.Request().Context()
	v, err := d.s.ownerView(ctx, o)
	if err != nil {
		return accountBody{}, err
	}
	plan, err := d.s.store.GetPlan(ctx, o.PlanID)
	if err != nil {
		return accountBody{}, err
	}
	apps, devices, err := d.ownerUsage(ctx, o.ID)
	if err != nil {
		return accountBody{}, err
	}
	sso, err := d.accountSSO(c)
	if err != nil {
		return accountBody{}, err
	}
	return accountBody{Owner: v, Plan: plan, Apps: len(apps), Devices: devices, SSO: sso}, nil
}

func (d *dashboard) handleAccount(c echo.Context) error {
	body, err := d.accountBody(c)
	if err != nil {
		return err
	}
	p := d.newPage(c, "Account", "account")
	p.Body = body
	return d.render(c, http.StatusOK, "account.html", p)
}

// handleExport downloads everything stored about the account as JSON.
func (d *dashboard) handleExport(c echo.Context) error {
	ex, err := d.s.exportOwner(c.Request().Context(), currentOwner(c).ID)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(ex, "", "  ")
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="traceless-export.json"`)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, append(b, '\n'))
}

func (d *dashboard) deleteAccountPage(c echo.Context, status int, p *page, confirm string) error {
	body, err := d.accountBody(c)
	if err != nil {
		return err
	}
	body.Confirm = confirm
	p.Body = body
	return d.render(c, status, "account_delete.html", p)
}

func (d *dashboard) handleDeleteAccountPage(c echo.Context) error {
	return d.deleteAccountPage(c, http.StatusOK, d.newPage(c, "Delete account", "account"), "")
}

// handleDeleteAccount hard-deletes the account once its email is typed as
// confirmation; a legal hold is explained on the same page.
func (d *dashboard) handleDeleteAccount(c echo.Context) error {
	o := currentOwner(c)
	confirm := formValue(c, "confirm")
	var err error
	if !strings.EqualFold(confirm, o.Email) {
		err = badRequest("confirm", "Type your email address, %s, to confirm.", o.Email)
	} else if err = d.s.deleteOwner(c.Request().Context(), o.ID); err == nil {
		c.SetCookie(clearCookie(d.s.secureCookies(c)))
		return redirect(c, pathWithDone("/login", "deleted"))
	}
	p := d.newPage(c, "Delete account", "account")
	status, err := p.setError("delete", err, "confirm")
	if err != nil {
		return err
	}
	return d.deleteAccountPage(c, status, p, confirm)
}

// privacyBody is the privacy manifest as a page.
type privacyBody struct {
	Sections     []privacySection
	NeverStored  []string
	ThirdParties []api.PrivacyThirdParty
}

// privacySection groups the tables about one subject.
type privacySection struct {
	Heading, Intro string
	Tables         []store.ManifestTable
}

// privacySubjects orders and introduces the manifest's subjects.
var privacySubjects = []struct{ subject, heading, intro string }{
	{store.SubjectOwner, "About you, the app owner",
		"Your registration: who you are, which plan you chose, your apps and the keys they use."},
	{store.SubjectEndUserDevice, "About your users' devices",
		"Only the WireGuard configuration each device needs to connect — its public key and the tunnel addresses we assign. Nothing about what the device does."},
	{store.SubjectInfrastructure, "About our servers",
		"The VPN servers and their regions. None of this is about a person."},
	{store.SubjectOperator, "About the service's catalogue",
		"The plans on offer."},
}

// handlePrivacyPage renders the privacy manifest (the same document as
// GET /api/v1/privacy, generated from the schema) for people.
func (d *dashboard) handlePrivacyPage(c echo.Context) error {
	m, err := d.s.store.Manifest()
	if err != nil {
		return err
	}
	body := privacyBody{NeverStored: m.NeverStored, ThirdParties: d.s.thirdParties()}
	used := map[string]bool{}
	for _, sub := range privacySubjects {
		sec := privacySection{Heading: sub.heading, Intro: sub.intro}
		for _, t := range m.Tables {
			if t.Subject == sub.subject {
				sec.Tables = append(sec.Tables, t)
				used[t.Name] = true
			}
		}
		if len(sec.Tables) > 0 {
			body.Sections = append(body.Sections, sec)
		}
	}
	var rest privacySection
	for _, t := range m.Tables {
		if !used[t.Name] {
			rest.Tables = append(rest.Tables, t)
		}
	}
	if len(rest.Tables) > 0 {
		rest.Heading, rest.Intro = "Everything else", "Bookkeeping the service needs to run."
		body.Sections = append(body.Sections, rest)
	}
	p := d.newPage(c, "What we store about you and your users", "privacy")
	if o, _, ok := d.session(c); ok {
		p.Me = &pageUser{ID: o.ID, Email: o.Email, Admin: o.Role == store.RoleAdmin}
	}
	p.Body = body
	return d.render(c, http.StatusOK, "privacy.html", p)
}
