package controlplane

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// TestStripeCheckoutOneOpenSession: before a Checkout session opens, the
// customer's open ones are expired at Stripe, so an owner cannot pay two
// sessions (the guard on a live subscription knows nothing until Stripe's
// webhook arrives), and sessions are payable for 31 minutes, not 24 hours.
func TestStripeCheckoutOneOpenSession(t *testing.T) {
	w := newStripeWorld(t)
	s := w.checkout(t, "pro")
	w.sm.Set("GET", "/v1/checkout/sessions", map[string]any{"has_more": false, "data": []any{
		map[string]any{"id": "cs_open1", "object": "checkout.session", "status": "open"},
		map[string]any{"id": "cs_paid", "object": "checkout.session", "status": "complete"},
	}})
	before := len(w.sm.Requests())
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: s.Token, Body: api.CheckoutInput{Plan: "business"}}).MustStatus(t, 201)
	var order []string
	for _, r := range w.sm.Requests()[before:] {
		order = append(order, r.Method+" "+r.Path)
		if r.Method == "GET" && r.Path == "/v1/checkout/sessions" && (r.Form.Get("customer") != s.customer || r.Form.Get("status") != "open") {
			t.Errorf("sessions listed with %v; want the customer's open ones", r.Form)
		}
	}
	want := []string{"GET /v1/checkout/sessions", "POST /v1/checkout/sessions/cs_open1/expire", "POST /v1/checkout/sessions"}
	if !slices.Equal(order, want) {
		t.Errorf("Stripe requests of the second checkout = %v; want %v (the open session expired first, the paid one left alone)", order, want)
	}
	sessions := w.requestsTo("POST", "/v1/checkout/sessions")
	for _, r := range sessions {
		if got, want := r.Form.Get("expires_at"), harnessStart.Add(31*time.Minute).Unix(); got != strconv.FormatInt(want, 10) {
			t.Errorf("session expires_at = %q, want %d (31 minutes)", got, want)
		}
	}
	// Expiring fails: no new session opens.
	w.sm.Fail("POST", "/v1/checkout/sessions/cs_open1/expire", true)
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: s.Token, Body: api.CheckoutInput{Plan: "pro"}}).
		MustHaveError(t, wantErr{Status: http.StatusBadGateway, Code: api.CodeBillingUnavailable})
	if n := len(w.requestsTo("POST", "/v1/checkout/sessions")); n != len(sessions) {
		t.Errorf("a session opened although the open one could not be expired")
	}
}

// TestStripeDuplicateSubscription: an owner who paid two checkouts keeps
// the first subscription; the second is cancelled at Stripe and the
// operator's log says so without naming anyone. When the first has ended
// at Stripe (its event not yet here), a new one replaces it.
func TestStripeDuplicateSubscription(t *testing.T) {
	w := newStripeWorld(t)
	s := w.checkout(t, "pro")
	end := time.Now().Add(30 * 24 * time.Hour)
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, false))
	w.send(t, "customer.subscription.created", subscription(s.sub, s.customer, "active", "price_pro", end, false))

	dup := s.sub + "dup"
	w.stripeHas(subscription(dup, s.customer, "active", "price_business", end, false))
	if !w.send(t, "checkout.session.completed", map[string]any{"id": "cs_2", "object": "checkout.session", "customer": s.customer, "subscription": dup}) {
		t.Error("the second subscription's checkout was not handled")
	}
	if n := len(w.requestsTo("DELETE", "/v1/subscriptions/"+dup)); n != 1 {
		t.Errorf("cancellations of the second subscription = %d, want 1", n)
	}
	if n := len(w.requestsTo("DELETE", "/v1/subscriptions/"+s.sub)); n != 0 {
		t.Errorf("the first subscription was cancelled")
	}
	b := w.billingOf(t, s.AuthResponse)
	if b.Plan != "pro" || b.Status != "active" || b.SubscriptionID == nil || *b.SubscriptionID != s.sub {
		t.Errorf("billing after a second subscription = %+v; want the first (pro)", b)
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "second live subscription was cancelled at Stripe") {
		t.Error("the log does not tell the operator of the cancelled subscription")
	}
	if strings.Contains(logs, s.customer) || strings.Contains(logs, s.Owner.Email) || strings.Contains(logs, dup) {
		t.Errorf("the log names the owner, their customer or the subscription:\n%s", logs)
	}
	// The owner and the operator are told, naming the cancelled one.
	if b := w.billingOf(t, s.AuthResponse); b.CancelledSubscriptionID == nil || *b.CancelledSubscriptionID != dup {
		t.Errorf("cancelled_subscription_id = %v, want %s", b.CancelledSubscriptionID, dup)
	}
	ob := newBrowser(t, w.harness)
	ob.signInAs(s.Token)
	ob.get("/plan").mustStatus(t, 200).mustContain(t, `id="cancelled-subscription"`, dup, "ask the operator to refund it")
	ab := newBrowser(t, w.harness)
	ab.signInAs(w.MustAdmin().Token)
	ab.get("/admin/owners/"+s.Owner.ID).mustStatus(t, 200).mustContain(t, `id="cancelled-subscription"`, dup, "refund its payment")
	// The cancelled one's end changes nothing.
	w.stripeHas(subscription(dup, s.customer, "canceled", "price_business", end, false))
	w.send(t, "customer.subscription.deleted", subscription(dup, s.customer, "canceled", "price_business", end, false))
	if b := w.billingOf(t, s.AuthResponse); b.Plan != "pro" || *b.SubscriptionID != s.sub {
		t.Errorf("after the second one's end = %+v", b)
	}
	// The first ended at Stripe, its event not arrived: a new one replaces it.
	next := s.sub + "next"
	w.stripeHas(subscription(s.sub, s.customer, "canceled", "price_pro", end, false))
	w.stripeHas(subscription(next, s.customer, "active", "price_business", end, false))
	w.send(t, "customer.subscription.created", subscription(next, s.customer, "active", "price_business", end, false))
	if n := len(w.requestsTo("DELETE", "/v1/subscriptions/"+next)); n != 0 {
		t.Errorf("the subscription that replaces an ended one was cancelled")
	}
	if b := w.billingOf(t, s.AuthResponse); b.Plan != "business" || b.SubscriptionID == nil || *b.SubscriptionID != next || b.CancelledSubscriptionID != nil {
		t.Errorf("after the first ended = %+v; want the new one (business), the notice of the cancelled one gone with the first", b)
	}
	// Stripe says the stored one is another customer's: it is not this
	// owner's to keep, nor to apply here; the new one replaces it.
	last := s.sub + "last"
	w.stripeHas(subscription(next, "cus_someone_else", "active", "price_business", end, false))
	w.stripeHas(subscription(last, s.customer, "active", "price_pro", end, false))
	w.send(t, "customer.subscription.created", subscription(last, s.customer, "active", "price_pro", end, false))
	if n := len(w.requestsTo("DELETE", "/v1/subscriptions/"+last)); n != 0 {
		t.Errorf("the subscription was cancelled because of another customer's")
	}
	if b := w.billingOf(t, s.AuthResponse); b.Plan != "pro" || b.SubscriptionID == nil || *b.SubscriptionID != last {
		t.Errorf("after the stored one proved another customer's = %+v; want the new one (pro)", b)
	}
}

// TestStripeNewestReadingWins: the subscription is read from Stripe
// outside the database transaction, so a replica may commit a reading
// older than one another replica committed meanwhile. Reading again after
// the commit until two readings agree makes the newest win; a
// subscription that keeps changing is read a bounded number of times.
func TestStripeNewestReadingWins(t *testing.T) {
	w := newStripeWorld(t)
	s := w.checkout(t, "pro")
	end := time.Now().Add(30 * 24 * time.Hour)
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, false))
	w.send(t, "customer.subscription.created", subscription(s.sub, s.customer, "active", "price_pro", end, false))
	invoice := map[string]any{"id": "in_1", "object": "invoice", "customer": s.customer,
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{"subscription": s.sub}}}

	// This replica reads past_due; Stripe (and another replica's commit)
	// move on to active before this one commits.
	path := "/v1/subscriptions/" + s.sub
	w.stripeHas(subscription(s.sub, s.customer, "past_due", "price_pro", end, false))
	w.sm.Hook("GET", path, func(n int) {
		if n == 2 {
			w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, false))
		}
	})
	w.send(t, "invoice.payment_failed", invoice)
	if b := w.billingOf(t, s.AuthResponse); b.Status != "active" || b.GraceUntil != nil {
		t.Errorf("billing = %+v; want Stripe's newest reading (active, no grace period)", b)
	}

	// Changing at every reading: at most maxReadings, and the operator is told.
	w.sm.Hook("GET", path, func(n int) {
		status := "active"
		if n%2 == 1 {
			status = "past_due"
		}
		w.stripeHas(subscription(s.sub, s.customer, status, "price_pro", end, false))
	})
	before := len(w.requestsTo("GET", path))
	w.send(t, "invoice.payment_failed", invoice)
	if n := len(w.requestsTo("GET", path)) - before; n != maxReadings {
		t.Errorf("readings of a subscription that keeps changing = %d, want %d", n, maxReadings)
	}
	if !strings.Contains(w.logs.String(), "a subscription kept changing while it was applied") {
		t.Error("the log does not say that the readings never agreed")
	}
}

// TestStripeCompRefusedWhileSubscribed: a comp does not stop Stripe
// charging, so it is refused (409 subscription_live) while the owner's
// subscription renews, and given once it is cancelled (at its period's
// end). No grace period opens while comped; ending the comp opens one
// from then, never one that already ran out during the comp.
func TestStripeCompRefusedWhileSubscribed(t *testing.T) {
	w := newStripeWorld(t)
	admin := w.MustAdmin()
	s := w.checkout(t, "pro")
	end := time.Now().Add(30 * 24 * time.Hour)
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, false))
	w.send(t, "customer.subscription.created", subscription(s.sub, s.customer, "active", "price_pro", end, false))
	comp := request{Method: "PUT", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Token: admin.Token,
		Body: api.CompInput{Plan: "business", Reason: "launch partner"}}
	if e := w.Do(comp).MustError(t); e.Code != api.CodeSubscriptionLive || !strings.Contains(e.Message, "cancelled first") {
		t.Errorf("comp while subscribed = %+v; want 409 subscription_live saying to cancel first", e)
	}
	if b := w.billingOf(t, s.AuthResponse); b.Plan != "pro" || b.CompReason != nil {
		t.Errorf("a refused comp changed the billing: %+v", b)
	}
	// Stripe knows of a renewing subscription whose event has not come:
	// refused too, Stripe being asked, not the stored state.
	other := w.MustOwner()
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: other.Token, Body: api.CheckoutInput{Plan: "pro"}}).MustStatus(t, 201)
	ob, err := w.store.GetBilling(context.Background(), other.Owner.ID)
	if err != nil || ob.CustomerID == nil {
		t.Fatalf("no customer: %v", err)
	}
	w.stripeHas(subscription("sub_unannounced", *ob.CustomerID, "active", "price_pro", end, false))
	openSession := map[string]any{"has_more": false, "data": []any{map[string]any{"id": "cs_pending", "object": "checkout.session", "status": "open"}}}
	w.sm.Set("GET", "/v1/checkout/sessions", openSession)
	otherComp := comp
	otherComp.Path = "/api/v1/admin/owners/" + other.Owner.ID + "/billing/comp"
	if e := w.Do(otherComp).MustError(t); e.Code != api.CodeSubscriptionLive {
		t.Errorf("comp while Stripe has an unannounced subscription = %+v; want 409 subscription_live", e)
	}
	// Its checkout session, still payable, is expired by the attempt.
	if n := len(w.requestsTo("POST", "/v1/checkout/sessions/cs_pending/expire")); n != 1 {
		t.Errorf("expiries of the open checkout session at a comp = %d, want 1", n)
	}
	// Cancelled in the portal, running to its period's end: no more
	// charges, so the comp is given.
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, true))
	w.send(t, "customer.subscription.updated", subscription(s.sub, s.customer, "active", "price_pro", end, true))
	w.Do(comp).MustStatus(t, 200)
	// A failed payment while comped opens no grace period.
	w.stripeHas(subscription(s.sub, s.customer, "past_due", "price_pro", end, true))
	w.send(t, "invoice.payment_failed", map[string]any{"id": "in_c", "object": "invoice", "customer": s.customer,
		"parent": map[string]any{"type": "subscription_details", "subscription_details": map[string]any{"subscription": s.sub}}})
	if b := w.billingOf(t, s.AuthResponse); b.GraceUntil != nil || b.Plan != "business" {
		t.Errorf("comped owner after a failed payment = %+v; want no grace period", b)
	}
	// Long after, the comp ends with the payment still overdue: the grace
	// period starts now, so the owner is not held at once.
	w.clock.Advance(testGrace + time.Hour)
	var b api.Billing
	w.Do(request{Method: "DELETE", Path: "/api/v1/admin/owners/" + s.Owner.ID + "/billing/comp", Token: admin.Token}).MustStatus(t, 200).MustDecode(t, &b)
	if b.GraceUntil == nil || !b.GraceUntil.Equal(w.clock.Now().UTC().Add(testGrace).Truncate(time.Second)) {
		t.Errorf("grace period after the comp ended = %v; want %v", b.GraceUntil, w.clock.Now().Add(testGrace))
	}
	if n, err := w.store.EndGracePeriods(context.Background(), w.clock.Now(), "free"); err != nil || n != 0 {
		t.Errorf("EndGracePeriods right after the comp ended held %d owners (%v); want none", n, err)
	}
}

// TestStripeOwnPlanAnswersLikeCheckout: a subscribed owner asking PUT
// /me/plan for another paid plan hears 409 (use the portal), as checkout
// answers, not 402 (buy it through checkout).
func TestStripeOwnPlanAnswersLikeCheckout(t *testing.T) {
	w := newStripeWorld(t)
	s := w.checkout(t, "pro")
	end := time.Now().Add(30 * 24 * time.Hour)
	w.stripeHas(subscription(s.sub, s.customer, "active", "price_pro", end, false))
	w.send(t, "customer.subscription.created", subscription(s.sub, s.customer, "active", "price_pro", end, false))
	w.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: s.Token, Body: api.PlanChange{Plan: "business"}}).
		MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: s.Token, Body: api.CheckoutInput{Plan: "business"}}).
		MustHaveError(t, wantErr{Status: 409, Code: api.CodeConflict})
}

// TestStripePaidPlansLeaveRetired: paid_plans lists only what checkout
// sells: a retired plan is left out even when it has a Stripe price.
func TestStripePaidPlansLeaveRetired(t *testing.T) {
	w := newStripeWorld(t)
	o := w.MustOwner()
	ctx := context.Background()
	p, err := w.store.GetPlanBySlug(ctx, "business")
	if err != nil {
		t.Fatal(err)
	}
	p.Retired = true
	if _, err := w.store.UpdatePlan(ctx, p); err != nil {
		t.Fatal(err)
	}
	if b := w.billingOf(t, o); !slices.Equal(b.PaidPlans, []string{"pro"}) {
		t.Errorf("paid_plans = %v; want [pro] (business is retired)", b.PaidPlans)
	}
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o.Token, Body: api.CheckoutInput{Plan: "business"}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "plan"})
}

// TestStripeCustomerNotKept: a Stripe customer made for a checkout but not
// stored (the account went meanwhile) is deleted at Stripe; one that lost
// to another request's customer is deleted too, and a failure to delete
// it is logged without naming it.
func TestStripeCustomerNotKept(t *testing.T) {
	w := newStripeWorld(t)
	ctx := context.Background()
	w.sm.Set("POST", "/v1/customers", map[string]any{"id": "cus_made"})
	o := w.MustOwner()
	w.sm.Hook("POST", "/v1/customers", func(int) {
		if err := w.store.DeleteOwner(ctx, o.Owner.ID); err != nil {
			t.Errorf("delete owner: %v", err)
		}
	})
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o.Token, Body: api.CheckoutInput{Plan: "pro"}})
	if n := len(w.requestsTo("DELETE", "/v1/customers/cus_made")); n != 1 {
		t.Errorf("deletions of the customer whose ID could not be stored = %d, want 1", n)
	}

	// Another request's customer stored first: this one's is deleted, and
	// Stripe refusing that is logged.
	o2 := w.MustOwner()
	w.sm.Hook("POST", "/v1/customers", func(int) {
		first := "cus_first"
		if _, err := w.store.UpdateBilling(ctx, o2.Owner.ID, func(b *store.OwnerBilling, _ store.Owner) (*store.PlanMove, error) {
			b.CustomerID = &first
			return nil, nil
		}); err != nil {
			t.Errorf("store the other customer: %v", err)
		}
	})
	w.sm.Fail("DELETE", "/v1/customers/cus_made", true)
	w.Do(request{Method: "POST", Path: "/api/v1/me/billing/checkout", Token: o2.Token, Body: api.CheckoutInput{Plan: "pro"}}).MustStatus(t, 201)
	if n := len(w.requestsTo("DELETE", "/v1/customers/cus_made")); n != 2 {
		t.Errorf("deletions of the losing customer = %d, want 2 in all", n)
	}
	if s := w.requestsTo("POST", "/v1/checkout/sessions"); len(s) == 0 || s[len(s)-1].Form.Get("customer") != "cus_first" {
		t.Errorf("the checkout did not use the customer stored first")
	}
	logs := w.logs.String()
	if !strings.Contains(logs, "a Stripe customer made for a checkout but not kept could not be deleted") {
		t.Error("the failed deletion of a customer not kept is not logged")
	}
	if strings.Contains(logs, "cus_made") || strings.Contains(logs, o2.Owner.Email) {
		t.Errorf("the log names the customer or the owner:\n%s", logs)
	}
}

// TestStripeUnbilledOwners: owners on a plan with a price who pay nothing
// for it (there before billing went through Stripe: no live subscription,
// no comp) are counted in the log at start, naming nobody, and the
// owners list's Billing column says "no subscription" for them.
func TestStripeUnbilledOwners(t *testing.T) {
	w := newStripeWorld(t)
	ctx := context.Background()
	admin := w.MustAdmin()
	before := w.MustOwner() // on Pro from before billing
	if _, err := w.store.SetOwnerPlan(ctx, before.Owner.ID, "pro", false); err != nil {
		t.Fatal(err)
	}
	paying := w.checkout(t, "pro")
	end := time.Now().Add(30 * 24 * time.Hour)
	w.stripeHas(subscription(paying.sub, paying.customer, "active", "price_pro", end, false))
	w.send(t, "customer.subscription.created", subscription(paying.sub, paying.customer, "active", "price_pro", end, false))
	comped := w.MustOwner()
	w.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + comped.Owner.ID + "/billing/comp", Token: admin.Token,
		Body: api.CompInput{Plan: "business", Reason: "partner"}}).MustStatus(t, 200)
	ended := w.checkout(t, "pro") // a billing row, its subscription over, still on Pro
	if _, err := w.store.SetOwnerPlan(ctx, ended.Owner.ID, "pro", false); err != nil {
		t.Fatal(err)
	}
	w.MustOwner() // on Free

	// A restart.
	offset := w.logs.Len()
	if _, err := w.srv.Bootstrap(ctx, "", "", w.ts.URL); err != nil {
		t.Fatal(err)
	}
	logs := w.logs.Since(offset)
	if !strings.Contains(logs, "owners are on a plan with a price without a subscription or a comp") || !strings.Contains(logs, `"count":2`) {
		t.Errorf("the start does not count the 2 owners on a paid plan who pay nothing:\n%s", logs)
	}
	for _, o := range []api.AuthResponse{before, paying.AuthResponse, comped, ended.AuthResponse} {
		if strings.Contains(logs, o.Owner.Email) || strings.Contains(logs, o.Owner.ID) {
			t.Errorf("the log names an owner:\n%s", logs)
		}
	}
	ab := newBrowser(t, w.harness)
	ab.signInAs(admin.Token)
	page := ab.get("/admin/owners").mustStatus(t, 200)
	for _, c := range []struct {
		o    api.AuthResponse
		want bool
	}{{before, true}, {ended.AuthResponse, true}, {paying.AuthResponse, false}, {comped, false}} {
		row := ownerListRow(page.Body, c.o.Owner.Email)
		if got := strings.Contains(row, "no subscription"); got != c.want {
			t.Errorf("owners list row of %s says no subscription: %v, want %v\n%s", c.o.Owner.Email, got, c.want, row)
		}
	}
}

// ownerListRow is the owners list's table row that names email.
func ownerListRow(body, email string) string {
	i := strings.Index(body, email)
	if i < 0 {
		return ""
	}
	start := strings.LastIndex(body[:i], "<tr")
	end := strings.Index(body[i:], "</tr>")
	if start < 0 || end < 0 {
		return ""
	}
	return body[start : i+end]
}
