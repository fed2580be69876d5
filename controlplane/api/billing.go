package api

import "time"

// Billing providers.
const (
	BillingNone   = "none"
	BillingStripe = "stripe"
)

// CodePaymentRequired (402): the account's payment is overdue past its
// grace period, so it is held to the free plan's limits; or a paid plan
// is chosen without paying (checkout).
const CodePaymentRequired = "payment_required"

// CodeBillingUnavailable (502): the payment provider could not be reached
// or refused the request; the same request may work later.
const CodeBillingUnavailable = "billing_unavailable"

// CodeSubscriptionLive (409): an operator's comp is refused while the
// owner's Stripe subscription is live and renews, since a comp does not
// stop Stripe charging them; it must be cancelled first.
const CodeSubscriptionLive = "subscription_live"

// Billing is an owner's plan and what billing knows of it: shown to the
// owner (GET /api/v1/me/billing) and to operators
// (GET /api/v1/admin/owners/{owner_id}/billing).
type Billing struct {
	// Provider is "none" (operators assign plans) or "stripe".
	Provider string `json:"provider"`
	// SelfService reports whether the owner may change their plan
	// themselves: with Stripe, paid plans through checkout.
	SelfService bool `json:"self_service"`
	// Plan is the slug of the plan the owner is on.
	Plan string `json:"plan"`
	// PaidPlans are the plans this owner can buy through checkout.
	PaidPlans []string `json:"paid_plans"`
	// Status is the subscription's status as Stripe reports it (active,
	// past_due, canceled, …); empty without one.
	Status string `json:"status"`
	// CustomerID and SubscriptionID are Stripe's references; null without.
	CustomerID     *string `json:"customer_id"`
	SubscriptionID *string `json:"subscription_id"`
	// CurrentPeriodEnd is the next renewal or, with CancelAtPeriodEnd,
	// when the plan returns to the free plan.
	CurrentPeriodEnd  *time.Time `json:"current_period_end"`
	CancelAtPeriodEnd bool       `json:"cancel_at_period_end"`
	// GraceUntil is the end of the grace period a failed payment opened.
	GraceUntil *time.Time `json:"grace_until"`
	// PaymentRequired: the grace period ended unpaid; new apps, devices
	// and own nodes are held to the free plan's limits (402).
	PaymentRequired bool `json:"payment_required"`
	// CompReason is set while an operator gives the plan without charge.
	CompReason *string `json:"comp_reason"`
	// Portal reports whether the owner can open Stripe's customer portal.
	Portal bool `json:"portal"`
	// CancelledSubscriptionID is a second subscription the owner paid for
	// at the same time (two checkouts), cancelled at Stripe: its payment
	// can be refunded by the operator. Null otherwise.
	CancelledSubscriptionID *string `json:"cancelled_subscription_id"`
}

// CheckoutInput starts a checkout for a paid plan.
type CheckoutInput struct {
	Plan string `json:"plan"`
}

// BillingRedirect is a Stripe page to send the owner to: Checkout, or
// the customer portal.
type BillingRedirect struct {
	URL string `json:"url"`
}

// CompInput gives an owner a plan without charge, with the reason.
type CompInput struct {
	Plan   string `json:"plan"`
	Reason string `json:"reason"`
}

// WebhookAck answers a payment provider's webhook: whether the event was
// of a kind billing acts on.
type WebhookAck struct {
	Handled bool `json:"handled"`
}
