package controlplane

import (
	"net/http"
	"reflect"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/billing"
)

func init() {
	requestRequired[reflect.TypeFor[api.CheckoutInput]()] = []string{"plan"}
	requestRequired[reflect.TypeFor[api.CompInput]()] = []string{"plan", "reason"}
	fieldRules[reflect.TypeFor[api.Billing]()] = map[string][]fieldRule{
		"provider":             {enum(api.BillingNone, api.BillingStripe)},
		"self_service":         {describe("Whether the owner may change their own plan: with Stripe, paid plans through checkout.")},
		"plan":                 {describe("The slug of the owner's plan.")},
		"paid_plans":           {describe("The plans this owner can buy through checkout now (none while subscribed or comped).")},
		"status":               {describe("The subscription's status as Stripe reports it (active, trialing, past_due, unpaid, incomplete, canceled, …); empty without one.")},
		"customer_id":          {describe("Stripe's customer ID, or null.")},
		"subscription_id":      {describe("Stripe's subscription ID, or null.")},
		"current_period_end":   {describe("The next renewal or, with cancel_at_period_end, when the plan returns to the free plan; null without a subscription.")},
		"cancel_at_period_end": {describe("Whether the subscription was cancelled and ends with its period.")},
		"grace_until":          {describe("End of the grace period a failed payment opened, or null.")},
		"payment_required":     {describe("The grace period ended unpaid: new apps, devices and own nodes are held to the free plan's limits (402 payment_required); what is registered keeps working.")},
		"comp_reason":          {describe("Why an operator gives this plan without charge, or null.")},
		"portal":               {describe("Whether POST /api/v1/me/billing/portal can open Stripe's customer portal.")},
		"cancelled_subscription_id": {describe("Stripe's ID of a second subscription the owner paid for at the same time (two checkouts), " +
			"cancelled at Stripe so that only one charges; the operator can refund its payment in Stripe's dashboard. " +
			"Null otherwise; cleared when the owner's subscription ends.")},
	}
	fieldRules[reflect.TypeFor[api.BillingRedirect]()] = map[string][]fieldRule{
		"url": {describe("The Stripe page to send the owner to.")},
	}
	fieldRules[reflect.TypeFor[api.CompInput]()] = map[string][]fieldRule{
		"plan":   {describe("The slug of the plan to give.")},
		"reason": {describe("Why it is given without charge (1-500 characters); shown to the owner and in the export.")},
	}
	errorResponseTable[http.StatusPaymentRequired] = errorResponse{"PaymentRequired",
		"payment_required: the account's payment is overdue past its grace period, so it is held to the free plan's limits; " +
			"or a paid plan was chosen without checkout.",
		api.Error{Code: api.CodePaymentRequired, Message: "payment is overdue: the account is held to the free plan's limits until it is paid"}}
	conflict := errorResponseTable[http.StatusConflict]
	conflict.desc += " subscription_live: an operator's comp while the owner's Stripe subscription renews (it must be cancelled first)."
	errorResponseTable[http.StatusConflict] = conflict
	errorResponseTable[http.StatusBadGateway] = errorResponse{"BadGateway",
		"billing_unavailable: the payment provider could not be reached or refused the request; try again later.",
		api.Error{Code: api.CodeBillingUnavailable, Message: "the payment provider cannot be reached; try again later"}}
}

// stripeEventSchema is the body Stripe posts: an event object, verified
// by its Stripe-Signature header.
var stripeEventSchema = func() *openapi3.Schema {
	s := openapi3.NewObjectSchema().
		WithProperty("id", openapi3.NewStringSchema()).
		WithProperty("type", openapi3.NewStringSchema()).
		WithAnyAdditionalProperties()
	s.Description = "A Stripe event (https://docs.stripe.com/api/events/object), exactly as Stripe sends it."
	return s
}()

const billingNoneDoc = " Without a payment provider (billing `none`) this answers 404 not_found."

func billingOperations() []operation {
	return []operation{
		{method: http.MethodGet, path: "/api/v1/me/billing", id: "getBilling", tag: "account", sec: secOwner,
			summary: "Plan and billing state",
			desc: "The owner's plan, the payment provider, and with Stripe the subscription's status, next renewal (or the end of a " +
				"cancelled one), a grace period after a failed payment and whether the account is held to the free plan's limits. " +
				"Only Stripe's references are stored: no card data, invoices or addresses.",
			replies: []reply{{status: 200, body: api.Billing{}}}},
		{method: http.MethodPost, path: "/api/v1/me/billing/checkout", id: "startCheckout", tag: "account", sec: secOwner,
			summary: "Buy a paid plan (Stripe Checkout)", body: api.CheckoutInput{},
			desc: "Opens a Stripe Checkout session for the plan and answers its URL: send the owner there. The plan changes when Stripe " +
				"reports the subscription active (by webhook). The owner's Stripe customer is created the first time, with their email only. " +
				"409 conflict while subscribed (use the portal) or comped; 502 billing_unavailable when Stripe cannot be reached." + billingNoneDoc,
			replies: []reply{{status: 201, body: api.BillingRedirect{}}}, errs: []int{404, 409, 502}},
		{method: http.MethodPost, path: "/api/v1/me/billing/portal", id: "openBillingPortal", tag: "account", sec: secOwner,
			summary: "Open Stripe's customer portal",
			desc: "Answers the URL of a Stripe customer-portal session, where the owner changes their card, reads invoices and cancels " +
				"(the plan then returns to the free plan at the end of the paid period). 409 conflict before the first checkout." + billingNoneDoc,
			replies: []reply{{status: 201, body: api.BillingRedirect{}}}, errs: []int{404, 409, 502}},
		{method: http.MethodPost, path: "/api/v1/billing/stripe/webhook", id: "stripeWebhook", tag: "public", sec: secNone,
			summary: "Stripe's webhook",
			desc: "Stripe posts its events here; register this URL in Stripe with the events " + strings.Join(billing.Handled, ", ") + ". " +
				"The `Stripe-Signature` header must verify with the signing secret (400 invalid_request otherwise, and nothing is read). " +
				"The subscription an event names is read from Stripe and its current state applied, so replays and events out of order " +
				"change nothing. Other events, and customers this server does not know, are acknowledged with `handled: false`. " +
				"502 billing_unavailable when Stripe cannot be read (Stripe retries)." + billingNoneDoc,
			rawJSON: stripeEventSchema,
			replies: []reply{{status: 200, body: api.WebhookAck{}}}, errs: []int{400, 404, 413, 502}},
		{method: http.MethodGet, path: "/api/v1/admin/owners/{owner_id}/billing", id: "adminGetBilling", tag: "admin", sec: secAdmin,
			summary: "An owner's plan and billing state", replies: []reply{{status: 200, body: api.Billing{}}}},
		{method: http.MethodPut, path: "/api/v1/admin/owners/{owner_id}/billing/comp", id: "adminCompPlan", tag: "admin", sec: secAdmin,
			summary: "Give an owner a plan without charge", body: api.CompInput{},
			desc: "Moves the owner to the plan and records the reason; while comped, the subscription's state never moves the plan and " +
				"no grace period holds the account. 403 plan_limit when the owner uses more than the plan allows. " +
				"With Stripe, 409 subscription_live while the owner's subscription is live and renews: a comp does not stop Stripe " +
				"charging, so the subscription must be cancelled first (by the owner in the customer portal, or in Stripe's dashboard); " +
				"one cancelled at its period's end charges no more and does not stand in the way. Stripe is asked (the stored status may lag), " +
				"and the owner's open Checkout sessions are expired; 502 billing_unavailable when Stripe cannot be reached.",
			replies: []reply{{status: 200, body: api.Billing{}}}, errs: []int{409, 502}},
		{method: http.MethodDelete, path: "/api/v1/admin/owners/{owner_id}/billing/comp", id: "adminEndComp", tag: "admin", sec: secAdmin,
			summary: "End a comp",
			desc: "With Stripe, the plan follows the owner's subscription again (read from Stripe now), or returns to the free plan " +
				"without one; without a provider the plan stays. 502 billing_unavailable when Stripe cannot be read.",
			replies: []reply{{status: 200, body: api.Billing{}}}, errs: []int{502}},
	}
}
