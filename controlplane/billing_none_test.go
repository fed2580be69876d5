package controlplane

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/store"
)

// testStripeConfig is a Stripe configuration against apiURL (stripe-mock)
// with prices for pro and business.
func testStripeConfig(apiURL string) *billing.Config {
	return &billing.Config{SecretKey: "sk_test_123", WebhookSecret: testWebhookSecret, APIURL: apiURL,
		Prices: map[string]string{"pro": "price_pro", "business": "price_business"}}
}

// testWebhookSecret signs the tests' webhook payloads.
const testWebhookSecret = "whsec_test_secret"

// Billing without a payment provider (billing: none): today's behaviour,
// plus the setting that switches self-service plan changes off, operators'
// comps, and the 402 of an account held to the free plan's limits.

func TestBillingNoneSelfService(t *testing.T) {
	h := newHarness(t)
	o := h.MustOwner()
	var b api.Billing
	h.Do(request{Method: "GET", Path: "/api/v1/me/billing", Token: o.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.Provider != api.BillingNone || !b.SelfService || b.Plan != "free" || b.Portal || len(b.PaidPlans) != 0 {
		t.Errorf("billing of a new owner = %+v", b)
	}
	// As before: a paid plan is one click away, free of charge.
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: o.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, 200)
	h.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o.Token, Body: api.CheckoutInput{Plan: "business"}}).
		MustHaveError(t, wantErr{Status: 404, Code: api.CodeNotFound})
	h.Do(request{Method: "POST", Path: "/api/v1/me/billing/portal", Token: o.Token}).MustHaveError(t, wantErr{Status: 404, Code: api.CodeNotFound})
}

func TestBillingNoneOperatorPlansOnly(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Billing.OperatorPlansOnly = true })
	o := h.MustOwner()
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: o.Token, Body: api.PlanChange{Plan: "pro"}}).
		MustHaveError(t, wantErr{Status: 403, Code: api.CodeForbidden})
	if got := h.MustGetOwner(o.Owner.ID).PlanID; got != h.MustPlanID("free") {
		t.Errorf("plan after a refused change = %s, want free", got)
	}
	var b api.Billing
	h.Do(request{Method: "GET", Path: "/api/v1/me/billing", Token: o.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.SelfService {
		t.Error("self_service = true with OperatorPlansOnly")
	}
	// The dashboard says so and offers no plan forms.
	b2 := newBrowser(t, h)
	b2.signInAs(o.Token)
	b2.get("/plan").mustStatus(t, 200).mustContain(t, `id="operator-plans"`).mustNotContain(t, `action="/plan"`)
	// The operator still assigns plans.
	admin := h.MustAdmin()
	h.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + o.Owner.ID, Token: admin.Token, Body: map[string]string{"plan": "pro"}}).MustStatus(t, 200)
	if _, err := New(Options{Store: h.store, Billing: BillingOptions{OperatorPlansOnly: true, Stripe: testStripeConfig("http://127.0.0.1:1")}}); err == nil {
		t.Error("New accepted OperatorPlansOnly with Stripe")
	}
}

// TestPaymentRequired: an account whose grace period ended unpaid is held
// to the free plan's limits, and the API answers 402 payment_required
// (not 403 plan_limit) where a limit refuses.
func TestPaymentRequired(t *testing.T) {
	h := newHarness(t)
	o := h.MustOwner()
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: o.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, 200)
	h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: o.Token, Body: api.AppInput{Name: "first"}}).MustStatus(t, 201)
	ctx := context.Background()
	past := harnessStart.Add(-time.Hour)
	if _, err := h.store.UpdateBilling(ctx, o.Owner.ID, func(b *store.OwnerBilling, _ store.Owner) (*store.PlanMove, error) {
		b.SubscriptionStatus, b.GraceUntil = "past_due", &past
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := h.store.EndGracePeriods(ctx, harnessStart, "free"); err != nil || n != 1 {
		t.Fatalf("EndGracePeriods = %d, %v", n, err)
	}
	h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: o.Token, Body: api.AppInput{Name: "second"}}).
		MustHaveError(t, wantErr{Status: 402, Code: api.CodePaymentRequired})
	var b api.Billing
	h.Do(request{Method: "GET", Path: "/api/v1/me/billing", Token: o.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if !b.PaymentRequired || b.Plan != "pro" || b.GraceUntil == nil {
		t.Errorf("billing of a held account = %+v", b)
	}
}

func TestAdminComp(t *testing.T) {
	h := newHarness(t)
	admin := h.MustAdmin()
	o := h.MustOwner()
	path := "/api/v1/admin/owners/" + o.Owner.ID + "/billing/comp"
	h.Do(request{Method: "PUT", Path: path, Token: admin.Token, Body: api.CompInput{Plan: "business"}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "reason"})
	h.Do(request{Method: "PUT", Path: path, Token: admin.Token, Body: api.CompInput{Plan: "nonsense", Reason: "partner"}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "plan"})
	h.Do(request{Method: "PUT", Path: path, Token: o.Token, Body: api.CompInput{Plan: "business", Reason: "partner"}}).
		MustHaveError(t, wantErr{Status: 403, Code: api.CodeForbidden})
	var b api.Billing
	h.Do(request{Method: "PUT", Path: path, Token: admin.Token, Body: api.CompInput{Plan: "business", Reason: "open-source partner"}}).
		MustStatus(t, 200).MustDecode(t, &b)
	if b.Plan != "business" || b.CompReason == nil || *b.CompReason != "open-source partner" {
		t.Errorf("billing after comp = %+v", b)
	}
	// The owner sees it, and the export holds it.
	h.Do(request{Method: "GET", Path: "/api/v1/me/billing", Token: o.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.CompReason == nil || b.Plan != "business" {
		t.Errorf("owner's billing while comped = %+v", b)
	}
	var ex api.Export
	h.Do(request{Method: "GET", Path: "/api/v1/me/export", Token: o.Token}).MustStatus(t, 200).MustDecode(t, &ex)
	if rows := ex.Tables["owner_billing"]; len(rows) != 1 || rows[0]["comp_reason"] != "open-source partner" {
		t.Errorf("export's owner_billing = %v", ex.Tables["owner_billing"])
	}
	// The operator's view of the owner.
	h.Do(request{Method: "GET", Path: "/api/v1/admin/owners/" + o.Owner.ID + "/billing", Token: admin.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.CompReason == nil {
		t.Errorf("operator's view = %+v", b)
	}
	// Ending it without a provider leaves the plan.
	h.Do(request{Method: "DELETE", Path: path, Token: admin.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.CompReason != nil || b.Plan != "business" {
		t.Errorf("billing after the comp ended = %+v", b)
	}
	h.Do(request{Method: "GET", Path: "/api/v1/admin/owners/nobody/billing", Token: admin.Token}).MustHaveError(t, wantErr{Status: 404, Code: api.CodeNotFound})
}

// TestAdminCompDashboard: the owner page shows the billing state, and
// comps and ends a comp with the same rules as the API.
func TestAdminCompDashboard(t *testing.T) {
	h := newHarness(t)
	admin := h.MustAdmin()
	o := h.MustOwner()
	br := newBrowser(t, h)
	br.signInAs(admin.Token)
	ownerPage := "/admin/owners/" + o.Owner.ID
	br.get(ownerPage).mustStatus(t, 200).mustContain(t, `id="billing-h"`, `action="`+ownerPage+`/comp"`)
	br.submit(ownerPage, ownerPage+"/comp", url.Values{"comp_plan": {"pro"}, "comp_reason": {""}}).
		mustStatus(t, http.StatusBadRequest).mustContain(t, "Reason")
	br.submit(ownerPage, ownerPage+"/comp", url.Values{"comp_plan": {"pro"}, "comp_reason": {"conference speaker"}}).
		mustRedirect(t, ownerPage)
	if got := h.MustGetOwner(o.Owner.ID).PlanID; got != h.MustPlanID("pro") {
		t.Errorf("plan after the comp form = %s, want pro", got)
	}
	br.get("/admin/owners").mustStatus(t, 200).mustContain(t, "comped")
	br.get(ownerPage).mustContain(t, "conference speaker", `action="`+ownerPage+`/comp/end"`)
	br.submit(ownerPage, ownerPage+"/comp/end", url.Values{}).mustRedirect(t, ownerPage)
	if b, _ := h.store.GetBilling(context.Background(), o.Owner.ID); b.CompReason != nil {
		t.Error("comp still set after the end form")
	}
}

// TestThirdPartiesSMTP: the mail relay is a third party as soon as it is
// configured, and only then.
func TestThirdPartiesSMTP(t *testing.T) {
	for _, smtp := range []string{"", "mail.example.org:587"} {
		h := newHarness(t, func(o *Options) { o.Alerts.SMTP = SMTPConfig{Addr: smtp, From: "t@example.org"} })
		var m api.PrivacyManifest
		h.Do(request{Method: "GET", Path: "/api/v1/privacy"}).MustStatus(t, 200).MustDecode(t, &m)
		found := false
		for _, p := range m.ThirdParties {
			found = found || strings.Contains(p.Name, "mail server")
		}
		if found != (smtp != "") {
			t.Errorf("smtp %q: third parties = %+v", smtp, m.ThirdParties)
		}
	}
}
