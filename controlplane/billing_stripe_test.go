package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/internal/stripemock"
)

// Billing with Stripe, against stripe-mock (internal/stripemock) for every
// API call, with webhook payloads signed by stripe-go's test helper
// (webhook.GenerateTestSignedPayload).

const testPublicURL = "https://vpn.example.test"

// testGrace is the worlds' billing_grace.
const testGrace = 72 * time.Hour

type stripeWorld struct {
	*harness
	sm  *stripemock.Server
	seq atomic.Int64
	// subs are the subscriptions Stripe lists (stripe-mock lists one of
	// its own otherwise), in the order stripeHas first saw them.
	subs []map[string]any
}

func newStripeWorld(t *testing.T, mods ...func(*Options)) *stripeWorld {
	t.Helper()
	sm := stripemock.Start(t)
	mods = append([]func(*Options){func(o *Options) {
		o.Billing.Stripe = testStripeConfig(sm.URL)
		o.Billing.Grace = testGrace
		o.PublicURL = testPublicURL
		o.SessionTTL = 30 * 24 * time.Hour // the tests move the clock past grace periods
	}}, mods...)
	w := &stripeWorld{harness: newHarness(t, mods...), sm: sm}
	w.sm.Set(http.MethodGet, "/v1/subscriptions", map[string]any{"has_more": false, "data": []any{}})
	return w
}

// subscribed is an owner with a Stripe customer (made by a real checkout
// against stripe-mock) and the subscription ID their checkout will get.
type subscribed struct {
	api.AuthResponse
	customer, sub string
}

// checkout signs up an owner and starts a checkout for plan, as the
// owner would, and returns the customer stripe-mock made.
func (w *stripeWorld) checkout(t *testing.T, plan string) subscribed {
	t.Helper()
	o := w.MustOwner()
	var r api.BillingRedirect
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o.Token, Body: api.CheckoutInput{Plan: plan}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &r)
	if !strings.HasPrefix(r.URL, "https://") {
		t.Fatalf("checkout URL = %q", r.URL)
	}
	b, err := w.store.GetBilling(context.Background(), o.Owner.ID)
	if err != nil || b.CustomerID == nil {
		t.Fatalf("no customer stored after checkout: %+v, %v", b, err)
	}
	return subscribed{AuthResponse: o, customer: *b.CustomerID, sub: fmt.Sprintf("sub_test%d", w.seq.Add(1))}
}

// subscription is a Stripe subscription object.
func subscription(id, customer, status, price string, periodEnd time.Time, cancel bool) map[string]any {
	return map[string]any{
		"id": id, "object": "subscription", "customer": customer, "status": status, "cancel_at_period_end": cancel,
		"items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_" + id, "object": "subscription_item", "current_period_end": periodEnd.Unix(),
			"price": map[string]any{"id": price, "object": "price"},
		}}},
	}
}

// stripeHas sets what Stripe reports for the subscription from now on.
func (w *stripeWorld) stripeHas(sub map[string]any) {
	w.sm.Set(http.MethodGet, "/v1/subscriptions/"+sub["id"].(string), sub)
	replaced := false
	for i, s := range w.subs {
		if s["id"] == sub["id"] {
			w.subs[i], replaced = sub, true
		}
	}
	if !replaced {
		w.subs = append(w.subs, sub)
	}
	data := make([]any, len(w.subs))
	for i, s := range w.subs {
		data[i] = s
	}
	w.sm.Set(http.MethodGet, "/v1/subscriptions", map[string]any{"has_more": false, "data": data})
}

// payload builds a Stripe event of typ about object, created at created.
func (w *stripeWorld) payload(t *testing.T, typ string, object map[string]any, created time.Time) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": fmt.Sprintf("evt_test%d", w.seq.Add(1)), "object": "event", "api_version": stripe.APIVersion,
		"created": created.Unix(), "type": typ, "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": object},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deliver posts a payload signed with secret at signedAt.
func (w *stripeWorld) deliver(payload []byte, secret string, signedAt time.Time) response {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: signedAt})
	return w.Do(request{Method: "POST", Path: "/api/v1/billing/stripe/webhook", Body: payload,
		Header: map[string]string{"Stripe-Signature": sp.Header}})
}

// send delivers a correctly signed event and returns whether it was
// handled.
func (w *stripeWorld) send(t *testing.T, typ string, object map[string]any) bool {
	t.Helper()
	var ack api.WebhookAck
	w.deliver(w.payload(t, typ, object, time.Now()), testWebhookSecret, time.Now()).MustStatus(t, 200).MustDecode(t, &ack)
	return ack.Handled
}

func (w *stripeWorld) billingOf(t *testing.T, o api.AuthResponse) api.Billing {
	t.Helper()
	var b api.Billing
	w.Do(request{Method: "GET", Path: "/api/v1/me/billing", Token: o.Token}).MustStatus(t, 200).MustDecode(t, &b)
	return b
}

// requestsTo returns the recorded Stripe requests of method and path.
func (w *stripeWorld) requestsTo(method, path string) []stripemock.Request {
	var out []stripemock.Request
	for _, r := range w.sm.Requests() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// TestStripeCheckout: choosing a paid plan opens Stripe Checkout, and
// Stripe receives the owner's email, the plan's price and the return
// links, nothing else.
func TestStripeCheckout(t *testing.T) {
	w := newStripeWorld(t)
	o := w.MustOwner()
	b := w.billingOf(t, o)
	if b.Provider != api.BillingStripe || !b.SelfService || b.Plan != "free" || b.Portal ||
		!slices.Equal(b.PaidPlans, []string{"business", "pro"}) {
		t.Errorf("billing before checkout = %+v", b)
	}
	// A paid plan is not one click away any more.
	w.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: o.Token, Body: api.PlanChange{Plan: "pro"}}).
		MustHaveError(t, wantErr{Status: 402, Code: api.CodePaymentRequired})
	for _, bad := range []struct{ plan, field string }{{"", "plan"}, {"free", "plan"}, {"platinum", "plan"}} {
		w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o.Token, Body: api.CheckoutInput{Plan: bad.plan}}).
			MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: bad.field})
	}
	if n := len(w.requestsTo("POST", "/v1/customers")); n != 0 {
		t.Fatalf("refused checkouts created %d customers", n)
	}
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/portal", Token: o.Token}).MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})

	var r api.BillingRedirect
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o.Token, Body: api.CheckoutInput{Plan: "pro"}}).
		MustStatus(t, 201).MustDecode(t, &r)
	if !strings.HasPrefix(r.URL, "https://checkout.stripe.com/") {
		t.Errorf("checkout URL = %q, want stripe-mock's session URL", r.URL)
	}
	customers := w.requestsTo("POST", "/v1/customers")
	if len(customers) != 1 || customers[0].Form.Get("email") != o.Owner.Email || len(customers[0].Form) != 1 {
		t.Errorf("customer requests = %+v; want one with the owner's email only", customers)
	}
	sessions := w.requestsTo("POST", "/v1/checkout/sessions")
	want := url.Values{"mode": {"subscription"}, "line_items[0][price]": {"price_pro"}, "line_items[0][quantity]": {"1"},
		"success_url": {testPublicURL + "/plan?checkout=done"}, "cancel_url": {testPublicURL + "/plan?checkout=cancelled"},
		"expires_at": {fmt.Sprint(harnessStart.Add(31 * time.Minute).Unix())}}
	if len(sessions) != 1 {
		t.Fatalf("checkout session requests = %d, want 1", len(sessions))
	}
	got := sessions[0].Form
	cus := got.Get("customer")
	got.Del("customer")
	if !strings.HasPrefix(cus, "cus_") || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("checkout session request = customer %q, %v; want %v", cus, got, want)
	}
	b = w.billingOf(t, o)
	if b.CustomerID == nil || *b.CustomerID != cus || b.Plan != "free" || !b.Portal || b.Status != "" {
		t.Errorf("billing after starting a checkout = %+v (the plan changes only when Stripe says it is paid)", b)
	}
	// A second checkout (the first abandoned) reuses the customer.
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o.Token, Body: api.CheckoutInput{Plan: "business"}}).MustStatus(t, 201)
	if n := len(w.requestsTo("POST", "/v1/customers")); n != 1 {
		t.Errorf("customers created = %d, want 1", n)
	}
	// The customer portal.
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/portal", Token: o.Token}).MustStatus(t, 201).MustDecode(t, &r)
	portal := w.requestsTo("POST", "/v1/billing_portal/sessions")
	if len(portal) != 1 || portal[0].Form.Get("customer") != cus || portal[0].Form.Get("return_url") != testPublicURL+"/plan" || r.URL == "" {
		t.Errorf("portal: answer %q, requests %+v", r.URL, portal)
	}
	// Stripe failing: 502, and the log names the route, not the owner.
	w.sm.Fail("POST", "/v1/checkout/sessions", true)
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o.Token, Body: api.CheckoutInput{Plan: "pro"}}).
		MustHaveError(t, wantErr{Status: 502, Code: api.CodeBillingUnavailable})
	if logs := w.logs.String(); strings.Contains(logs, o.Owner.Email) || strings.Contains(logs, cus) {
		t.Errorf("the log names the owner or their customer:\n%s", logs)
	}
}

// TestStripeWebhookSignature: only payloads signed with the endpoint's
// secret, recently, are read.
func TestStripeWebhookSignature(t *testing.T) {
	w := newStripeWorld(t)
	s := w.checkout(t, "pro")
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", time.Now().Add(30*24*time.Hour), false))
	ev := w.payload(t, "customer.subscription.created", subscription(s.sub, s.customer, "active", "price_pro", time.Now(), false), time.Now())
	for _, tc := range []struct {
		name    string
		payload []byte
		secret  string
		at      time.Time
		header  *string
	}{
		{name: "wrong secret", payload: ev, secret: "whsec_someone_else", at: time.Now()},
		{name: "altered body", payload: []byte(strings.Replace(string(ev), `"active"`, `"trialing"`, 1)), secret: testWebhookSecret, at: time.Now(),
			header: func() *string {
				h := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: ev, Secret: testWebhookSecret}).Header
				return &h
			}()},
		{name: "too old (a replay after Stripe's tolerance)", payload: ev, secret: testWebhookSecret, at: time.Now().Add(-10 * time.Minute)},
		{name: "no signature", payload: ev, header: new(string)},
		{name: "garbage signature", payload: ev, header: func() *string { h := "t=1,v1=00"; return &h }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res response
			if tc.header != nil {
				res = w.Do(request{Method: "POST", Path: "/api/v1/billing/stripe/webhook", Body: tc.payload,
					Header: map[string]string{"Stripe-Signature": *tc.header}})
			} else {
				res = w.deliver(tc.payload, tc.secret, tc.at)
			}
			res.MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest})
			if n := len(w.requestsTo("GET", "/v1/subscriptions/"+s.sub)); n != 0 {
				t.Errorf("a refused webhook read the subscription from Stripe (%d times)", n)
			}
			if got := w.MustGetOwner(s.Owner.ID).PlanID; got != w.MustPlanID("free") {
				t.Errorf("a refused webhook changed the plan")
			}
		})
	}
	// Signed, of another API release train: 400 naming the version the
	// endpoint must use, and the operator is told in the log.
	other := []byte(strings.Replace(string(ev), `"api_version":"`+stripe.APIVersion+`"`, `"api_version":"2024-06-20"`, 1))
	if e := w.deliver(other, testWebhookSecret, time.Now()).MustError(t); e.Code != api.CodeInvalidRequest || !strings.Contains(e.Message, stripe.APIVersion) {
		t.Errorf("an event of another API version: %+v", e)
	}
	if !strings.Contains(w.logs.String(), "stripe webhook of another API version refused") {
		t.Error("the log does not say that an event of another API version was refused")
	}
	// Signed, but not a Stripe event: 400, never a 5xx.
	w.deliver([]byte(`{"id": 3}`), testWebhookSecret, time.Now()).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest})
	w.deliver([]byte(`not json`), testWebhookSecret, time.Now()).MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest})
	// The same event, signed right, applies.
	w.deliver(ev, testWebhookSecret, time.Now()).MustStatus(t, 200)
	if got := w.MustGetOwner(s.Owner.ID).PlanID; got != w.MustPlanID("pro") {
		t.Errorf("plan after a signed event = %s, want pro", got)
	}
}

// TestStripeWebhookEvents walks a subscription through every event billing
// handles, with replays and events out of order: what applies is always
// the subscription's state as Stripe reports it now.
func TestStripeWebhookEvents(t *testing.T) {
	w := newStripeWorld(t)
	s := w.checkout(t, "pro")
	ctx := context.Background()
	end := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	check := func(step, plan, status string, check func(api.Billing) bool) {
		t.Helper()
		b := w.billingOf(t, s.AuthResponse)
		if b.Plan != plan || b.Status != status || (check != nil && !check(b)) {
			t.Errorf("%s: billing = %+v; want plan %s, status %s", step, b, plan, status)
		}
	}
	session := map[string]any{"id": "cs_test1", "object": "checkout.session", "customer": s.customer, "subscription": s.sub, "mode": "subscription"}
	invoice := map[string]any{"id": "in_test1", "object": "invoice", "customer": s.customer,
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{"subscription": s.sub}}}

	// Checkout finished, first payment pending: nothing changes yet.
	w.stripeHas(subscription(s.sub, s.customer, "incomplete", "price_pro", end, false))
	if !w.send(t, "customer.subscription.created", subscription(s.sub, s.customer, "incomplete", "price_pro", end, false)) {
		t.Error("customer.subscription.created not handled")
	}
	check("incomplete", "free", "incomplete", nil)
	// Paid: Pro, renewing at the period's end.
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, false))
	oldIncomplete := w.payload(t, "customer.subscription.updated", subscription(s.sub, s.customer, "incomplete", "price_pro", end, false), time.Now().Add(-time.Minute))
	w.send(t, "checkout.session.completed", session)
	check("checkout.session.completed", "pro", "active", func(b api.Billing) bool {
		return b.SubscriptionID != nil && *b.SubscriptionID == s.sub && b.CurrentPeriodEnd != nil && b.CurrentPeriodEnd.Equal(end) && !b.CancelAtPeriodEnd
	})
	// A late event saying "incomplete" changes nothing: Stripe says active.
	w.deliver(oldIncomplete, testWebhookSecret, time.Now()).MustStatus(t, 200)
	check("late incomplete event", "pro", "active", nil)
	// Replays of the same event change nothing either.
	payloadPaid := w.payload(t, "invoice.paid", invoice, time.Now())
	for range 3 {
		w.deliver(payloadPaid, testWebhookSecret, time.Now()).MustStatus(t, 200)
	}
	check("replayed invoice.paid", "pro", "active", nil)

	// A failed payment opens the grace period, once.
	w.stripeHas(subscription(s.sub, s.customer, "past_due", "price_pro", end, false))
	failed := w.payload(t, "invoice.payment_failed", invoice, time.Now())
	w.deliver(failed, testWebhookSecret, time.Now()).MustStatus(t, 200)
	wantGrace := harnessStart.Add(testGrace)
	check("invoice.payment_failed", "pro", "past_due", func(b api.Billing) bool {
		return b.GraceUntil != nil && b.GraceUntil.Equal(wantGrace) && !b.PaymentRequired
	})
	w.clock.Advance(time.Hour)
	w.deliver(failed, testWebhookSecret, time.Now()).MustStatus(t, 200)
	w.send(t, "customer.subscription.updated", subscription(s.sub, s.customer, "past_due", "price_pro", end, false))
	check("replayed failure", "pro", "past_due", func(b api.Billing) bool { return b.GraceUntil.Equal(wantGrace) })
	// Within the grace period Pro's limits hold.
	w.Do(request{Method: "POST", Path: "/api/v1/apps", Token: s.Token, Body: api.AppInput{Name: "one"}}).MustStatus(t, 201)
	w.Do(request{Method: "POST", Path: "/api/v1/apps", Token: s.Token, Body: api.AppInput{Name: "two"}}).MustStatus(t, 201)
	// The grace period ends unpaid: held to Free's limits, 402.
	w.clock.Advance(testGrace)
	if n, err := w.store.EndGracePeriods(ctx, w.clock.Now(), "free"); err != nil || n != 1 {
		t.Fatalf("EndGracePeriods = %d, %v", n, err)
	}
	check("grace ended", "pro", "past_due", func(b api.Billing) bool { return b.PaymentRequired })
	w.Do(request{Method: "POST", Path: "/api/v1/apps", Token: s.Token, Body: api.AppInput{Name: "three"}}).
		MustHaveError(t, wantErr{Status: 402, Code: api.CodePaymentRequired})
	// Paid after all: the hold lifts.
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, false))
	w.send(t, "invoice.paid", invoice)
	check("paid after the grace period", "pro", "active", func(b api.Billing) bool { return !b.PaymentRequired && b.GraceUntil == nil })
	w.Do(request{Method: "POST", Path: "/api/v1/apps", Token: s.Token, Body: api.AppInput{Name: "three"}}).MustStatus(t, 201)
	// The late failure, delivered again now: Stripe says active, so no new grace.
	w.deliver(failed, testWebhookSecret, time.Now()).MustStatus(t, 200)
	check("late failure after payment", "pro", "active", func(b api.Billing) bool { return b.GraceUntil == nil })

	// Upgraded in the portal: the plan follows the price.
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_business", end, false))
	w.send(t, "customer.subscription.updated", subscription(s.sub, s.customer, "active", "price_business", end, false))
	check("upgrade", "business", "active", nil)
	// Cancelled in the portal: the plan runs to the period's end.
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_business", end, true))
	w.send(t, "customer.subscription.updated", subscription(s.sub, s.customer, "active", "price_business", end, true))
	check("cancel at period end", "business", "active", func(b api.Billing) bool { return b.CancelAtPeriodEnd && b.CurrentPeriodEnd.Equal(end) })
	// Paused, resumed.
	w.stripeHas(subscription(s.sub, s.customer, "paused", "price_business", end, false))
	w.send(t, "customer.subscription.paused", subscription(s.sub, s.customer, "paused", "price_business", end, false))
	check("paused", "free", "paused", nil)
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_business", end, false))
	w.send(t, "customer.subscription.resumed", subscription(s.sub, s.customer, "active", "price_business", end, false))
	check("resumed", "business", "active", nil)
	// The period ends: Stripe deletes the subscription; back to Free.
	w.stripeHas(subscription(s.sub, s.customer, "canceled", "price_business", end, false))
	deleted := w.payload(t, "customer.subscription.deleted", subscription(s.sub, s.customer, "canceled", "price_business", end, false), time.Now())
	w.deliver(deleted, testWebhookSecret, time.Now()).MustStatus(t, 200)
	check("subscription deleted", "free", "canceled", func(b api.Billing) bool {
		return b.SubscriptionID == nil && b.CurrentPeriodEnd == nil && len(b.PaidPlans) == 2
	})
	// Three apps stay registered on Free's one-app plan; new ones are a
	// plain plan limit now.
	w.Do(request{Method: "POST", Path: "/api/v1/apps", Token: s.Token, Body: api.AppInput{Name: "four"}}).
		MustHaveError(t, wantErr{Status: 403, Code: api.CodePlanLimit})

	// Subscribed anew: the old subscription's deletion, replayed, does
	// not touch the new one.
	sub2 := s.sub + "b"
	w.stripeHas(subscription(sub2, s.customer, "active", "price_pro", end, false))
	w.send(t, "customer.subscription.created", subscription(sub2, s.customer, "active", "price_pro", end, false))
	check("new subscription", "pro", "active", nil)
	w.deliver(deleted, testWebhookSecret, time.Now()).MustStatus(t, 200)
	check("old subscription's deletion replayed", "pro", "active", func(b api.Billing) bool { return *b.SubscriptionID == sub2 })

	// A subscription Stripe says belongs to another customer is ignored.
	w.stripeHas(subscription("sub_other", "cus_other", "canceled", "price_pro", end, false))
	if w.send(t, "customer.subscription.deleted", subscription("sub_other", s.customer, "canceled", "price_pro", end, false)) {
		t.Error("an event whose subscription is another customer's was handled")
	}
	// Unknown customers and other event types are acknowledged, not handled.
	if w.send(t, "customer.subscription.updated", subscription(sub2, "cus_unknown", "canceled", "price_pro", end, false)) {
		t.Error("an unknown customer's event was handled")
	}
	if w.send(t, "charge.succeeded", map[string]any{"id": "ch_1", "object": "charge", "customer": s.customer}) {
		t.Error("charge.succeeded was handled")
	}
	check("ignored events", "pro", "active", nil)
	// Stripe unreadable: 502, so Stripe retries later.
	w.sm.Fail("GET", "/v1/subscriptions/"+sub2, true)
	w.deliver(w.payload(t, "invoice.paid", map[string]any{"id": "in_2", "object": "invoice", "customer": s.customer,
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{"subscription": sub2}}}, time.Now()),
		testWebhookSecret, time.Now()).MustHaveError(t, wantErr{Status: 502, Code: api.CodeBillingUnavailable})
	w.sm.Fail("GET", "/v1/subscriptions/"+sub2, false)
	// The customer deleted in Stripe's dashboard: references gone, Free.
	w.send(t, "customer.deleted", map[string]any{"id": s.customer, "object": "customer", "deleted": true})
	check("customer deleted", "free", "canceled", func(b api.Billing) bool { return b.CustomerID == nil && b.SubscriptionID == nil && !b.Portal })
	if logs := w.logs.String(); strings.Contains(logs, s.customer) || strings.Contains(logs, s.Owner.Email) {
		t.Errorf("the log names the customer or the owner:\n%s", logs)
	}
}

// TestStripeComp: a comped owner's plan never follows the subscription;
// ending the comp returns it to what the subscription pays for.
func TestStripeComp(t *testing.T) {
	w := newStripeWorld(t)
	admin := w.MustAdmin()
	s := w.checkout(t, "pro")
	end := time.Now().Add(30 * 24 * time.Hour)
	// Cancelled in the portal and running to its period's end (a
	// subscription that renews refuses the comp: TestStripeCompRefusedWhileSubscribed).
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, true))
	w.send(t, "customer.subscription.created", subscription(s.sub, s.customer, "active", "price_pro", end, true))
	w.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Token: admin.Token,
		Body: api.CompInput{Plan: "business", Reason: "launch partner"}}).MustStatus(t, 200)
	w.stripeHas(subscription(s.sub, s.customer, "canceled", "price_pro", end, false))
	w.send(t, "customer.subscription.deleted", subscription(s.sub, s.customer, "canceled", "price_pro", end, false))
	if b := w.billingOf(t, s.AuthResponse); b.Plan != "business" || b.Status != "canceled" || len(b.PaidPlans) != 0 {
		t.Errorf("comped owner after the subscription ended = %+v; want business, comped", b)
	}
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: s.Token, Body: api.CheckoutInput{Plan: "pro"}}).
		MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})
	// Ending the comp without a subscription: back to Free.
	var b api.Billing
	w.Do(request{Method: "DELETE", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Token: admin.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.Plan != "free" || b.CompReason != nil {
		t.Errorf("after the comp ended = %+v; want free", b)
	}
	// With a live subscription, ending a comp follows it (read from Stripe).
	w.stripeHas(subscription(s.sub+"b", s.customer, "active", "price_pro", end, true))
	w.send(t, "customer.subscription.created", subscription(s.sub+"b", s.customer, "active", "price_pro", end, true))
	w.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Token: admin.Token,
		Body: api.CompInput{Plan: "business", Reason: "launch partner"}}).MustStatus(t, 200)
	w.Do(request{Method: "DELETE", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Token: admin.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.Plan != "pro" || b.Status != "active" || !b.CancelAtPeriodEnd {
		t.Errorf("after the comp ended with a subscription = %+v; want pro", b)
	}
}

// TestStripeDeletion: deleting an account cancels the subscription and
// deletes the customer at Stripe; while Stripe reports an outstanding
// balance, an unpaid invoice or an open dispute, the deletion is held
// (409 legal_hold with the reason), and the hold lifts by itself.
func TestStripeDeletion(t *testing.T) {
	w := newStripeWorld(t)
	s := w.checkout(t, "pro")
	end := time.Now().Add(30 * 24 * time.Hour)
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, false))
	w.send(t, "checkout.session.completed", map[string]any{"id": "cs_1", "object": "checkout.session", "customer": s.customer, "subscription": s.sub})
	del := request{Method: "DELETE", Path: "/api/v1/me", Token: s.Token}
	holdWith := func(what string) {
		t.Helper()
		e := w.Do(del).MustError(t)
		if e.Code != api.CodeLegalHold || !strings.Contains(e.Message, what) {
			t.Errorf("deletion = %+v; want legal_hold naming %q", e, what)
		}
		if w.OwnerCount() == 0 {
			t.Fatal("the account was deleted")
		}
		if n := len(w.requestsTo("DELETE", "/v1/customers/"+s.customer)); n != 0 {
			t.Errorf("the customer was deleted at Stripe while held")
		}
	}
	customer := "/v1/customers/" + s.customer
	w.sm.Set("GET", customer, map[string]any{"balance": 2500, "currency": "eur"})
	holdWith("an outstanding balance of 25.00 EUR")
	w.sm.Set("GET", customer, nil)
	w.sm.Set("GET", "/v1/invoices", map[string]any{"data": []any{
		map[string]any{"id": "in_draft", "object": "invoice", "status": "draft", "amount_remaining": 900, "currency": "eur"},
		map[string]any{"id": "in_open", "object": "invoice", "status": "open", "amount_remaining": 1200, "currency": "eur"},
	}})
	holdWith("an unpaid invoice of 12.00 EUR")
	w.sm.Set("GET", "/v1/invoices", nil)
	w.sm.Set("GET", "/v1/charges", map[string]any{"data": []any{map[string]any{"id": "ch_disputed", "object": "charge", "disputed": true}}})
	w.sm.Set("GET", "/v1/disputes", map[string]any{"data": []any{map[string]any{"id": "dp_1", "object": "dispute", "status": "needs_response", "charge": "ch_disputed"}}})
	holdWith("an open payment dispute")
	if d := w.requestsTo("GET", "/v1/disputes"); len(d) == 0 || d[len(d)-1].Form.Get("charge") != "ch_disputed" {
		t.Errorf("dispute requests = %+v; want one for the disputed charge", d)
	}
	// Stripe settles the dispute (won): the hold lifts by itself.
	w.sm.Set("GET", "/v1/disputes", map[string]any{"data": []any{map[string]any{"id": "dp_1", "object": "dispute", "status": "won", "charge": "ch_disputed"}}})
	// Stripe unreachable: nothing is deleted.
	w.sm.Fail("DELETE", "/v1/subscriptions/"+s.sub, true)
	w.Do(del).MustHaveError(t, wantErr{Status: 502, Code: api.CodeBillingUnavailable})
	if w.OwnerCount() == 0 {
		t.Fatal("the account was deleted although Stripe could not be told")
	}
	w.sm.Fail("DELETE", "/v1/subscriptions/"+s.sub, false)
	w.Do(del).MustStatus(t, 204)
	if n := len(w.requestsTo("DELETE", "/v1/subscriptions/"+s.sub)); n != 2 {
		t.Errorf("subscription cancellations = %d, want 2 (one failed)", n)
	}
	if n := len(w.requestsTo("DELETE", "/v1/customers/"+s.customer)); n != 1 {
		t.Errorf("customer deletions = %d, want 1", n)
	}
	if _, err := w.store.OwnerIDByCustomer(context.Background(), s.customer); err == nil {
		t.Error("the billing row outlived the account")
	}
	// Stripe's later events about the deleted customer are acknowledged.
	if w.send(t, "customer.deleted", map[string]any{"id": s.customer, "object": "customer"}) {
		t.Error("an event about a deleted account was handled")
	}

	// An operator's hold comes first and asks Stripe nothing.
	admin := w.MustAdmin()
	s2 := w.checkout(t, "pro")
	before := len(w.sm.Requests())
	w.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + s2.Owner.ID, Token: admin.Token, Body: map[string]string{"legal_hold": "tax audit"}}).MustStatus(t, 200)
	w.Do(request{Method: "DELETE", Path: "/api/v1/admin/owners/" + s2.Owner.ID, Token: admin.Token}).MustHaveError(t, wantErr{Status: 409, Code: api.CodeLegalHold})
	if after := len(w.sm.Requests()); after != before {
		t.Errorf("an operator's hold still asked Stripe (%d requests)", after-before)
	}
}

// TestStripeThirdParty: with billing stripe, the privacy manifest and the
// privacy page name Stripe and exactly what it receives.
func TestStripeThirdParty(t *testing.T) {
	w := newStripeWorld(t)
	var m api.PrivacyManifest
	w.Do(request{Method: "GET", Path: "/api/v1/privacy"}).MustStatus(t, 200).MustDecode(t, &m)
	var found *api.PrivacyThirdParty
	for i, p := range m.ThirdParties {
		if strings.HasPrefix(p.Name, "Stripe") {
			found = &m.ThirdParties[i]
		}
	}
	if found == nil || found.Receives != billing.Receives {
		t.Fatalf("third parties = %+v; want Stripe receiving %q", m.ThirdParties, billing.Receives)
	}
	tab, ok := manifestTable(m, "owner_billing")
	if !ok || len(tab.Columns) == 0 {
		t.Fatalf("the manifest has no owner_billing table")
	}
	newBrowser(t, w.harness).get("/privacy").mustStatus(t, 200).mustContain(t, "Stripe (stripe.com)", "the plan they choose", "owner_billing")
	// Without billing, no Stripe.
	h := newHarness(t)
	h.Do(request{Method: "GET", Path: "/api/v1/privacy"}).MustStatus(t, 200).MustDecode(t, &m)
	for _, p := range m.ThirdParties {
		if strings.Contains(p.Name, "Stripe") {
			t.Errorf("Stripe listed without billing: %+v", p)
		}
	}
}

func manifestTable(m api.PrivacyManifest, name string) (api.PrivacyTable, bool) {
	for _, t := range m.Tables {
		if t.Name == name {
			return t, true
		}
	}
	return api.PrivacyTable{}, false
}

// TestStripeDashboard: the plan page offers Buy for paid plans, sends the
// browser on to Stripe, shows the subscription and the portal link.
func TestStripeDashboard(t *testing.T) {
	w := newStripeWorld(t)
	b := newBrowser(t, w.harness)
	b.signup(w.NewEmail())
	b.get("/plan").mustStatus(t, 200).mustContain(t, `action="/plan/checkout"`, "Buy Pro", "Buy Business", `id="billing-h"`).
		mustNotContain(t, "Manage billing on Stripe", "Switch to Pro")
	page := b.submit("/plan", "/plan/checkout", url.Values{"plan": {"pro"}}).mustStatus(t, 200).
		mustContain(t, "Continue to Stripe", `data-follow`, "https://checkout.stripe.com/")
	if strings.Contains(page.Body, "<form") && strings.Contains(page.Body, `action="https://`) {
		t.Error("the page posts a form to another origin")
	}
	b.get("/plan?checkout=done").mustContain(t, "Your plan changes as soon as Stripe confirms the payment")
	b.get("/plan?checkout=cancelled").mustContain(t, "nothing was charged")
	owners, err := w.store.ListOwners(context.Background(), "", 10)
	if err != nil || len(owners) != 1 {
		t.Fatalf("owners: %v %v", owners, err)
	}
	bill, _ := w.store.GetBilling(context.Background(), owners[0].ID)
	cus, sub := *bill.CustomerID, "sub_dash"
	end := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	w.stripeHas(subscription(sub, cus, "active", "price_pro", end, false))
	w.send(t, "customer.subscription.created", subscription(sub, cus, "active", "price_pro", end, false))
	b.get("/plan").mustContain(t, "Manage billing on Stripe", "Next renewal", "6 May 2031", "active").mustNotContain(t, "Buy Business")
	b.submit("/plan", "/plan/portal", url.Values{}).mustStatus(t, 200).mustContain(t, "customer portal", "data-follow")
	// Free while subscribed: refused, with the way out.
	b.submit("/plan", "/plan", url.Values{"plan": {"free"}}).mustStatus(t, 409).mustContain(t, "customer portal")
	// The operator's view.
	admin := w.MustAdmin()
	ab := newBrowser(t, w.harness)
	ab.signInAs(admin.Token)
	ab.get("/admin/owners/"+owners[0].ID).mustContain(t, cus, sub, "Renews")
	ab.get("/admin/owners").mustContain(t, "active")
}

// TestBillingAuthzStripe: the billing routes with Stripe on, for the
// credentials that matter: nobody, another owner, an operator.
func TestBillingAuthzStripe(t *testing.T) {
	w := newStripeWorld(t)
	s := w.checkout(t, "pro")
	other := w.MustOwner()
	admin := w.MustAdmin()
	for _, path := range []string{"/api/v1/me/billing/checkout", "/api/v1/me/billing/portal"} {
		w.Do(request{Method: "POST", Path: path, Body: api.CheckoutInput{Plan: "pro"}}).MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
	}
	w.Do(request{Method: "GET", Path: "/api/v1/me/billing"}).MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
	// Each owner sees their own billing only.
	if b := w.billingOf(t, other); b.CustomerID != nil {
		t.Errorf("another owner's billing shows a customer: %+v", b)
	}
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/portal", Token: other.Token}).MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})
	for _, r := range []request{
		{Method: "GET", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing"},
		{Method: "PUT", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Body: api.CompInput{Plan: "pro", Reason: "x"}},
		{Method: "DELETE", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp"},
	} {
		r.Token = other.Token
		w.Do(r).MustHaveError(t, wantErr{Status: 403, Code: api.CodeForbidden})
	}
	var b api.Billing
	w.Do(request{Method: "GET", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing", Token: admin.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.CustomerID == nil || *b.CustomerID != s.customer {
		t.Errorf("operator's view = %+v", b)
	}
	// The webhook is public but signed.
	w.Do(request{Method: "POST", Path: "/api/v1/billing/stripe/webhook", Body: `{}`, Token: admin.Token}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest})
}

// TestStripeDashboardHolds: the dashboard says why, in words: an account
// held to the free plan's limits creating an app, and a deletion Stripe
// holds.
func TestStripeDashboardHolds(t *testing.T) {
	w := newStripeWorld(t)
	b := newBrowser(t, w.harness)
	email := w.NewEmail()
	b.signup(email)
	b.submit("/plan", "/plan/checkout", url.Values{"plan": {"pro"}}).mustStatus(t, 200)
	owners, err := w.store.ListOwners(context.Background(), "", 10)
	if err != nil || len(owners) != 1 {
		t.Fatalf("owners: %v %v", owners, err)
	}
	o := owners[0]
	bill, _ := w.store.GetBilling(context.Background(), o.ID)
	cus := *bill.CustomerID
	end := time.Now().Add(30 * 24 * time.Hour)
	w.stripeHas(subscription("sub_hold", cus, "past_due", "price_pro", end, false))
	w.send(t, "invoice.payment_failed", map[string]any{"id": "in_hold", "object": "invoice", "customer": cus,
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{"subscription": "sub_hold"}}})
	b.get("/plan").mustContain(t, "Payment overdue", "Grace period", "Pro")
	b.submit("/apps", "/apps", url.Values{"name": {"first"}}).mustRedirect(t, "/apps/")
	w.clock.Advance(testGrace + time.Minute)
	if _, err := w.store.EndGracePeriods(context.Background(), w.clock.Now(), "free"); err != nil {
		t.Fatal(err)
	}
	b.get("/plan").mustContain(t, "the grace period has ended")
	b.submit("/apps", "/apps", url.Values{"name": {"second"}}).mustStatus(t, http.StatusPaymentRequired).
		mustContain(t, "Your payment is overdue", "Manage billing on Stripe")
	// Deleting the account while Stripe reports an outstanding balance.
	w.sm.Set("GET", "/v1/customers/"+cus, map[string]any{"balance": 4900, "currency": "eur"})
	b.submit("/account/delete", "/account/delete", url.Values{"confirm": {email}}).mustStatus(t, http.StatusConflict).
		mustContain(t, "an outstanding balance of 49.00 EUR with Stripe")
	w.sm.Set("GET", "/v1/customers/"+cus, nil)
	b.submit("/account/delete", "/account/delete", url.Values{"confirm": {email}}).mustRedirect(t, "/login")
	if w.OwnerCount() != 0 {
		t.Error("the account outlived its deletion")
	}
}
