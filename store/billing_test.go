package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestBillingHoldsToFreeLimits: once a grace period ends unpaid, new apps,
// devices and own pools are refused with ErrPaymentRequired (which is also
// ErrPlanLimit) at the free plan's limits, while the owner stays on the
// paid plan so that the devices already registered keep their pools.
func TestBillingHoldsToFreeLimits(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "payer@example.com", "pro")
		a := MustCreateApp(t, s, o.ID, "first")
		for range plans["free"].MaxDevices {
			MustRegister(t, s, a.ID)
		}
		// Within the grace period, and before it, Pro's limits hold.
		now := time.Now().UTC().Truncate(time.Second)
		grace := now.Add(time.Hour)
		if _, err := s.UpdateBilling(ctx, o.ID, func(b *OwnerBilling, _ Owner) (*PlanMove, error) {
			b.SubscriptionStatus, b.GraceUntil = "past_due", &grace
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.EndGracePeriods(ctx, now, "free"); err != nil || n != 0 {
			t.Fatalf("EndGracePeriods before the deadline = %d, %v; want 0", n, err)
		}
		MustRegister(t, s, a.ID)

		n, err := s.EndGracePeriods(ctx, grace, "free")
		if err != nil || n != 1 {
			t.Fatalf("EndGracePeriods at the deadline = %d, %v; want 1", n, err)
		}
		if n, err := s.EndGracePeriods(ctx, grace.Add(time.Minute), "free"); err != nil || n != 0 {
			t.Fatalf("EndGracePeriods again = %d, %v; want 0 (already held)", n, err)
		}
		_, err = s.RegisterDevice(ctx, a.ID, NewDevice{PublicKey: randomKey(t)})
		if !errors.Is(err, ErrPaymentRequired) || !errors.Is(err, ErrPlanLimit) {
			t.Errorf("RegisterDevice over the free plan = %v, want ErrPaymentRequired", err)
		}
		if _, err := s.CreateApp(ctx, o.ID, "second"); !errors.Is(err, ErrPaymentRequired) {
			t.Errorf("CreateApp over the free plan = %v, want ErrPaymentRequired", err)
		}
		if _, err := s.CreateOwnerPool(ctx, o.ID, Pool{Name: "own", Region: "eu", Country: "DE", City: "Berlin"}); !errors.Is(err, ErrPaymentRequired) {
			t.Errorf("CreateOwnerPool with the free plan's 0 own nodes = %v, want ErrPaymentRequired", err)
		}
		// The owner is still on Pro and every device is still there.
		got, err := s.GetOwner(ctx, o.ID)
		if err != nil || got.PlanID != plans["pro"].ID {
			t.Errorf("owner's plan = %q, %v; want pro's %q (devices keep Pro's pools)", got.PlanID, err, plans["pro"].ID)
		}
		if n := MustCountWhere(t, s, &Device{}, "app_id = ?", a.ID); n != int64(plans["free"].MaxDevices)+1 {
			t.Errorf("devices = %d, want %d", n, plans["free"].MaxDevices+1)
		}

		// Paying again lifts the hold.
		if _, err := s.UpdateBilling(ctx, o.ID, func(b *OwnerBilling, _ Owner) (*PlanMove, error) {
			b.SubscriptionStatus, b.GraceUntil, b.LimitPlanID = "active", nil, nil
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		MustRegister(t, s, a.ID)
		MustCreateApp(t, s, o.ID, "second")
	})
}

// TestBillingPlainLimitIsNotPaymentRequired: an owner who is simply on the
// free plan gets ErrPlanLimit, not ErrPaymentRequired.
func TestBillingPlainLimitIsNotPaymentRequired(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "free@example.com", "free")
		MustCreateApp(t, s, o.ID, "only")
		_, err := s.CreateApp(ctx, o.ID, "second")
		if !errors.Is(err, ErrPlanLimit) || errors.Is(err, ErrPaymentRequired) {
			t.Errorf("CreateApp over the free plan = %v, want ErrPlanLimit only", err)
		}
	})
}

// TestUpdateBilling covers the row's life: created on first use, matched
// by customer, moved between plans without a usage check when asked,
// exported, and deleted with the account.
func TestUpdateBilling(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "sub@example.com", "pro")
		a := MustCreateApp(t, s, o.ID, "app")
		for range plans["free"].MaxDevices + 1 {
			MustRegister(t, s, a.ID)
		}
		b, err := s.GetBilling(ctx, o.ID)
		if err != nil || b.OwnerID != o.ID || b.CustomerID != nil {
			t.Fatalf("GetBilling of a new owner = %+v, %v; want an empty row", b, err)
		}
		if _, err := s.GetBilling(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetBilling(unknown) = %v, want ErrNotFound", err)
		}
		cus, sub := "cus_123", "sub_456"
		end := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
		if _, err := s.UpdateBilling(ctx, o.ID, func(b *OwnerBilling, _ Owner) (*PlanMove, error) {
			b.CustomerID, b.SubscriptionID, b.SubscriptionStatus, b.CurrentPeriodEnd = &cus, &sub, "active", &end
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if id, err := s.OwnerIDByCustomer(ctx, cus); err != nil || id != o.ID {
			t.Errorf("OwnerIDByCustomer = %q, %v; want %q", id, err, o.ID)
		}
		if _, err := s.OwnerIDByCustomer(ctx, "cus_other"); !errors.Is(err, ErrNotFound) {
			t.Errorf("OwnerIDByCustomer(unknown) = %v, want ErrNotFound", err)
		}
		// A checked move over the limits is refused, and nothing is written.
		_, err = s.UpdateBilling(ctx, o.ID, func(b *OwnerBilling, _ Owner) (*PlanMove, error) {
			b.SubscriptionStatus = "canceled"
			return &PlanMove{Slug: "free", CheckUsage: true}, nil
		})
		if !errors.Is(err, ErrPlanLimit) {
			t.Fatalf("checked move over the limits = %v, want ErrPlanLimit", err)
		}
		if b, _ := s.GetBilling(ctx, o.ID); b.SubscriptionStatus != "active" {
			t.Errorf("status after a refused update = %q, want active (rolled back)", b.SubscriptionStatus)
		}
		// Unchecked (a subscription ended): the owner moves and keeps devices.
		if _, err := s.UpdateBilling(ctx, o.ID, func(b *OwnerBilling, _ Owner) (*PlanMove, error) {
			b.SubscriptionID, b.SubscriptionStatus = nil, "canceled"
			return &PlanMove{Slug: "free"}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetOwner(ctx, o.ID); got.PlanID != plans["free"].ID {
			t.Errorf("plan after the subscription ended = %q, want free", got.PlanID)
		}
		if _, err := s.UpdateBilling(ctx, o.ID, func(b *OwnerBilling, _ Owner) (*PlanMove, error) {
			long := string(make([]byte, 600))
			b.CompReason = &long
			return nil, nil
		}); err == nil {
			t.Error("a 600-byte comp reason was stored")
		}
		ex, err := s.ExportOwner(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		rows := ex["owner_billing"]
		if len(rows) != 1 || rows[0]["customer_id"] != cus || rows[0]["subscription_status"] != "canceled" {
			t.Errorf("export of owner_billing = %v", rows)
		}
		if err := s.DeleteOwner(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		if n := MustCountWhere(t, s, &OwnerBilling{}, "owner_id = ?", o.ID); n != 0 {
			t.Errorf("billing rows after account deletion = %d, want 0", n)
		}
	})
}
