package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"
)

// Receives says exactly what Stripe receives from this installation, for
// the privacy manifest's third parties.
const Receives = "for each owner who starts a checkout: their account email (Stripe's customer record, for receipts), " +
	"the plan they choose (its Stripe price) and this server's return links; later the requests that open the customer portal, " +
	"cancel the subscription and delete the customer when the account is deleted, and read whether a balance or a dispute is open. " +
	"Card data, billing addresses and invoices are entered on Stripe's own pages and never pass through this server. " +
	"Nothing about end users or their devices is sent"

// Config configures the Stripe client.
type Config struct {
	// SecretKey is the API key (sk_live_… or sk_test_…).
	SecretKey string
	// WebhookSecret is the signing secret of the webhook endpoint (whsec_…).
	WebhookSecret string
	// Prices maps plan slugs to Stripe price IDs (price_…).
	Prices map[string]string
	// APIURL is Stripe's API base URL; empty for Stripe itself (tests point
	// it at stripe-mock).
	APIURL string
	// HTTPClient makes the requests; a client with a 20 s timeout when nil.
	HTTPClient *http.Client
}

// Stripe is a client for the Stripe calls billing makes.
type Stripe struct {
	c             *stripe.Client
	webhookSecret string
	prices        map[string]string // slug -> price
	plans         map[string]string // price -> slug
}

// NewStripe checks cfg and returns a client.
func NewStripe(cfg Config) (*Stripe, error) {
	switch {
	case cfg.SecretKey == "":
		return nil, errors.New("billing: the Stripe secret key is required")
	case cfg.WebhookSecret == "":
		return nil, errors.New("billing: the Stripe webhook signing secret is required")
	case len(cfg.Prices) == 0:
		return nil, errors.New("billing: no plan has a Stripe price")
	}
	s := &Stripe{webhookSecret: cfg.WebhookSecret, prices: map[string]string{}, plans: map[string]string{}}
	for slug, price := range cfg.Prices {
		if slug == "" || price == "" {
			return nil, fmt.Errorf("billing: price %q for plan %q: both are required", price, slug)
		}
		if other, dup := s.plans[price]; dup {
			return nil, fmt.Errorf("billing: price %s is given to plans %s and %s", price, other, slug)
		}
		s.prices[slug], s.plans[price] = price, slug
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	bc := &stripe.BackendConfig{
		HTTPClient:        hc,
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull}, // the control plane logs what it decides to
		MaxNetworkRetries: stripe.Int64(2),
		EnableTelemetry:   stripe.Bool(false),
	}
	if cfg.APIURL != "" {
		bc.URL = stripe.String(strings.TrimSuffix(cfg.APIURL, "/"))
	}
	s.c = stripe.NewClient(cfg.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))
	return s, nil
}

// PlanSlugs returns the slugs of the plans that have a price, sorted.
func (s *Stripe) PlanSlugs() []string {
	out := make([]string, 0, len(s.prices))
	for slug := range s.prices {
		out = append(out, slug)
	}
	sort.Strings(out)
	return out
}

// HasPrice reports whether the plan can be bought.
func (s *Stripe) HasPrice(slug string) bool { _, ok := s.prices[slug]; return ok }

// CreateCustomer creates the Stripe customer of an owner, with their email
// and nothing else, and returns its ID.
func (s *Stripe) CreateCustomer(ctx context.Context, email string) (string, error) {
	c, err := s.c.V1Customers.Create(ctx, &stripe.CustomerCreateParams{Email: stripe.String(email)})
	if err != nil {
		return "", fmt.Errorf("create customer: %w", err)
	}
	return c.ID, nil
}

// CheckoutLifetime is how long a Checkout session can be paid: Stripe's
// minimum (30 minutes, instead of its default of 24 hours) and a minute
// more, so that a clock a little behind Stripe's is not refused. An
// abandoned session cannot be paid a day later, after the owner
// subscribed another way.
const CheckoutLifetime = 31 * time.Minute

// maxOpenCheckouts bounds the open sessions ExpireCheckouts reads.
const maxOpenCheckouts = 100

// ExpireCheckouts expires the customer's open Checkout sessions, so that
// none of them can be paid any more: called before a new one is opened,
// so an owner has one payable session at a time. A session that is no
// longer open (paid or expired meanwhile) is not an error.
func (s *Stripe) ExpireCheckouts(ctx context.Context, customerID string) error {
	var open []string
	for cs, err := range s.c.V1CheckoutSessions.List(ctx, &stripe.CheckoutSessionListParams{
		Customer: stripe.String(customerID), Status: stripe.String(string(stripe.CheckoutSessionStatusOpen)),
	}) {
		if err != nil {
			return fmt.Errorf("list checkout sessions: %w", err)
		}
		if cs.Status == stripe.CheckoutSessionStatusOpen {
			open = append(open, cs.ID)
		}
		if len(open) >= maxOpenCheckouts {
			break
		}
	}
	for _, id := range open {
		if _, err := s.c.V1CheckoutSessions.Expire(ctx, id, nil); err != nil && !gone(err) {
			return fmt.Errorf("expire checkout session: %w", err)
		}
	}
	return nil
}

// Checkout opens a Checkout session for the plan's price, payable until
// now plus CheckoutLifetime, and returns its URL, where the owner pays.
func (s *Stripe) Checkout(ctx context.Context, customerID, planSlug, successURL, cancelURL string, now time.Time) (string, error) {
	price, ok := s.prices[planSlug]
	if !ok {
		return "", fmt.Errorf("plan %q has no Stripe price", planSlug)
	}
	cs, err := s.c.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{
		Mode:       stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		Customer:   stripe.String(customerID),
		LineItems:  []*stripe.CheckoutSessionCreateLineItemParams{{Price: stripe.String(price), Quantity: stripe.Int64(1)}},
		SuccessURL: stripe.String(successURL),
		CancelURL:  stripe.String(cancelURL),
		ExpiresAt:  stripe.Int64(now.Add(CheckoutLifetime).Unix()),
	})
	if err != nil {
		return "", fmt.Errorf("create checkout session: %w", err)
	}
	if cs.URL == "" {
		return "", errors.New("create checkout session: Stripe answered no URL")
	}
	return cs.URL, nil
}

// Portal opens a customer-portal session and returns its URL, where the
// owner changes their card, sees invoices and cancels.
func (s *Stripe) Portal(ctx context.Context, customerID, returnURL string) (string, error) {
	ps, err := s.c.V1BillingPortalSessions.Create(ctx, &stripe.BillingPortalSessionCreateParams{
		Customer: stripe.String(customerID), ReturnURL: stripe.String(returnURL),
	})
	if err != nil {
		return "", fmt.Errorf("create portal session: %w", err)
	}
	if ps.URL == "" {
		return "", errors.New("create portal session: Stripe answered no URL")
	}
	return ps.URL, nil
}

// Subscription is what billing reads of a Stripe subscription.
type Subscription struct {
	ID, CustomerID string
	// Status is Stripe's: active, trialing, past_due, unpaid, incomplete,
	// incomplete_expired, canceled or paused.
	Status string
	// PlanSlug is the plan of its price; empty when the price is none of
	// this installation's.
	PlanSlug          string
	PeriodEnd         time.Time // zero when Stripe gives none
	CancelAtPeriodEnd bool
}

// GetSubscription reads a subscription's current state from Stripe.
func (s *Stripe) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	sub, err := s.c.V1Subscriptions.Retrieve(ctx, id, nil)
	if err != nil {
		return Subscription{}, fmt.Errorf("read subscription: %w", err)
	}
	return s.subscription(sub), nil
}

func (s *Stripe) subscription(sub *stripe.Subscription) Subscription {
	out := Subscription{ID: sub.ID, Status: string(sub.Status), CancelAtPeriodEnd: sub.CancelAtPeriodEnd}
	if sub.Customer != nil {
		out.CustomerID = sub.Customer.ID
	}
	if sub.Items != nil {
		for _, it := range sub.Items.Data {
			if it == nil {
				continue
			}
			if it.Price != nil && out.PlanSlug == "" {
				out.PlanSlug = s.plans[it.Price.ID]
			}
			if it.CurrentPeriodEnd > 0 && (out.PeriodEnd.IsZero() || time.Unix(it.CurrentPeriodEnd, 0).Before(out.PeriodEnd)) {
				out.PeriodEnd = time.Unix(it.CurrentPeriodEnd, 0).UTC()
			}
		}
	}
	return out
}

// Event is a verified webhook event, reduced to what billing acts on.
type Event struct {
	ID, Type string
	// CustomerID and SubscriptionID are the objects the event is about;
	// either may be empty.
	CustomerID, SubscriptionID string
}

// ErrSignature is a webhook whose signature does not verify (wrong secret,
// altered body, or older than Stripe's five-minute tolerance).
var ErrSignature = errors.New("webhook signature does not verify")

// ErrAPIVersion is a signed event of a Stripe API version other than the
// one stripe-go speaks (APIVersion's release train): the webhook endpoint
// must be created in Stripe with APIVersion.
var ErrAPIVersion = errors.New("the event's Stripe API version is not " + stripe.APIVersion +
	": create the webhook endpoint in Stripe with API version " + stripe.APIVersion)

// APIVersion is the Stripe API version the webhook endpoint must use.
const APIVersion = stripe.APIVersion

// Handled are the event types billing acts on; others are acknowledged and
// ignored.
var Handled = []string{
	"checkout.session.completed",
	"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted",
	"customer.subscription.paused", "customer.subscription.resumed",
	"invoice.paid", "invoice.payment_failed",
	"customer.deleted",
}

// ParseEvent verifies a webhook's signature (webhook.ConstructEvent: the
// signing secret, the body, and a timestamp within five minutes) and
// returns the event. handled is false for types billing ignores.
func (s *Stripe) ParseEvent(payload []byte, signature string) (ev Event, handled bool, err error) {
	e, err := webhook.ConstructEvent(payload, signature, s.webhookSecret)
	if err != nil {
		if errors.Is(err, webhook.ErrInvalidHeader) || errors.Is(err, webhook.ErrNoValidSignature) ||
			errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrTooOld) {
			return Event{}, false, ErrSignature
		}
		if strings.HasPrefix(err.Error(), "Received event with API version") { // signed, but another release train
			return Event{}, false, ErrAPIVersion
		}
		return Event{}, false, fmt.Errorf("webhook: %w", err)
	}
	ev = Event{ID: e.ID, Type: string(e.Type)}
	for _, t := range Handled {
		handled = handled || t == ev.Type
	}
	if !handled || e.Data == nil {
		return ev, false, nil
	}
	raw := e.Data.Raw
	switch {
	case ev.Type == "checkout.session.completed":
		var cs stripe.CheckoutSession
		if err := json.Unmarshal(raw, &cs); err != nil {
			return ev, false, fmt.Errorf("webhook %s: %w", ev.Type, err)
		}
		if cs.Customer != nil {
			ev.CustomerID = cs.Customer.ID
		}
		if cs.Subscription != nil {
			ev.SubscriptionID = cs.Subscription.ID
		}
	case strings.HasPrefix(ev.Type, "customer.subscription."):
		var sub stripe.Subscription
		if err := json.Unmarshal(raw, &sub); err != nil {
			return ev, false, fmt.Errorf("webhook %s: %w", ev.Type, err)
		}
		ev.SubscriptionID = sub.ID
		if sub.Customer != nil {
			ev.CustomerID = sub.Customer.ID
		}
	case strings.HasPrefix(ev.Type, "invoice."):
		var inv stripe.Invoice
		if err := json.Unmarshal(raw, &inv); err != nil {
			return ev, false, fmt.Errorf("webhook %s: %w", ev.Type, err)
		}
		if inv.Customer != nil {
			ev.CustomerID = inv.Customer.ID
		}
		if inv.Parent != nil && inv.Parent.SubscriptionDetails != nil && inv.Parent.SubscriptionDetails.Subscription != nil {
			ev.SubscriptionID = inv.Parent.SubscriptionDetails.Subscription.ID
		}
	case ev.Type == "customer.deleted":
		var c stripe.Customer
		if err := json.Unmarshal(raw, &c); err != nil {
			return ev, false, fmt.Errorf("webhook %s: %w", ev.Type, err)
		}
		ev.CustomerID = c.ID
	}
	return ev, true, nil
}

// maxListed bounds the charges and invoices Hold reads.
const maxListed = 100

// Hold returns why the customer's account must not be deleted now, or ""
// when nothing holds it: Stripe reports an outstanding balance, an open
// invoice with an amount due, or an open dispute on one of the customer's
// charges. A deleted or unknown customer holds nothing.
func (s *Stripe) Hold(ctx context.Context, customerID string) (string, error) {
	c, err := s.c.V1Customers.Retrieve(ctx, customerID, nil)
	var se *stripe.Error
	if errors.As(err, &se) && se.HTTPStatusCode == http.StatusNotFound {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read customer: %w", err)
	}
	if c.Deleted {
		return "", nil
	}
	if c.Balance > 0 {
		return fmt.Sprintf("an outstanding balance of %s with Stripe", money(c.Balance, string(c.Currency))), nil
	}
	n := 0
	for inv, err := range s.c.V1Invoices.List(ctx, &stripe.InvoiceListParams{Customer: stripe.String(customerID), Status: stripe.String("open")}) {
		if err != nil {
			return "", fmt.Errorf("list invoices: %w", err)
		}
		if inv.Status == stripe.InvoiceStatusOpen && inv.AmountRemaining > 0 {
			return fmt.Sprintf("an unpaid invoice of %s with Stripe", money(inv.AmountRemaining, string(inv.Currency))), nil
		}
		if n++; n >= maxListed {
			break
		}
	}
	n = 0
	for ch, err := range s.c.V1Charges.List(ctx, &stripe.ChargeListParams{Customer: stripe.String(customerID)}) {
		if err != nil {
			return "", fmt.Errorf("list charges: %w", err)
		}
		if ch.Disputed {
			open, err := s.openDispute(ctx, ch.ID)
			if err != nil {
				return "", err
			}
			if open {
				return "an open payment dispute with Stripe", nil
			}
		}
		if n++; n >= maxListed {
			break
		}
	}
	return "", nil
}

func (s *Stripe) openDispute(ctx context.Context, chargeID string) (bool, error) {
	n := 0
	for d, err := range s.c.V1Disputes.List(ctx, &stripe.DisputeListParams{Charge: stripe.String(chargeID)}) {
		if err != nil {
			return false, fmt.Errorf("list disputes: %w", err)
		}
		switch d.Status {
		case stripe.DisputeStatusWarningNeedsResponse, stripe.DisputeStatusWarningUnderReview,
			stripe.DisputeStatusNeedsResponse, stripe.DisputeStatusUnderReview:
			return true, nil
		}
		if n++; n >= maxListed {
			break
		}
	}
	return false, nil
}

// money formats an amount in the currency's smallest unit.
func money(amount int64, currency string) string {
	return fmt.Sprintf("%d.%02d %s", amount/100, amount%100, strings.ToUpper(currency))
}

// maxSubscriptions bounds the subscriptions Renewing reads.
const maxSubscriptions = 100

// Renewing returns the status of the customer's subscription that is
// live and not cancelled at its period's end (one that will charge
// again), or "" when none is. Stripe is asked, not the stored state, which lags behind its
// webhooks.
func (s *Stripe) Renewing(ctx context.Context, customerID string) (string, error) {
	n := 0
	for sub, err := range s.c.V1Subscriptions.List(ctx, &stripe.SubscriptionListParams{Customer: stripe.String(customerID)}) {
		if err != nil {
			return "", fmt.Errorf("list subscriptions: %w", err)
		}
		got := s.subscription(sub)
		if (got.CustomerID == "" || got.CustomerID == customerID) && Live(got.Status) && !got.CancelAtPeriodEnd {
			return got.Status, nil
		}
		if n++; n >= maxSubscriptions {
			break
		}
	}
	return "", nil
}

// CancelSubscription cancels a subscription at once. An already
// cancelled or unknown subscription is not an error.
func (s *Stripe) CancelSubscription(ctx context.Context, id string) error {
	if _, err := s.c.V1Subscriptions.Cancel(ctx, id, nil); err != nil && !gone(err) {
		return fmt.Errorf("cancel subscription: %w", err)
	}
	return nil
}

// Close cancels the subscription at once (when there is one) and deletes
// the customer at Stripe: what an account's deletion asks of Stripe. An
// already cancelled subscription or deleted customer is not an error.
func (s *Stripe) Close(ctx context.Context, customerID, subscriptionID string) error {
	if subscriptionID != "" {
		_, err := s.c.V1Subscriptions.Cancel(ctx, subscriptionID, nil)
		if err != nil && !gone(err) {
			return fmt.Errorf("cancel subscription: %w", err)
		}
	}
	if _, err := s.c.V1Customers.Delete(ctx, customerID, nil); err != nil && !gone(err) {
		return fmt.Errorf("delete customer: %w", err)
	}
	return nil
}

// gone reports whether Stripe answered that the object no longer exists
// (or a subscription is already cancelled).
func gone(err error) bool {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.HTTPStatusCode == http.StatusNotFound ||
		(se.Code == stripe.ErrorCodeResourceMissing) ||
		strings.Contains(se.Msg, "canceled subscription")
}

// Describe is err for the log: what failed and, for an error Stripe
// answered, its type, code and HTTP status, never its message (which may
// name a customer, an email or a card).
func Describe(err error) string {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return err.Error()
	}
	what := strings.TrimSuffix(strings.TrimSuffix(err.Error(), se.Error()), ": ")
	out := fmt.Sprintf("stripe %s", se.Type)
	if se.Code != "" {
		out += " " + string(se.Code)
	}
	out += fmt.Sprintf(" (HTTP %d)", se.HTTPStatusCode)
	if what != "" {
		out = what + ": " + out
	}
	return out
}
