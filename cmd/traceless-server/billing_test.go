package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

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

// TestExecRefusesBadBillingPlans: with billing stripe, a free plan that
// does not exist or has a price, and a Stripe price for a plan that does
// not exist or is free, stop the server at start (exit 1), naming the
// setting.
func TestExecRefusesBadBillingPlans(t *testing.T) {
	for _, tc := range []struct {
		name, setting string
		env           map[string]string
	}{
		{"free plan missing", "billing_free_plan", map[string]string{"TRACELESS_BILLING_FREE_PLAN": "gratis"}},
		{"free plan priced", "billing_free_plan", map[string]string{"TRACELESS_BILLING_FREE_PLAN": "pro"}},
		{"priced plan missing", "stripe_prices", map[string]string{"TRACELESS_STRIPE_PRICES": "pro=price_pro,platinum=price_plat"}},
		{"priced plan free", "stripe_prices", map[string]string{"TRACELESS_STRIPE_PRICES": "pro=price_pro,free=price_free"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"TRACELESS_BILLING": "stripe", "TRACELESS_STRIPE_SECRET_KEY": "sk_test_main",
				"TRACELESS_STRIPE_WEBHOOK_SECRET": "whsec_main", "TRACELESS_STRIPE_PRICES": "pro=price_pro"}
			for k, v := range tc.env {
				env[k] = v
			}
			stderr := &syncBuffer{}
			m := NewMain(&syncBuffer{}, stderr)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if code := m.Exec(ctx, newInstance(t).args("--public-url", "https://vpn.example.com"), envMap(env)); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tc.setting+":") {
				t.Errorf("stderr does not name %s:\n%s", tc.setting, stderr)
			}
			if strings.Contains(stderr.String(), `"listening"`) {
				t.Errorf("the server said it was listening:\n%s", stderr)
			}
		})
	}
}
