package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/billing"
	"github.com/traceless-vpn/traceless/store"
)

// BillingOptions configure paid plans.
type BillingOptions struct {
	// Stripe turns billing through Stripe on; nil is provider "none":
	// operators assign plans and owners change their own plan freely
	// (unless OperatorPlansOnly).
	Stripe *billing.Config
	// OperatorPlansOnly stops owners changing their own plan; only with
	// provider none.
	OperatorPlansOnly bool
	// Grace is how long after a failed payment the paid plan's limits
	// still hold (7 days when zero).
	Grace time.Duration
	// FreePlan is the slug of the plan a cancelled or unpaid subscription
	// returns the owner to ("free" when empty).
	FreePlan string
}

// billingState is the server's billing: the Stripe client (nil with
// provider none) and its rules.
type billingState struct {
	stripe *billing.Stripe
	rules  billing.Rules
	// mu serialises, on this replica, reading a subscription from Stripe
	// and writing it. (Across replicas, applySubscription reads again
	// after writing until the reading is stable, so the newest wins.)
	mu sync.Mutex
}

// graceSweepEvery is how often grace periods are checked for their end.
const graceSweepEvery = time.Minute

// maxWebhookBytes bounds a webhook's body (Stripe's events are far
// smaller).
const maxWebhookBytes = 512 << 10

func newBillingState(o BillingOptions) (*billingState, error) {
	b := &billingState{rules: billing.Rules{FreePlan: o.FreePlan, Grace: o.Grace}}
	if b.rules.FreePlan == "" {
		b.rules.FreePlan = "free"
	}
	if b.rules.Grace <= 0 {
		b.rules.Grace = 7 * 24 * time.Hour
	}
	if o.Stripe != nil {
		if o.OperatorPlansOnly {
			return nil, errors.New("controlplane: OperatorPlansOnly is for billing without a provider; with Stripe owners buy plans through checkout")
		}
		var err error
		if b.stripe, err = billing.NewStripe(*o.Stripe); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// checkBilling checks, with Stripe, the billing settings against the plan
// catalogue once it is seeded: the free plan (billing_free_plan) must
// exist and be free, and each plan with a Stripe price (stripe_prices)
// must exist and have a price (a retired one may: its subscriptions still
// map to it). The error names the setting. It then logs how many owners
// are on a plan with a price without paying for it (no live subscription,
// no comp): owners who were there before billing went through Stripe,
// whom the operator must comp or move.
func (s *Server) checkBilling(ctx context.Context) error {
	st := s.billing.stripe
	if st == nil {
		return nil
	}
	free := s.billing.rules.FreePlan
	p, err := s.store.GetPlanBySlug(ctx, free)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("billing_free_plan: there is no plan %q", free)
	case err != nil:
		return err
	case p.PriceCents > 0:
		return fmt.Errorf("billing_free_plan: plan %q has a price (%d); unpaid and cancelled subscriptions return owners to it, so it must be free", free, p.PriceCents)
	}
	for _, slug := range st.PlanSlugs() {
		p, err := s.store.GetPlanBySlug(ctx, slug)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("stripe_prices: there is no plan %q", slug)
		case err != nil:
			return err
		case p.PriceCents == 0:
			return fmt.Errorf("stripe_prices: plan %q is free; only plans with a price are bought through Stripe", slug)
		}
	}
	n, err := s.store.CountUnbilled(ctx, billing.LiveStatuses)
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.LogAttrs(ctx, slog.LevelWarn, "billing: owners are on a plan with a price without a subscription or a comp; "+
			"comp their plan or move them (the owners list's Billing column says \"no subscription\")", slog.Int64(logCount, n))
	}
	return nil
}

func (s *Server) billingRoutes(v1 *echo.Group, me *echo.Group, admin *echo.Group) {
	me.GET("/billing", s.handleGetBilling)
	me.POST("/billing/checkout", s.handleCheckout)
	me.POST("/billing/portal", s.handlePortal)
	v1.POST("/billing/stripe/webhook", s.handleStripeWebhook)
	admin.GET("/owners/:owner_id/billing", s.handleAdminGetBilling)
	admin.PUT("/owners/:owner_id/billing/comp", s.handleAdminComp)
	admin.DELETE("/owners/:owner_id/billing/comp", s.handleAdminEndComp)
}

// errBillingUnavailable is what a caller sees when Stripe cannot be
// reached or refuses a request.
var errBillingUnavailable = apiError(http.StatusBadGateway, api.CodeBillingUnavailable, "the payment provider cannot be reached; try again later")

var errNoBilling = apiError(http.StatusNotFound, api.CodeNotFound, "this server has no payment provider: the operator assigns plans")

// billingFailed logs a failed Stripe request (the route and the error,
// which names Stripe's error code, never the owner) and returns what the
// caller sees.
func (s *Server) billingFailed(c echo.Context, err error) error {
	s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "billing request failed",
		slog.String(logRoute, routeOf(c)), slog.String(logError, billing.Describe(err)))
	return errBillingUnavailable
}

// billingView is an owner's plan and billing state.
func (s *Server) billingView(ctx context.Context, o store.Owner) (api.Billing, error) {
	b, err := s.store.GetBilling(ctx, o.ID)
	if err != nil {
		return api.Billing{}, err
	}
	p, err := s.store.GetPlan(ctx, o.PlanID)
	if err != nil {
		return api.Billing{}, err
	}
	v := api.Billing{
		Provider: api.BillingNone, SelfService: !s.opts.Billing.OperatorPlansOnly, Plan: p.Slug, PaidPlans: []string{},
		Status: b.SubscriptionStatus, CustomerID: b.CustomerID, SubscriptionID: b.SubscriptionID,
		CurrentPeriodEnd: b.CurrentPeriodEnd, CancelAtPeriodEnd: b.CancelAtPeriodEnd, GraceUntil: b.GraceUntil,
		PaymentRequired: b.LimitPlanID != nil, CompReason: b.CompReason, CancelledSubscriptionID: b.CancelledSubscriptionID,
	}
	if st := s.billing.stripe; st != nil {
		v.Provider, v.SelfService = api.BillingStripe, true
		v.Portal = b.CustomerID != nil
		if b.CompReason == nil && !billing.Live(b.SubscriptionStatus) {
			if v.PaidPlans, err = s.buyablePlans(ctx); err != nil {
				return api.Billing{}, err
			}
		}
	}
	return v, nil
}

// buyablePlans are the plans checkout sells: those with a Stripe price
// that are not retired, sorted.
func (s *Server) buyablePlans(ctx context.Context) ([]string, error) {
	plans, err := s.store.ListPlans(ctx, false)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, slug := range s.billing.stripe.PlanSlugs() {
		for _, p := range plans {
			if p.Slug == slug && !p.Retired {
				out = append(out, slug)
			}
		}
	}
	return out, nil
}

func (s *Server) handleGetBilling(c echo.Context) error {
	v, err := s.billingView(c.Request().Context(), currentOwner(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// changeOwnPlan is an owner's own plan change (PUT /api/v1/me/plan and
// the dashboard's plan page). With Stripe, a paid plan is bought through
// checkout and a subscription is ended in the customer portal.
func (s *Server) changeOwnPlan(ctx context.Context, o store.Owner, slug string) (store.Owner, error) {
	if s.opts.Billing.OperatorPlansOnly {
		return store.Owner{}, apiError(http.StatusForbidden, api.CodeForbidden, "plans are assigned by the operator on this server")
	}
	if s.billing.stripe != nil {
		p, err := s.store.GetPlanBySlug(ctx, slug)
		if errors.Is(err, store.ErrNotFound) {
			return store.Owner{}, badRequest("plan", "no such plan")
		}
		if err != nil {
			return store.Owner{}, err
		}
		b, err := s.store.GetBilling(ctx, o.ID)
		if err != nil {
			return store.Owner{}, err
		}
		// The same order as checkout's: a comp, then a subscription, then
		// the price, so that PUT /me/plan and checkout answer alike.
		switch {
		case b.CompReason != nil:
			return store.Owner{}, apiError(http.StatusConflict, api.CodeConflict, "the operator gives you your plan; ask them to change it")
		case billing.Live(b.SubscriptionStatus):
			return store.Owner{}, apiError(http.StatusConflict, api.CodeConflict,
				"you have a subscription: change or cancel it in the customer portal (cancelled, your plan returns to the free plan at the end of the paid period)")
		case p.PriceCents > 0 && p.ID != o.PlanID:
			return store.Owner{}, apiError(http.StatusPaymentRequired, api.CodePaymentRequired,
				"%s is a paid plan: buy it through checkout (POST /api/v1/me/billing/checkout)", p.Name)
		}
	}
	return s.store.SetOwnerPlan(ctx, o.ID, slug, false)
}

// checkout opens a Stripe Checkout session for a paid plan and returns
// its URL. The owner's Stripe customer is created the first time, with
// their email only.
func (s *Server) checkout(c echo.Context, slug string) (string, error) {
	st := s.billing.stripe
	if st == nil {
		return "", errNoBilling
	}
	ctx, o := c.Request().Context(), currentOwner(c)
	if slug == "" {
		return "", badRequest("plan", "is required")
	}
	p, err := s.store.GetPlanBySlug(ctx, slug)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && p.Retired):
		return "", badRequest("plan", "no such plan")
	case err != nil:
		return "", err
	case p.PriceCents == 0:
		return "", badRequest("plan", "is free: choose it with PUT /api/v1/me/plan")
	case !st.HasPrice(slug):
		return "", badRequest("plan", "cannot be bought on this server (it has no Stripe price)")
	}
	b, err := s.store.GetBilling(ctx, o.ID)
	if err != nil {
		return "", err
	}
	switch {
	case b.CompReason != nil:
		return "", apiError(http.StatusConflict, api.CodeConflict, "the operator gives you your plan; ask them to change it")
	case billing.Live(b.SubscriptionStatus):
		return "", apiError(http.StatusConflict, api.CodeConflict, "you have a subscription: change or cancel it in the customer portal")
	}
	customer, err := s.ensureCustomer(c, o, b)
	if err != nil {
		return "", err
	}
	// One payable session at a time: the status above stays empty until
	// Stripe's webhook arrives, so an earlier session (another tab, a
	// checkout abandoned and resumed) could be paid besides this one.
	if err := st.ExpireCheckouts(ctx, customer); err != nil {
		return "", s.billingFailed(c, err)
	}
	base := s.publicBase()
	url, err := st.Checkout(ctx, customer, slug, base+"/plan?checkout=done", base+"/plan?checkout=cancelled", s.now())
	if err != nil {
		return "", s.billingFailed(c, err)
	}
	return url, nil
}

// ensureCustomer returns the owner's Stripe customer, creating it the
// first time.
func (s *Server) ensureCustomer(c echo.Context, o store.Owner, b store.OwnerBilling) (string, error) {
	if b.CustomerID != nil {
		return *b.CustomerID, nil
	}
	ctx := c.Request().Context()
	id, err := s.billing.stripe.CreateCustomer(ctx, o.Email)
	if err != nil {
		return "", s.billingFailed(c, err)
	}
	var kept string
	if _, err := s.store.UpdateBilling(ctx, o.ID, func(b *store.OwnerBilling, _ store.Owner) (*store.PlanMove, error) {
		if b.CustomerID == nil { // another request may have made one meanwhile: keep the first
			b.CustomerID = &id
		}
		kept = *b.CustomerID
		return nil, nil
	}); err != nil {
		// Not stored, so never deleted with the account: delete it now.
		s.dropCustomer(ctx, id)
		return "", err
	}
	if kept != id {
		s.dropCustomer(ctx, id)
	}
	return kept, nil
}

// dropCustomer deletes, best effort, a Stripe customer this server made
// but does not keep (its ID could not be stored, or another request's
// customer was kept). A failure is logged (billing.Describe: never the
// customer) for the operator to delete it in Stripe's dashboard.
func (s *Server) dropCustomer(ctx context.Context, id string) {
	// The request may be ending (its context cancelled is why storing
	// failed): the deletion gets its own short deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if err := s.billing.stripe.Close(ctx, id, ""); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "billing: a Stripe customer made for a checkout but not kept could not be deleted; delete customers without an owner in Stripe's dashboard",
			slog.String(logError, billing.Describe(err)))
	}
}

// publicBase is how people reach this server, for Stripe's return links.
func (s *Server) publicBase() string {
	if s.opts.PublicURL != "" {
		return s.opts.PublicURL
	}
	s.mail.baseMu.RLock()
	defer s.mail.baseMu.RUnlock()
	return s.mail.base
}

func (s *Server) handleCheckout(c echo.Context) error {
	var in api.CheckoutInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	url, err := s.checkout(c, in.Plan)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.BillingRedirect{URL: url})
}

// portal opens a Stripe customer-portal session and returns its URL.
func (s *Server) portal(c echo.Context) (string, error) {
	st := s.billing.stripe
	if st == nil {
		return "", errNoBilling
	}
	ctx := c.Request().Context()
	b, err := s.store.GetBilling(ctx, currentOwner(c).ID)
	if err != nil {
		return "", err
	}
	if b.CustomerID == nil {
		return "", apiError(http.StatusConflict, api.CodeConflict, "you have no billing account yet: buy a plan first")
	}
	url, err := st.Portal(ctx, *b.CustomerID, s.publicBase()+"/plan")
	if err != nil {
		return "", s.billingFailed(c, err)
	}
	return url, nil
}

func (s *Server) handlePortal(c echo.Context) error {
	url, err := s.portal(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.BillingRedirect{URL: url})
}

// errNotApplied rolls back a billing update that does not apply.
var errNotApplied = errors.New("billing event does not apply")

// handleStripeWebhook applies a Stripe event. The signature is verified
// first (400 invalid_request otherwise, and nothing is read from the
// body). The subscription the event names is then read from Stripe and
// its current state applied (billing.Next), so a replayed, duplicated or
// late event applies the current state again and changes nothing. Events
// about customers this server does not know, and kinds it does not act
// on, are acknowledged with handled false; a Stripe read that fails
// answers 502 so that Stripe retries.
func (s *Server) handleStripeWebhook(c echo.Context) error {
	st := s.billing.stripe
	if st == nil {
		return errNoBilling
	}
	req := c.Request()
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, maxWebhookBytes))
	if err != nil {
		return apiError(http.StatusRequestEntityTooLarge, api.CodeInvalidRequest, "body larger than %d bytes", maxWebhookBytes)
	}
	ev, handled, err := st.ParseEvent(body, req.Header.Get("Stripe-Signature"))
	if errors.Is(err, billing.ErrSignature) {
		return apiError(http.StatusBadRequest, api.CodeInvalidRequest, "the Stripe-Signature does not verify")
	}
	if errors.Is(err, billing.ErrAPIVersion) {
		// Signed by Stripe, so the operator must hear of it: every event
		// of this endpoint will fail until it is recreated.
		s.log.LogAttrs(req.Context(), slog.LevelWarn, "stripe webhook of another API version refused", slog.String(logError, err.Error()))
		return apiError(http.StatusBadRequest, api.CodeInvalidRequest, "%s", err.Error())
	}
	if err != nil {
		return badRequest("", "not a Stripe event")
	}
	if !handled || ev.CustomerID == "" {
		return c.JSON(http.StatusOK, api.WebhookAck{})
	}
	ctx := req.Context()
	ownerID, err := s.store.OwnerIDByCustomer(ctx, ev.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return c.JSON(http.StatusOK, api.WebhookAck{})
	}
	if err != nil {
		return err
	}
	s.billing.mu.Lock()
	defer s.billing.mu.Unlock()
	switch {
	case ev.Type == "customer.deleted":
		_, err = s.store.UpdateBilling(ctx, ownerID, func(b *store.OwnerBilling, _ store.Owner) (*store.PlanMove, error) {
			return billing.CustomerGone(b, s.billing.rules), nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return c.JSON(http.StatusOK, api.WebhookAck{}) // the account was deleted meanwhile
		}
		if err != nil {
			return err
		}
	case ev.SubscriptionID == "":
		return c.JSON(http.StatusOK, api.WebhookAck{})
	default:
		applied, stripeErr, err := s.applySubscription(ctx, ownerID, ev.CustomerID, ev.SubscriptionID)
		switch {
		case stripeErr != nil:
			return s.billingFailed(c, stripeErr)
		case err != nil:
			return err
		case !applied:
			return c.JSON(http.StatusOK, api.WebhookAck{})
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "billing event applied", slog.String(logEvent, ev.Type))
	return c.JSON(http.StatusOK, api.WebhookAck{Handled: true})
}

// maxReadings bounds how often one event reads its subscription from
// Stripe (see applySubscription).
const maxReadings = 4

// errDuplicate rolls back a billing update whose subscription is not the
// owner's current live one while that one is live too.
type errDuplicate struct{ current string }

func (e errDuplicate) Error() string { return "a second live subscription" }

// applySubscription reads the subscription from Stripe and applies its
// state to the owner's billing (billing.Next), then reads it again and
// applies again until two readings agree (at most maxReadings readings).
// The reading happens outside the database transaction, so another
// replica may commit a newer reading between this one's read and its
// commit; reading again after the commit makes the newest reading win:
// whichever replica commits last, its final reading was taken after its
// own commit.
//
// A live subscription that is not the owner's current one while the
// current one is live too (an owner who paid two checkouts) is cancelled
// at Stripe, once Stripe confirms the current one is still live; when it
// is not, its reading is applied first and the new one then replaces it.
//
// applied is false when the event changes nothing here (another
// customer's subscription, an old subscription's end, a deleted
// account). stripeErr is a failed Stripe request, err a database error.
func (s *Server) applySubscription(ctx context.Context, ownerID, customerID, subID string) (applied bool, stripeErr, err error) {
	st := s.billing.stripe
	var last *billing.Subscription
	refuseDuplicate := true
	for range maxReadings {
		sub, err := st.GetSubscription(ctx, subID)
		if err != nil {
			return false, err, nil
		}
		if sub.CustomerID != "" && sub.CustomerID != customerID {
			return false, nil, nil
		}
		if last != nil && sameReading(*last, sub) {
			return applied, nil, nil
		}
		err = s.applyReading(ctx, ownerID, sub, refuseDuplicate)
		var dup errDuplicate
		switch {
		case errors.As(err, &dup):
			cur, err := st.GetSubscription(ctx, dup.current)
			if err != nil {
				return false, err, nil
			}
			ours := cur.CustomerID == "" || cur.CustomerID == customerID
			if !ours {
				// Stripe says the stored one is another customer's: it is
				// not this owner's to keep, and the new one replaces it.
				refuseDuplicate, last = false, nil
				continue
			}
			if billing.Live(cur.Status) {
				if err := st.CancelSubscription(ctx, sub.ID); err != nil {
					return false, err, nil
				}
				s.log.LogAttrs(ctx, slog.LevelWarn, "billing: an owner's second live subscription was cancelled at Stripe; "+
					"if it was charged, refund it in Stripe's dashboard (the owner's page names it)")
				// Told on the owner's plan page and the operator's owner page.
				id := sub.ID
				if _, err := s.store.UpdateBilling(ctx, ownerID, func(b *store.OwnerBilling, _ store.Owner) (*store.PlanMove, error) {
					b.CancelledSubscriptionID = &id
					return nil, nil
				}); err != nil {
					return false, nil, notFoundIsNotApplied(err)
				}
				return true, nil, nil
			}
			// The current one ended at Stripe and its event has not come
			// (yet): apply its reading, which releases it, and read the new
			// one again.
			if err := s.applyReading(ctx, ownerID, cur, false); err != nil && !errors.Is(err, errNotApplied) {
				return false, nil, notFoundIsNotApplied(err)
			}
			last = nil
			continue
		case errors.Is(err, errNotApplied):
			return applied, nil, nil
		case err != nil:
			return false, nil, notFoundIsNotApplied(err)
		}
		applied, last = true, &sub
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "billing: a subscription kept changing while it was applied; its next event applies it again")
	return applied, nil, nil
}

// sameReading reports whether two readings of a subscription agree.
func sameReading(a, b billing.Subscription) bool {
	return a.ID == b.ID && a.CustomerID == b.CustomerID && a.Status == b.Status && a.PlanSlug == b.PlanSlug &&
		a.PeriodEnd.Equal(b.PeriodEnd) && a.CancelAtPeriodEnd == b.CancelAtPeriodEnd
}

// notFoundIsNotApplied: the account was deleted meanwhile, and the event
// is acknowledged.
func notFoundIsNotApplied(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// applyReading applies one reading of a subscription to the owner's
// billing in one transaction. With refuseDuplicate, a live subscription
// other than the owner's current live one is not applied (errDuplicate).
func (s *Server) applyReading(ctx context.Context, ownerID string, sub billing.Subscription, refuseDuplicate bool) error {
	now := s.now()
	_, err := s.store.UpdateBilling(ctx, ownerID, func(b *store.OwnerBilling, _ store.Owner) (*store.PlanMove, error) {
		if refuseDuplicate && b.SubscriptionID != nil && *b.SubscriptionID != sub.ID &&
			billing.Live(b.SubscriptionStatus) && billing.Live(sub.Status) {
			return nil, errDuplicate{current: *b.SubscriptionID}
		}
		move, applies := billing.Next(b, sub, now, s.billing.rules)
		if !applies {
			return nil, errNotApplied
		}
		return move, nil
	})
	return err
}

// sweepGrace holds owners whose grace period ended unpaid to the free
// plan's limits, every interval until ctx ends.
func (s *Server) sweepGrace(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.store.EndGracePeriods(ctx, s.now(), s.billing.rules.FreePlan); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "ending grace periods failed", slog.String(logError, err.Error()))
		} else if n > 0 {
			s.log.LogAttrs(ctx, slog.LevelInfo, "grace periods ended unpaid: accounts held to the free plan's limits", slog.Int64(logCount, n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// closeBilling is an account deletion's part at Stripe: while Stripe
// reports an outstanding balance, an unpaid invoice or an open dispute,
// the deletion is held (409 legal_hold with the reason), and it goes
// ahead by itself once that is resolved, since Stripe is asked again at
// every attempt. Otherwise the subscription is cancelled and the customer
// deleted at Stripe before the account goes here.
func (s *Server) closeBilling(ctx context.Context, ownerID string) error {
	st := s.billing.stripe
	if st == nil {
		return nil
	}
	b, err := s.store.GetBilling(ctx, ownerID)
	if err != nil || b.CustomerID == nil {
		return err
	}
	reason, err := st.Hold(ctx, *b.CustomerID)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "billing request failed", slog.String(logError, billing.Describe(err)))
		return errBillingUnavailable
	}
	if reason != "" {
		return apiError(http.StatusConflict, api.CodeLegalHold,
			"the account cannot be deleted while Stripe reports %s; it can be deleted once that is settled", reason)
	}
	sub := ""
	if b.SubscriptionID != nil {
		sub = *b.SubscriptionID
	}
	if err := st.Close(ctx, *b.CustomerID, sub); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "billing request failed", slog.String(logError, billing.Describe(err)))
		return errBillingUnavailable
	}
	return nil
}

func (s *Server) handleAdminGetBilling(c echo.Context) error {
	ctx := c.Request().Context()
	o, err := s.store.GetOwner(ctx, c.Param("owner_id"))
	if err != nil {
		return err
	}
	v, err := s.billingView(ctx, o)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// compPlan gives an owner a plan without charge, with the operator's
// reason. While comped, the subscription's state never moves the plan
// and no grace period holds the account.
func (s *Server) compPlan(ctx context.Context, ownerID string, in api.CompInput) (api.Billing, error) {
	switch {
	case in.Plan == "":
		return api.Billing{}, badRequest("plan", "is required")
	case in.Reason == "":
		return api.Billing{}, badRequest("reason", "is required: say why the plan is given without charge")
	}
	if err := s.stopCharges(ctx, ownerID); err != nil {
		return api.Billing{}, err
	}
	reason := in.Reason
	if _, err := s.store.UpdateBilling(ctx, ownerID, func(b *store.OwnerBilling, _ store.Owner) (*store.PlanMove, error) {
		// A comp does not stop Stripe charging: a subscription that renews
		// must be cancelled first (a cancelled one that runs to its
		// period's end charges no more).
		if s.billing.stripe != nil && billing.Live(b.SubscriptionStatus) && !b.CancelAtPeriodEnd {
			return nil, errSubscriptionLive(b.SubscriptionStatus)
		}
		b.CompReason, b.GraceUntil, b.LimitPlanID = &reason, nil, nil
		return &store.PlanMove{Slug: in.Plan, CheckUsage: true}, nil
	}); err != nil {
		var ve *store.ValidationError
		if errors.As(err, &ve) && ve.Field == "comp_reason" {
			return api.Billing{}, badRequest("reason", "must be 1-500 printable characters")
		}
		return api.Billing{}, err
	}
	o, err := s.store.GetOwner(ctx, ownerID)
	if err != nil {
		return api.Billing{}, err
	}
	return s.billingView(ctx, o)
}

// stopCharges prepares a comp with Stripe: the owner's open Checkout
// sessions are expired (one paid during the comp would charge them), and
// Stripe is asked whether a subscription will charge them again, which
// refuses the comp (409 subscription_live): the stored status may not
// know of it yet.
func (s *Server) stopCharges(ctx context.Context, ownerID string) error {
	st := s.billing.stripe
	if st == nil {
		return nil
	}
	b, err := s.store.GetBilling(ctx, ownerID)
	if err != nil || b.CustomerID == nil {
		return err
	}
	if err := st.ExpireCheckouts(ctx, *b.CustomerID); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "billing request failed", slog.String(logError, billing.Describe(err)))
		return errBillingUnavailable
	}
	renewing, err := st.Renewing(ctx, *b.CustomerID)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "billing request failed", slog.String(logError, billing.Describe(err)))
		return errBillingUnavailable
	}
	if renewing != "" {
		return errSubscriptionLive(renewing)
	}
	return nil
}

// errSubscriptionLive refuses a comp while a subscription charges the
// owner.
func errSubscriptionLive(status string) error {
	return apiError(http.StatusConflict, api.CodeSubscriptionLive,
		"the owner has a Stripe subscription (%s) that keeps charging them: it must be cancelled first "+
			"(by the owner in the customer portal, or in Stripe's dashboard), then the plan can be given", status)
}

// endComp ends a comp. With Stripe, the plan follows the subscription
// again (read from Stripe now), or returns to the free plan without one;
// without a provider the plan stays as it is.
func (s *Server) endComp(ctx context.Context, ownerID string) (api.Billing, error) {
	b, err := s.store.GetBilling(ctx, ownerID)
	if err != nil {
		return api.Billing{}, err
	}
	var sub *billing.Subscription
	if st := s.billing.stripe; st != nil && b.SubscriptionID != nil {
		got, err := st.GetSubscription(ctx, *b.SubscriptionID)
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "billing request failed", slog.String(logError, billing.Describe(err)))
			return api.Billing{}, errBillingUnavailable
		}
		sub = &got
	}
	now := s.now()
	if _, err := s.store.UpdateBilling(ctx, ownerID, func(b *store.OwnerBilling, _ store.Owner) (*store.PlanMove, error) {
		// No grace period runs while comped; one from before the comp is
		// over. A payment still overdue opens a new one from now (Next).
		b.CompReason, b.GraceUntil, b.LimitPlanID = nil, nil, nil
		switch {
		case s.billing.stripe == nil:
			return nil, nil
		case sub != nil:
			move, _ := billing.Next(b, *sub, now, s.billing.rules)
			return move, nil
		default:
			return &store.PlanMove{Slug: s.billing.rules.FreePlan}, nil
		}
	}); err != nil {
		return api.Billing{}, err
	}
	o, err := s.store.GetOwner(ctx, ownerID)
	if err != nil {
		return api.Billing{}, err
	}
	return s.billingView(ctx, o)
}

func (s *Server) handleAdminComp(c echo.Context) error {
	var in api.CompInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	v, err := s.compPlan(c.Request().Context(), c.Param("owner_id"), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) handleAdminEndComp(c echo.Context) error {
	v, err := s.endComp(c.Request().Context(), c.Param("owner_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
