package billing

import (
	"time"

	"github.com/traceless-vpn/traceless/store"
)

// Rules are the operator's billing settings that Next applies.
type Rules struct {
	// FreePlan is the slug of the plan owners return to when their
	// subscription ends, and whose limits hold once a grace period ends
	// unpaid.
	FreePlan string
	// Grace is how long after a failed payment the paid plan's limits
	// still hold.
	Grace time.Duration
}

// LiveStatuses are the statuses Live reports.
var LiveStatuses = []string{"active", "trialing", "past_due", "unpaid", "incomplete", "paused"}

// Live reports whether a subscription in this status is, or may again
// be, paid for: an owner with a live subscription does not start another
// checkout.
func Live(status string) bool {
	for _, l := range LiveStatuses {
		if status == l {
			return true
		}
	}
	return false
}

// Next applies sub, a subscription as Stripe reports it now, to b, the
// owner's billing row, and returns the plan to move the owner to (nil:
// none) and whether anything applies at all.
//
// Next is given the subscription's current state, read from Stripe when
// an event arrives, never the event's copy of it. So replays and events
// that arrive out of order apply the same current state again: applying
// it twice changes nothing (a grace period, once opened, keeps its
// deadline), and an old event cannot undo a newer state. An event about
// a subscription other than the owner's current one applies only when
// that subscription is live (the owner subscribed anew); the end of an
// old one does not touch the current one.
//
//   - active, trialing: the subscription's plan; any grace period and
//     hold end.
//   - past_due, unpaid: the plan stays; a grace period of r.Grace opens
//     at now (once). When it ends unpaid, store.EndGracePeriods holds the
//     owner to the free plan's limits.
//   - incomplete: the first payment is pending; nothing changes yet.
//   - canceled, incomplete_expired, paused: back to the free plan.
//
// A comped owner's plan never moves and no grace period opens for them:
// their status is recorded only.
func Next(b *store.OwnerBilling, sub Subscription, now time.Time, r Rules) (move *store.PlanMove, applies bool) {
	if b.SubscriptionID != nil && *b.SubscriptionID != sub.ID && !Live(sub.Status) {
		return nil, false
	}
	comped := b.CompReason != nil
	b.SubscriptionStatus = sub.Status
	b.CancelAtPeriodEnd = sub.CancelAtPeriodEnd
	b.CurrentPeriodEnd = nil
	if !sub.PeriodEnd.IsZero() {
		end := sub.PeriodEnd.UTC()
		b.CurrentPeriodEnd = &end
	}
	id := sub.ID
	b.SubscriptionID = &id
	switch sub.Status {
	case "active", "trialing":
		b.GraceUntil, b.LimitPlanID = nil, nil
		if !comped && sub.PlanSlug != "" {
			return &store.PlanMove{Slug: sub.PlanSlug}, true
		}
	case "past_due", "unpaid":
		if b.GraceUntil == nil && !comped { // ending the comp opens it (from then)
			until := now.UTC().Add(r.Grace).Truncate(time.Second)
			b.GraceUntil = &until
		}
	case "incomplete":
	default: // canceled, incomplete_expired, paused
		b.GraceUntil, b.LimitPlanID, b.CancelAtPeriodEnd, b.CurrentPeriodEnd = nil, nil, false, nil
		if sub.Status != "paused" {
			b.SubscriptionID, b.CancelledSubscriptionID = nil, nil
		}
		if !comped {
			return &store.PlanMove{Slug: r.FreePlan}, true
		}
	}
	return nil, true
}

// CustomerGone applies the deletion of the Stripe customer (by an operator
// in Stripe's dashboard): its references go, and the owner returns to the
// free plan unless comped.
func CustomerGone(b *store.OwnerBilling, r Rules) *store.PlanMove {
	comped := b.CompReason != nil
	*b = store.OwnerBilling{OwnerID: b.OwnerID, CompReason: b.CompReason, SubscriptionStatus: "canceled"}
	if comped {
		return nil
	}
	return &store.PlanMove{Slug: r.FreePlan}
}
