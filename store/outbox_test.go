package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestAlertOutbox: deliveries come out per owner and channel in the order
// they were queued; the bound drops the oldest; a replica that takes over
// claims the head row and the one it replaced can no longer finish or
// defer it; rows go when finished and with the account.
func TestAlertOutbox(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		a := MustCreateOwner(t, s, "a@example.com", "")
		b := MustCreateOwner(t, s, "b@example.com", "")
		var ds []AlertDelivery
		for i := range 5 {
			ds = append(ds, AlertDelivery{OwnerID: a.ID, Channel: "webhook", EventID: fmt.Sprintf("a%d", i), Kind: "test", Body: "{}"})
		}
		ds = append(ds, AlertDelivery{OwnerID: b.ID, Channel: "email", EventID: "b0", Kind: "test", Body: "{}"})
		dropped, err := s.QueueAlerts(ctx, ds, 4)
		if err != nil || dropped != 1 {
			t.Fatalf("QueueAlerts = %d, %v; want 1 dropped", dropped, err)
		}
		qs, err := s.AlertQueues(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		want := []AlertQueue{{a.ID, "webhook", 4}, {b.ID, "email", 1}}
		if a.ID > b.ID {
			want[0], want[1] = want[1], want[0]
		}
		if diff := cmp.Diff(want, qs); diff != "" {
			t.Errorf("AlertQueues (-want +got):\n%s", diff)
		}

		// Replica r1 works on the head; r2 takes over.
		d, err := s.ClaimAlertDelivery(ctx, a.ID, "webhook", "r1")
		if err != nil || d.EventID != "a1" {
			t.Fatalf("head = %q, %v; want a1 (a0 was dropped)", d.EventID, err)
		}
		if ok, err := s.DeferAlertDelivery(ctx, d.ID, "r1", 1, time.Now().Add(time.Minute)); !ok || err != nil {
			t.Fatalf("defer by the claimer = %v, %v", ok, err)
		}
		d2, err := s.ClaimAlertDelivery(ctx, a.ID, "webhook", "r2")
		if err != nil || d2.ID != d.ID || d2.Attempts != 1 || d2.RetryAt.Before(time.Now().Add(50*time.Second)) {
			t.Fatalf("take-over claim = %+v, %v; want the same row with its attempts and retry time", d2, err)
		}
		if ok, err := s.FinishAlertDelivery(ctx, d.ID, "r1"); ok || err != nil {
			t.Fatalf("finish by the replaced replica = %v, %v; want false", ok, err)
		}
		if ok, err := s.DeferAlertDelivery(ctx, d.ID, "r1", 2, time.Now()); ok || err != nil {
			t.Fatalf("defer by the replaced replica = %v, %v; want false", ok, err)
		}
		var order []string
		for {
			d, err := s.ClaimAlertDelivery(ctx, a.ID, "webhook", "r2")
			if errors.Is(err, ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			order = append(order, d.EventID)
			if ok, err := s.FinishAlertDelivery(ctx, d.ID, "r2"); !ok || err != nil {
				t.Fatalf("finish = %v, %v", ok, err)
			}
		}
		if diff := cmp.Diff([]string{"a1", "a2", "a3", "a4"}, order); diff != "" {
			t.Errorf("order (-want +got):\n%s", diff)
		}
		if err := s.DeleteOwner(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if n := MustCountWhere(t, s, &AlertDelivery{}, "1 = 1"); n != 0 {
			t.Errorf("%d outbox rows left after delivery and the account's deletion", n)
		}
	})
}

// TestAlertOutboxCommitOrder: while one writer's rows for an owner are
// not yet committed, another writer's rows for that owner wait, so a
// worker never finds a later event at the head and delivers it before an
// earlier one commits. On PostgreSQL the IDs are handed out at insert
// and become visible at commit, in any order, unless writers take turns;
// SQLite's writer is serial already, so this runs on PostgreSQL alone.
func TestAlertOutboxCommitOrder(t *testing.T) {
	func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		a := MustCreateOwner(t, s, "a@example.com", "")
		ev := func(id string) []AlertDelivery {
			return []AlertDelivery{{OwnerID: a.ID, Channel: "webhook", EventID: id, Kind: "test", Body: "{}", QueuedAt: time.Now().UTC(), RetryAt: time.Now().UTC()}}
		}
		// The first writer has inserted its event (it has its ID) and not
		// committed yet.
		tx := s.w.WithContext(ctx).Begin()
		if _, err := queueAlerts(tx, ev("first"), []string{a.ID}, 100); err != nil {
			tx.Rollback()
			t.Fatal(err)
		}
		second := make(chan error, 1)
		go func() {
			_, err := s.QueueAlerts(ctx, ev("second"), 100)
			second <- err
		}()
		time.Sleep(300 * time.Millisecond)
		// A worker looking now must not find the second event.
		head, err := s.ClaimAlertDelivery(ctx, a.ID, "webhook", "r1")
		if err == nil {
			tx.Rollback()
			<-second
			t.Fatalf("while the first event was uncommitted the worker found %q at the head", head.EventID)
		}
		if !errors.Is(err, ErrNotFound) {
			tx.Rollback()
			t.Fatal(err)
		}
		if err := tx.Commit().Error; err != nil {
			t.Fatal(err)
		}
		if err := <-second; err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"first", "second"} {
			d, err := s.ClaimAlertDelivery(ctx, a.ID, "webhook", "r1")
			if err != nil || d.EventID != want {
				t.Fatalf("head = %q, %v; want %q", d.EventID, err, want)
			}
			if ok, err := s.FinishAlertDelivery(ctx, d.ID, "r1"); !ok || err != nil {
				t.Fatalf("finish %q: %v, %v", want, ok, err)
			}
		}
	}(t, MustOpen(t, postgresConfig(t)))
}

// TestAlertOutboxFollowsChannels: events waiting for a channel the owner
// removes or points elsewhere are deleted with the change, in the same
// transaction; the other channel's stay. Kept, they would go to a
// receiver added later, up to the longest retry wait afterwards.
func TestAlertOutboxFollowsChannels(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		a := MustCreateOwner(t, s, "a@example.com", "")
		set := webhookSettings(a.ID)
		set.Email = "alerts@example.com"
		mustPutAlertSettings(t, s, set)
		queue := func() {
			t.Helper()
			var ds []AlertDelivery
			for _, ch := range []string{"webhook", "email"} {
				ds = append(ds, AlertDelivery{OwnerID: a.ID, Channel: ch, EventID: "e-" + ch, Kind: "test", Body: "{}"})
			}
			if _, err := s.QueueAlerts(ctx, ds, 100); err != nil {
				t.Fatal(err)
			}
		}
		pending := func() map[string]int {
			t.Helper()
			qs, err := s.AlertQueues(ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]int{}
			for _, q := range qs {
				out[q.Channel] = q.Pending
			}
			return out
		}
		queue()
		set.Events = "node_offline" // a change that keeps both channels
		mustPutAlertSettings(t, s, set)
		if got := pending(); got["webhook"] != 1 || got["email"] != 1 {
			t.Fatalf("after a change keeping both channels: %v", got)
		}
		set.WebhookURL = "https://other.example.com/hook"
		mustPutAlertSettings(t, s, set)
		if got := pending(); got["webhook"] != 0 || got["email"] != 1 {
			t.Fatalf("after pointing the webhook elsewhere: %v", got)
		}
		queue()
		set.Email = ""
		mustPutAlertSettings(t, s, set)
		if got := pending(); got["webhook"] != 1 || got["email"] != 0 {
			t.Fatalf("after removing the email: %v", got)
		}
	})
}
