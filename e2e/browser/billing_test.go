package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/internal/stripemock"
)

const browserWebhookSecret = "whsec_browser_test"

// TestBrowserPlanBillingNone: without a payment provider, the plan page as
// today (ownerFlow chooses Pro with a click) and, with plan_self_service
// off, a page that says the operator assigns plans and offers no switch;
// the operator comps a plan with a reason on the owner's page.
func TestBrowserPlanBillingNone(t *testing.T) {
	w := newWorldWith(t, worldConfig{options: func(o *controlplane.Options) { o.Billing.OperatorPlansOnly = true }})
	owner := w.newTab(t, "billing-none")
	owner.open("/signup")
	owner.fill("sign up", "signup-email", "assigned@example.org", "signup-password", ownerPassword)
	owner.submit("sign up", `form[action="/signup"]`, http.StatusOK, "/plan?done=welcome")
	owner.mustSee("The operator assigns plans on this server", "Free", "Pro", "Your plan")
	if n := run(owner, "plan forms", chromedp.Evaluate[int](`document.querySelectorAll('form[action="/plan"], form[action="/plan/checkout"]').length`)); n != 0 {
		t.Errorf("%d plan forms on a page where the operator assigns plans", n)
	}
	owner.screenshot("plan-operator-assigned")

	op := w.newTab(t, "billing-none-operator")
	op.open("/login")
	op.fill("sign in", "login-email", operatorEmail, "login-password", operatorPassword)
	op.submit("sign in", `form[action="/login"]`, http.StatusOK, "/admin")
	op.open("/admin/owners")
	op.do("open the owner", chromedp.Click(chromedp.Search(`//a[text()="assigned@example.org"]`)))
	w.waitPathPrefix(op, "/admin/owners/")
	ownerPath := op.path()
	op.mustSee("Billing", "none (plans assigned here)", "Comp this plan")
	op.do("choose Business", chromedp.SetValue(chromedp.ID("comp-comp_plan"), "business"))
	op.fill("comp reason", "comp-comp_reason", "open-source project")
	op.submit("comp", `form[action$="/comp"]`, http.StatusOK, ownerPath+"?done=comp-set")
	op.mustSee("Plan given without charge", "open-source project", "End the comp")
	op.screenshot("owner-comped")

	owner.open("/plan")
	current := run(owner, "current plan", chromedp.Text(chromedp.CSS(`li.plan.current h2`)))
	if !strings.HasPrefix(current, "Business") {
		t.Errorf("current plan after the comp: %q", current)
	}
}

// TestBrowserPlanStripe: with Stripe, the plan page's Buy button sends the
// browser on to Stripe Checkout (a stand-in page on loopback, whose URL
// stripe-mock's session answers through stripemock), the owner comes
// back, Stripe's webhook makes the plan Pro, and the page shows the
// subscription, the next renewal and the way to the customer portal.
func TestBrowserPlanStripe(t *testing.T) {
	sm := stripemock.Start(t)
	// Stripe's pages, played by a loopback server: the browser reaches
	// nothing else.
	var visitsMu sync.Mutex
	var visits []string
	stripePages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		visitsMu.Lock()
		visits = append(visits, r.URL.Path)
		visitsMu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><link rel="icon" href="data:,"><title>Stripe (stand-in)</title></head><body><h1>Stripe stand-in: %s</h1></body></html>`, r.URL.Path)
	}))
	t.Cleanup(stripePages.Close)
	sm.Set("POST", "/v1/checkout/sessions", map[string]any{"url": stripePages.URL + "/c/pay/cs_test_browser"})
	sm.Set("POST", "/v1/billing_portal/sessions", map[string]any{"url": stripePages.URL + "/p/session/test_browser"})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	w := newWorldWith(t, worldConfig{ln: ln, options: func(o *controlplane.Options) {
		o.PublicURL = base
		o.Billing.Stripe = &billing.Config{SecretKey: "sk_test_browser", WebhookSecret: browserWebhookSecret, APIURL: sm.URL,
			Prices: map[string]string{"pro": "price_pro", "business": "price_business"}}
	}})
	tb := w.newTab(t, "billing-stripe")
	tb.open("/signup")
	tb.fill("sign up", "signup-email", "payer@example.org", "signup-password", ownerPassword)
	tb.submit("sign up", `form[action="/signup"]`, http.StatusOK, "/plan?done=welcome")
	tb.mustSee("Billing", "Buy Pro", "Buy Business", "Card data, billing addresses and invoices stay with Stripe")
	tb.screenshot("plan-stripe")

	// Buy Pro: on to Stripe Checkout.
	tb.do("buy Pro", chromedp.Click(chromedp.CSS(`li.plan[data-plan="pro"] form[action="/plan/checkout"] button[type=submit]`)))
	waitLocation(t, tb, stripePages.URL+"/c/pay/cs_test_browser")
	tb.mustSee("Stripe stand-in: /c/pay/cs_test_browser")
	sessions := requestsTo(sm, "POST", "/v1/checkout/sessions")
	if len(sessions) != 1 || sessions[0].Form.Get("line_items[0][price]") != "price_pro" ||
		sessions[0].Form.Get("success_url") != base+"/plan?checkout=done" {
		t.Fatalf("checkout sessions sent to Stripe: %+v", sessions)
	}
	customer := sessions[0].Form.Get("customer")

	// Stripe confirms the payment by webhook; the owner comes back.
	end := time.Now().Add(30 * 24 * time.Hour).UTC()
	sub := map[string]any{"id": "sub_browser", "object": "subscription", "customer": customer, "status": "active",
		"cancel_at_period_end": false, "items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_browser", "object": "subscription_item", "current_period_end": end.Unix(),
			"price": map[string]any{"id": "price_pro", "object": "price"}}}}}
	sm.Set("GET", "/v1/subscriptions/sub_browser", sub)
	sendWebhook(t, base, "checkout.session.completed", map[string]any{"id": "cs_test_browser", "object": "checkout.session",
		"customer": customer, "subscription": "sub_browser", "mode": "subscription"})
	tb.navigate("back from Checkout", http.StatusOK, "/plan?checkout=done", chromedp.Navigate(base+"/plan?checkout=done"))
	tb.mustSee("Thank you", "Your plan", "active", "Next renewal", end.Format("2 Jan 2006"), "Manage billing on Stripe")
	current := run(tb, "current plan", chromedp.Text(chromedp.CSS(`li.plan.current h2`)))
	if !strings.HasPrefix(current, "Pro") {
		t.Errorf("current plan after the payment: %q", current)
	}
	// Subscribed: plans change in the portal, not with a second checkout.
	if n := run(tb, "plan forms", chromedp.Evaluate[int](`document.querySelectorAll('li.plan form').length`)); n != 0 {
		t.Errorf("%d plan forms while subscribed", n)
	}
	tb.mustSee("Change plans in Stripe's customer portal", "Cancel in Stripe's customer portal")
	tb.screenshot("plan-subscribed")

	// The customer portal.
	tb.do("manage billing", chromedp.Click(chromedp.CSS(`form[action="/plan/portal"] button[type=submit]`)))
	waitLocation(t, tb, stripePages.URL+"/p/session/test_browser")
	if portal := requestsTo(sm, "POST", "/v1/billing_portal/sessions"); len(portal) != 1 || portal[0].Form.Get("return_url") != base+"/plan" {
		t.Errorf("portal sessions sent to Stripe: %+v", portal)
	}
	// Cancelled in the portal: the plan runs to the period's end.
	sub["cancel_at_period_end"] = true
	sm.Set("GET", "/v1/subscriptions/sub_browser", sub)
	sendWebhook(t, base, "customer.subscription.updated", sub)
	tb.open("/plan")
	tb.mustSee("Ends, back to the free plan", end.Format("2 Jan 2006"))
	tb.screenshot("plan-cancelled")
	visitsMu.Lock()
	defer visitsMu.Unlock()
	if len(visits) != 2 {
		t.Errorf("visits to Stripe's pages: %v", visits)
	}
}

// waitLocation waits until the tab is at url (app.js follows the link of
// the page that sends the browser on to Stripe).
func waitLocation(t *testing.T, tb *tab, url string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		// The page may be navigating (the page that continues to Stripe
		// does so by itself): the browser then refuses to evaluate
		// ("Inspected target navigated or closed"), which only means
		// "not there yet".
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		loc, err := chromedp.Run(ctx, chromedp.Location())
		cancel()
		if err == nil && loc == url {
			run(tb, "ready", chromedp.Evaluate[string](`document.readyState`))
			tb.clean()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("at %s (%v), want %s; page:\n%s", loc, err, url, tb.text())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitPathPrefix waits until the tab's path starts with prefix and is
// longer than it.
func (w *world) waitPathPrefix(tb *tab, prefix string) {
	tb.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p := tb.path(); strings.HasPrefix(p, prefix) && len(p) > len(prefix) {
			tb.clean()
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("at %s, want %s…", tb.path(), prefix)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func requestsTo(sm *stripemock.Server, method, path string) []stripemock.Request {
	var out []stripemock.Request
	for _, r := range sm.Requests() {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// sendWebhook posts a Stripe event, signed as Stripe signs it, to the
// control plane's webhook.
func sendWebhook(t *testing.T, base, typ string, object map[string]any) {
	t.Helper()
	payload, err := json.Marshal(map[string]any{"id": "evt_" + typ, "object": "event", "api_version": stripe.APIVersion,
		"created": time.Now().Unix(), "type": typ, "data": map[string]any{"object": object}})
	if err != nil {
		t.Fatal(err)
	}
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: browserWebhookSecret})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/api/v1/billing/stripe/webhook", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sp.Header)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"handled":true`) {
		t.Fatalf("webhook %s: %d %s", typ, res.StatusCode, body)
	}
}
