package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// billingRedirectBody is the page that sends the owner on to a Stripe
// page. The dashboard's CSP (form-action 'self') keeps a form from
// redirecting to another origin, so the form's answer is this page, with
// a link that app.js follows at once.
type billingRedirectBody struct {
	URL, What string
}

// handleCheckoutForm starts a Stripe Checkout for a paid plan, like
// POST /api/v1/me/billing/checkout, and sends the owner there.
func (d *dashboard) handleCheckoutForm(c echo.Context) error {
	url, err := d.s.checkout(c, formValue(c, "plan"))
	if err != nil {
		p := d.newPage(c, "Plan", "plan")
		status, err := p.setError("plan", err)
		if err != nil {
			return err
		}
		return d.planPage(c, status, p)
	}
	p := d.newPage(c, "Continue to Stripe", "plan")
	p.Body = billingRedirectBody{URL: url, What: "Stripe Checkout, where you pay for your plan"}
	return d.render(c, http.StatusOK, "billing_redirect.html", p)
}

// handlePortalForm opens Stripe's customer portal, like
// POST /api/v1/me/billing/portal.
func (d *dashboard) handlePortalForm(c echo.Context) error {
	url, err := d.s.portal(c)
	if err != nil {
		p := d.newPage(c, "Plan", "plan")
		status, err := p.setError("billing", err)
		if err != nil {
			return err
		}
		return d.planPage(c, status, p)
	}
	p := d.newPage(c, "Continue to Stripe", "plan")
	p.Body = billingRedirectBody{URL: url, What: "Stripe's customer portal, where you change your card, read your invoices or cancel"}
	return d.render(c, http.StatusOK, "billing_redirect.html", p)
}

// handleAdminCompForm gives an owner a plan without charge, like
// PUT /api/v1/admin/owners/{owner_id}/billing/comp.
func (d *dashboard) handleAdminCompForm(c echo.Context) error {
	id := c.Param("owner_id")
	_, err := d.s.compPlan(c.Request().Context(), id, compInput(c))
	if err == nil {
		return redirect(c, pathWithDone("/admin/owners/"+id, "comp-set"))
	}
	p := d.newPage(c, "Owner", "admin-owners")
	status, err := p.setError("comp", err, "plan=comp_plan", "reason=comp_reason")
	if err != nil {
		return err
	}
	return d.adminOwnerPage(c, status, p, "")
}

// handleAdminEndCompForm ends a comp, like
// DELETE /api/v1/admin/owners/{owner_id}/billing/comp.
func (d *dashboard) handleAdminEndCompForm(c echo.Context) error {
	id := c.Param("owner_id")
	if _, err := d.s.endComp(c.Request().Context(), id); err != nil {
		p := d.newPage(c, "Owner", "admin-owners")
		status, err := p.setError("comp", err)
		if err != nil {
			return err
		}
		return d.adminOwnerPage(c, status, p, "")
	}
	return redirect(c, pathWithDone("/admin/owners/"+id, "comp-ended"))
}

func compInput(c echo.Context) api.CompInput {
	return api.CompInput{Plan: formValue(c, "comp_plan"), Reason: formValue(c, "comp_reason")}
}
