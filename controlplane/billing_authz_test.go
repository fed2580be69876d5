package controlplane

import (
	"net/url"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// billingAuthzRoutes are the authorization matrix's rows for billing
// (billing.go, dashboard_billing.go). The matrix's server has no payment
// provider, so checkout, the portal and the webhook answer 404 to whoever
// may call them; TestBillingAuthzStripe checks the same routes with Stripe.
func billingAuthzRoutes() map[string]route {
	return map[string]route{
		"GET /api/v1/me/billing": {class: classOwner, ok: 200, request: func(*authzWorld) request {
			return request{Method: "GET", Path: "/api/v1/me/billing"}
		}},
		"POST /api/v1/me/billing/checkout": {class: classOwner, ok: 404, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/me/billing/checkout", Body: api.CheckoutInput{Plan: "pro"}}
		}},
		"POST /api/v1/me/billing/portal": {class: classOwner, ok: 404, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/me/billing/portal"}
		}},
		"POST /api/v1/billing/stripe/webhook": {class: classPublic, fixed: 404, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/billing/stripe/webhook", Body: map[string]string{"id": "evt_1", "type": "invoice.paid"}}
		}},
		"GET /api/v1/admin/owners/:owner_id/billing": {class: classAdmin, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID + "/billing"}
		}},
		"PUT /api/v1/admin/owners/:owner_id/billing/comp": {class: classAdmin, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID + "/billing/comp", Body: api.CompInput{Plan: "business", Reason: "partner"}}
		}},
		"DELETE /api/v1/admin/owners/:owner_id/billing/comp": {class: classAdmin, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID + "/billing/comp"}
		}},
		"POST /plan/checkout": {class: classPage, page: true, ok: 404, request: func(*authzWorld) request {
			return form("/plan/checkout", url.Values{"plan": {"pro"}})
		}},
		"POST /plan/portal": {class: classPage, page: true, ok: 404, request: func(*authzWorld) request {
			return form("/plan/portal", url.Values{})
		}},
		"POST /admin/owners/:owner_id/comp": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/owners/"+w.owner.Owner.ID+"/comp", url.Values{"comp_plan": {"business"}, "comp_reason": {"partner"}})
		}},
		"POST /admin/owners/:owner_id/comp/end": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/owners/"+w.owner.Owner.ID+"/comp/end", url.Values{})
		}},
	}
}
