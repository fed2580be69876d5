package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Billing returns the signed-in owner's plan and billing state: the
// payment provider, and with Stripe the subscription's status, next
// renewal and grace period.
func (c *Client) Billing(ctx context.Context) (api.Billing, error) {
	var out api.Billing
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/me/billing", auth: authOwner}, &out)
	return out, err
}

// Checkout opens a Stripe Checkout session for a paid plan and returns its
// URL, where the owner pays; the plan changes once Stripe reports the
// payment. It fails with api.CodeNotFound without a payment provider,
// api.CodeConflict while subscribed (use Portal) or comped, and
// api.CodeBillingUnavailable when Stripe cannot be reached.
func (c *Client) Checkout(ctx context.Context, plan string) (string, error) {
	var out api.BillingRedirect
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/me/billing/checkout", auth: authOwner,
		body: api.CheckoutInput{Plan: plan}, noRetry: true}, &out)
	return out.URL, err
}

// Portal opens a session of Stripe's customer portal (card, invoices,
// cancellation) and returns its URL.
func (c *Client) Portal(ctx context.Context) (string, error) {
	var out api.BillingRedirect
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/me/billing/portal", auth: authOwner, noRetry: true}, &out)
	return out.URL, err
}

// OwnerBilling returns an owner's plan and billing state (operators).
func (c *Client) OwnerBilling(ctx context.Context, ownerID string) (api.Billing, error) {
	var out api.Billing
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/admin/owners/" + url.PathEscape(ownerID) + "/billing",
		auth: authOwner}, &out)
	return out, err
}

// CompPlan gives an owner a plan without charge, with the reason
// (operators). It fails with api.CodePlanLimit when the owner uses more
// than the plan allows.
func (c *Client) CompPlan(ctx context.Context, ownerID, plan, reason string) (api.Billing, error) {
	var out api.Billing
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: "/api/v1/admin/owners/" + url.PathEscape(ownerID) + "/billing/comp",
		auth: authOwner, body: api.CompInput{Plan: plan, Reason: reason}}, &out)
	return out, err
}

// EndComp ends a comp (operators): with Stripe the plan follows the
// owner's subscription again, or returns to the free plan without one.
func (c *Client) EndComp(ctx context.Context, ownerID string) (api.Billing, error) {
	var out api.Billing
	err := c.doJSON(ctx, &request{method: http.MethodDelete, path: "/api/v1/admin/owners/" + url.PathEscape(ownerID) + "/billing/comp",
		auth: authOwner}, &out)
	return out, err
}
