package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestMainBilling: the billing settings reach the server. With billing
// stripe given in the environment, the owner's billing says stripe, a paid
// plan is no longer a free switch, and the privacy manifest names Stripe;
// with plan_self_service false, owners cannot change their plan.
func TestMainBilling(t *testing.T) {
	t.Run("stripe", func(t *testing.T) {
		m := MustRunMain(t, newInstance(t).args("--public-url", "https://vpn.example.com"), map[string]string{
			"TRACELESS_BILLING": "stripe", "TRACELESS_STRIPE_SECRET_KEY": "sk_test_main",
			"TRACELESS_STRIPE_WEBHOOK_SECRET": "whsec_main", "TRACELESS_STRIPE_PRICES": "pro=price_pro,business=price_biz",
		})
		defer m.MustClose(t)
		res, body := m.do(t, http.MethodPost, "/api/v1/auth/signup", "", api.Credentials{Email: "buyer@example.com", Password: operatorPassword})
		mustStatus(t, res, body, http.StatusCreated)
		tok := mustAuth(t, body).Token
		res, body = m.do(t, http.MethodGet, "/api/v1/me/billing", tok, nil)
		mustStatus(t, res, body, http.StatusOK)
		var b api.Billing
		if err := json.Unmarshal(body, &b); err != nil || b.Provider != api.BillingStripe || strings.Join(b.PaidPlans, ",") != "business,pro" {
			t.Errorf("billing = %s (%v)", body, err)
		}
		res, body = m.do(t, http.MethodPut, "/api/v1/me/plan", tok, api.PlanChange{Plan: "pro"})
		mustStatus(t, res, body, http.StatusPaymentRequired)
		res, body = m.do(t, http.MethodGet, "/api/v1/privacy", "", nil)
		mustStatus(t, res, body, http.StatusOK)
		if !strings.Contains(string(body), `"Stripe (stripe.com)"`) {
			t.Errorf("the privacy manifest does not name Stripe:\n%s", body)
		}
		if strings.Contains(string(body), "sk_test_main") || strings.Contains(string(body), "whsec_main") {
			t.Error("the privacy manifest holds a Stripe secret")
		}
	})
	t.Run("operator assigns plans", func(t *testing.T) {
		m := MustRunMain(t, newInstance(t).args("--plan-self-service=false"), nil)
		defer m.MustClose(t)
		res, body := m.do(t, http.MethodPost, "/api/v1/auth/signup", "", api.Credentials{Email: "assigned@example.com", Password: operatorPassword})
		mustStatus(t, res, body, http.StatusCreated)
		res, body = m.do(t, http.MethodPut, "/api/v1/me/plan", mustAuth(t, body).Token, api.PlanChange{Plan: "pro"})
		mustStatus(t, res, body, http.StatusForbidden)
	})
}
