package main

import (
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/internal/stripemock"
)

// TestBillingCommands: plan show, buy and portal for owners, and admin
// owners billing, comp and uncomp for operators, against a control plane
// that bills through stripe-mock.
func TestBillingCommands(t *testing.T) {
	sm := stripemock.Start(t)
	url, _ := newServer(t, func(o *controlplane.Options) {
		o.PublicURL = "https://vpn.example.test"
		o.Billing.Stripe = &billing.Config{SecretKey: "sk_test_cli", WebhookSecret: "whsec_cli", APIURL: sm.URL,
			Prices: map[string]string{"pro": "price_pro", "business": "price_business"}}
	})
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "buyer@example.com", "--password-stdin")

	b := decode[api.Billing](t, ok(t, "", s, "plan", "show", "-o", "json"))
	if b.Provider != api.BillingStripe || b.Plan != "free" || strings.Join(b.PaidPlans, ",") != "business,pro" {
		t.Fatalf("plan show: %+v", b)
	}
	if r := cliRun(t, "", s, "plan", "set", "pro"); r.code == 0 || !strings.Contains(r.stderr, "checkout") {
		t.Errorf("plan set pro with Stripe: exit %d, stderr %q; want a refusal pointing to checkout", r.code, r.stderr)
	}
	if r := ok(t, "", s, "plan", "buy", "pro"); !strings.HasPrefix(r.stdout, "Pay at: https://checkout.stripe.com/") {
		t.Errorf("plan buy: %q", r.stdout)
	}
	if r := ok(t, "", s, "plan", "portal"); !strings.HasPrefix(r.stdout, "Manage billing at: https://") {
		t.Errorf("plan portal: %q", r.stdout)
	}
	if r := ok(t, "", s, "plan", "show"); !strings.Contains(r.stdout, "STRIPE CUSTOMER") || !strings.Contains(r.stdout, "cus_") {
		t.Errorf("plan show text: %s", r.stdout)
	}

	ok(t, opPassword, s, "login", "--email", opEmail, "--password-stdin")
	if r := cliRun(t, "", s, "admin", "owners", "comp", "buyer@example.com", "--plan", "business"); r.code == 0 {
		t.Error("comp without --reason succeeded")
	}
	b = decode[api.Billing](t, ok(t, "", s, "admin", "owners", "comp", "buyer@example.com", "--plan", "business", "--reason", "launch partner", "-o", "json"))
	if b.Plan != "business" || b.CompReason == nil || *b.CompReason != "launch partner" {
		t.Errorf("comp: %+v", b)
	}
	if r := ok(t, "", s, "admin", "owners", "billing", "buyer@example.com"); !strings.Contains(r.stdout, "launch partner") {
		t.Errorf("admin owners billing: %s", r.stdout)
	}
	b = decode[api.Billing](t, ok(t, "", s, "admin", "owners", "uncomp", "buyer@example.com", "-o", "json"))
	if b.Plan != "free" || b.CompReason != nil {
		t.Errorf("uncomp without a subscription: %+v", b)
	}
}
