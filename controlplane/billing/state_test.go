package billing

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stripe/stripe-go/v82"

	"github.com/traceless-vpn/traceless/store"
)

func ptr[T any](v T) *T { return &v }

// TestNext is billing's state machine, table-driven: every status Stripe
// reports, comps, a second application (replays), and another
// subscription.
func TestNext(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	end := now.Add(30 * 24 * time.Hour)
	rules := Rules{FreePlan: "free", Grace: 72 * time.Hour}
	sub := func(status string) Subscription {
		return Subscription{ID: "sub_1", CustomerID: "cus_1", Status: status, PlanSlug: "pro", PeriodEnd: end}
	}
	graceEnd := now.Add(72 * time.Hour)
	earlier := now.Add(-time.Hour)
	tests := []struct {
		name    string
		cur     store.OwnerBilling
		sub     Subscription
		want    store.OwnerBilling
		move    *store.PlanMove
		applies bool
	}{
		{"active", store.OwnerBilling{}, sub("active"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "active", CurrentPeriodEnd: &end}, &store.PlanMove{Slug: "pro"}, true},
		{"trialing", store.OwnerBilling{}, sub("trialing"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "trialing", CurrentPeriodEnd: &end}, &store.PlanMove{Slug: "pro"}, true},
		{"active lifts a hold", store.OwnerBilling{SubscriptionID: ptr("sub_1"), GraceUntil: &earlier, LimitPlanID: ptr("p_free")}, sub("active"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "active", CurrentPeriodEnd: &end}, &store.PlanMove{Slug: "pro"}, true},
		{"active with an unknown price keeps the plan", store.OwnerBilling{}, Subscription{ID: "sub_1", Status: "active"},
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "active"}, nil, true},
		{"past_due opens the grace period", store.OwnerBilling{SubscriptionID: ptr("sub_1")}, sub("past_due"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "past_due", CurrentPeriodEnd: &end, GraceUntil: &graceEnd}, nil, true},
		{"past_due again keeps the deadline", store.OwnerBilling{SubscriptionID: ptr("sub_1"), GraceUntil: &earlier}, sub("past_due"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "past_due", CurrentPeriodEnd: &end, GraceUntil: &earlier}, nil, true},
		{"unpaid keeps a hold", store.OwnerBilling{SubscriptionID: ptr("sub_1"), GraceUntil: &earlier, LimitPlanID: ptr("p_free")}, sub("unpaid"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "unpaid", CurrentPeriodEnd: &end, GraceUntil: &earlier, LimitPlanID: ptr("p_free")}, nil, true},
		{"incomplete changes no plan", store.OwnerBilling{}, sub("incomplete"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "incomplete", CurrentPeriodEnd: &end}, nil, true},
		{"canceled returns to free", store.OwnerBilling{SubscriptionID: ptr("sub_1"), GraceUntil: &earlier, LimitPlanID: ptr("p_free"), CancelAtPeriodEnd: true}, sub("canceled"),
			store.OwnerBilling{SubscriptionStatus: "canceled"}, &store.PlanMove{Slug: "free"}, true},
		{"incomplete_expired returns to free", store.OwnerBilling{SubscriptionID: ptr("sub_1")}, sub("incomplete_expired"),
			store.OwnerBilling{SubscriptionStatus: "incomplete_expired"}, &store.PlanMove{Slug: "free"}, true},
		{"paused returns to free and keeps the subscription", store.OwnerBilling{SubscriptionID: ptr("sub_1")}, sub("paused"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "paused"}, &store.PlanMove{Slug: "free"}, true},
		{"comped: active moves nothing", store.OwnerBilling{CompReason: ptr("partner")}, sub("active"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "active", CurrentPeriodEnd: &end, CompReason: ptr("partner")}, nil, true},
		{"comped: canceled moves nothing", store.OwnerBilling{SubscriptionID: ptr("sub_1"), CompReason: ptr("partner")}, sub("canceled"),
			store.OwnerBilling{SubscriptionStatus: "canceled", CompReason: ptr("partner")}, nil, true},
		{"an old subscription's end is ignored", store.OwnerBilling{SubscriptionID: ptr("sub_2"), SubscriptionStatus: "active"}, sub("canceled"),
			store.OwnerBilling{SubscriptionID: ptr("sub_2"), SubscriptionStatus: "active"}, nil, false},
		{"a new live subscription replaces the old", store.OwnerBilling{SubscriptionID: ptr("sub_2"), SubscriptionStatus: "canceled"}, sub("active"),
			store.OwnerBilling{SubscriptionID: ptr("sub_1"), SubscriptionStatus: "active", CurrentPeriodEnd: &end}, &store.PlanMove{Slug: "pro"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.cur
			move, applies := Next(&b, tt.sub, now, rules)
			if applies != tt.applies {
				t.Errorf("applies = %v, want %v", applies, tt.applies)
			}
			if diff := cmp.Diff(tt.move, move); diff != "" {
				t.Errorf("move (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, b); diff != "" {
				t.Errorf("billing row (-want +got):\n%s", diff)
			}
			if !applies {
				return
			}
			// Applying the same state again changes nothing (replays).
			again := b
			move2, _ := Next(&again, tt.sub, now.Add(time.Hour), rules)
			if diff := cmp.Diff(b, again); diff != "" {
				t.Errorf("second application changed the row (-first +second):\n%s", diff)
			}
			if diff := cmp.Diff(move, move2); diff != "" {
				t.Errorf("second application moved differently (-first +second):\n%s", diff)
			}
		})
	}
}

func TestCustomerGone(t *testing.T) {
	rules := Rules{FreePlan: "free"}
	b := store.OwnerBilling{OwnerID: "o", CustomerID: ptr("cus_1"), SubscriptionID: ptr("sub_1"), SubscriptionStatus: "active"}
	if move := CustomerGone(&b, rules); move == nil || move.Slug != "free" || b.CustomerID != nil || b.SubscriptionID != nil || b.OwnerID != "o" {
		t.Errorf("CustomerGone = %+v, %+v", move, b)
	}
	b = store.OwnerBilling{OwnerID: "o", CustomerID: ptr("cus_1"), CompReason: ptr("partner")}
	if move := CustomerGone(&b, rules); move != nil || b.CompReason == nil {
		t.Errorf("comped CustomerGone = %+v, %+v", move, b)
	}
}

// TestDescribe: Stripe's error messages, which may name a customer or an
// email, stay out of the log; its type, code and status are kept.
func TestDescribe(t *testing.T) {
	se := &stripe.Error{Type: stripe.ErrorTypeInvalidRequest, Code: stripe.ErrorCodeResourceMissing, HTTPStatusCode: 404,
		Msg: "No such customer: 'cus_secret' (jane@example.com)"}
	got := Describe(fmt.Errorf("read customer: %w", se))
	if want := "read customer: stripe invalid_request_error resource_missing (HTTP 404)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	if got := Describe(errors.New("read customer: dial tcp: refused")); got != "read customer: dial tcp: refused" {
		t.Errorf("Describe of a network error = %q", got)
	}
}
