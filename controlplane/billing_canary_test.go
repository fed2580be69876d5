package controlplane

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestCanaryBilling runs every billing route with Stripe on, the failing
// paths included (a bad signature, Stripe refusing, a deletion held), and
// checks that no canary — the owner's email, Stripe's customer and
// subscription IDs, the session URLs, the secrets — reaches the log or
// /metrics, and that after the account's deletion and a checkpoint the
// database file holds none of Stripe's references.
func TestCanaryBilling(t *testing.T) {
	w := newStripeWorld(t)
	admin := w.MustAdmin()
	s := w.checkout(t, "pro")
	secrets := []string{s.Owner.Email, s.customer, s.sub, testWebhookSecret, "sk_test_123", s.Token}
	end := time.Now().Add(30 * 24 * time.Hour)
	sub := subscription(s.sub, s.customer, "active", "price_pro", end, false)
	w.stripeHas(sub)

	var r api.BillingRedirect
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: s.Token, Body: api.CheckoutInput{Plan: "business"}}).MustStatus(t, 201).MustDecode(t, &r)
	secrets = append(secrets, r.URL)
	w.send(t, "customer.subscription.created", sub)
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/portal", Token: s.Token}).MustStatus(t, 201).MustDecode(t, &r)
	secrets = append(secrets, r.URL)
	w.Do(request{Method: "GET", Path: "/api/v1/me/billing", Token: s.Token}).MustStatus(t, 200)
	w.Do(request{Method: "GET", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing", Token: admin.Token}).MustStatus(t, 200)
	comp := request{Method: "PUT", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Token: admin.Token,
		Body: api.CompInput{Plan: "business", Reason: "partner"}}
	w.Do(comp).MustStatus(t, 409) // subscribed: cancel first
	sub["cancel_at_period_end"] = true
	w.send(t, "customer.subscription.updated", sub)
	w.Do(comp).MustStatus(t, 200)
	w.Do(request{Method: "DELETE", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Token: admin.Token}).MustStatus(t, 200)
	// Failures log, without the canaries.
	w.deliver(w.payload(t, "invoice.paid", map[string]any{"id": "in_1", "object": "invoice", "customer": s.customer}, time.Now()),
		"whsec_wrong", time.Now()).MustStatus(t, 400)
	w.sm.Fail("GET", "/v1/subscriptions/"+s.sub, true)
	w.deliver(w.payload(t, "customer.subscription.updated", sub, time.Now()), testWebhookSecret, time.Now()).MustStatus(t, 502)
	w.sm.Fail("GET", "/v1/subscriptions/"+s.sub, false)
	w.sm.Fail("POST", "/v1/billing_portal/sessions", true)
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/portal", Token: s.Token}).MustStatus(t, 502)
	w.sm.Set("GET", "/v1/customers/"+s.customer, map[string]any{"balance": 100, "currency": "eur"})
	w.Do(request{Method: "DELETE", Path: "/api/v1/me", Token: s.Token}).MustStatus(t, 409)
	w.sm.Set("GET", "/v1/customers/"+s.customer, nil)
	w.Do(request{Method: "DELETE", Path: "/api/v1/me", Token: s.Token}).MustStatus(t, 204)

	metrics := w.Do(request{Method: http.MethodGet, Path: "/metrics"}).MustStatus(t, 200)
	logs := w.logs.String()
	for _, cn := range secrets {
		if strings.Contains(logs, cn) {
			t.Errorf("the log holds %q", cn)
		}
		if strings.Contains(string(metrics.Body), cn) {
			t.Errorf("/metrics holds %q", cn)
		}
	}
	if !strings.Contains(logs, "billing request failed") || !strings.Contains(logs, `"event":"customer.subscription.created"`) {
		t.Errorf("the log lacks the billing lines the test expects:\n%s", logs)
	}
	mustCheckpoint(t, w.harness)
	mustNotHold(t, mustFiles(t, w.dbPath), "after the account's deletion", s.customer, s.sub, s.Owner.Email, "partner")
}
