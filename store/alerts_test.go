package store

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// alertWorld is two owners on one plan that grants a shared pool, each with
// a dedicated pool of their own, and a third owner on a plan that grants
// nothing.
type alertWorld struct {
	shared, other Pool // other: a shared pool no plan of theirs grants
	a, b, c       Owner
	poolA, poolB  Pool
	sharedPlan    PlanWithPools
}

func newAlertWorld(t *testing.T, s *Store) alertWorld {
	t.Helper()
	ctx := context.Background()
	MustSeedPlans(t, s)
	var w alertWorld
	var err error
	if w.shared, err = s.CreatePool(ctx, Pool{Name: "Frankfurt", Region: "eu", Country: "DE", City: "Frankfurt"}); err != nil {
		t.Fatal(err)
	}
	if w.other, err = s.CreatePool(ctx, Pool{Name: "Paris", Region: "eu", Country: "FR", City: "Paris"}); err != nil {
		t.Fatal(err)
	}
	w.sharedPlan, err = s.CreatePlan(ctx, PlanWithPools{Plan: Plan{Slug: "alerts", Name: "Alerts", MaxApps: 1, MaxDevices: 10, MaxOwnNodes: 2, Currency: "EUR"},
		PoolIDs: []string{w.shared.ID}})
	if err != nil {
		t.Fatal(err)
	}
	w.a = MustCreateOwner(t, s, "a@example.com", "alerts")
	w.b = MustCreateOwner(t, s, "b@example.com", "alerts")
	w.c = MustCreateOwner(t, s, "c@example.com", "pro")
	if w.poolA, err = s.CreateOwnerPool(ctx, w.a.ID, Pool{Name: "home", Region: "home", Country: "NL", City: "Delft"}); err != nil {
		t.Fatal(err)
	}
	if w.poolB, err = s.CreateOwnerPool(ctx, w.b.ID, Pool{Name: "home", Region: "home", Country: "NL", City: "Delft"}); err != nil {
		t.Fatal(err)
	}
	return w
}

func mustPutAlertSettings(tb testing.TB, s *Store, a AlertSettings) {
	tb.Helper()
	if err := s.PutAlertSettings(context.Background(), a); err != nil {
		tb.Fatalf("PutAlertSettings: %v", err)
	}
}

func webhookSettings(ownerID string) AlertSettings {
	return AlertSettings{OwnerID: ownerID, WebhookURL: "https://hooks.example.com/t", WebhookSecret: "tlw_secret",
		Events: "node_offline,node_online", RetentionDays: DefaultRetentionDays}
}

func TestAlertSettingsRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := newAlertWorld(t, s)
		if _, err := s.GetAlertSettings(ctx, w.a.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetAlertSettings before any = %v, want ErrNotFound", err)
		}
		want := webhookSettings(w.a.ID)
		want.Email = "ops@example.com"
		mustPutAlertSettings(t, s, want)
		got, err := s.GetAlertSettings(ctx, w.a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("settings (-want +got):\n%s", diff)
		}
		// Clearing a field really clears it (no zero value is skipped).
		want.Email = ""
		want.Events = ""
		want.KeepHistory = true
		want.RetentionDays = 7
		mustPutAlertSettings(t, s, want)
		if got, _ = s.GetAlertSettings(ctx, w.a.ID); !cmp.Equal(want, got) {
			t.Errorf("after update (-want +got):\n%s", cmp.Diff(want, got))
		}
		// Settings that ask for nothing are not kept.
		mustPutAlertSettings(t, s, AlertSettings{OwnerID: w.a.ID, Events: "node_offline", RetentionDays: 30})
		if _, err := s.GetAlertSettings(ctx, w.a.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("empty settings kept: %v", err)
		}
		if err := s.PutAlertSettings(ctx, webhookSettings("00000000-0000-4000-8000-000000000000")); !errors.Is(err, ErrNotFound) {
			t.Errorf("settings for an unknown owner: %v, want ErrNotFound", err)
		}
	})
}

func TestAlertSettingsValidate(t *testing.T) {
	ok := webhookSettings("o")
	for name, mod := range map[string]func(*AlertSettings){
		"long url":          func(a *AlertSettings) { a.WebhookURL = "https://x.example/" + string(make([]byte, MaxWebhookURL)) },
		"url with space":    func(a *AlertSettings) { a.WebhookURL = "https://x.example/a b" },
		"url without key":   func(a *AlertSettings) { a.WebhookSecret = "" },
		"key without url":   func(a *AlertSettings) { a.WebhookURL = "" },
		"email with CRLF":   func(a *AlertSettings) { a.Email = "a@example.com\r\nBcc: x@example.com" },
		"bad kinds":         func(a *AlertSettings) { a.Events = "node_offline,,x" },
		"retention 0":       func(a *AlertSettings) { a.RetentionDays = 0 },
		"retention 366":     func(a *AlertSettings) { a.RetentionDays = 366 },
		"non-ascii in url":  func(a *AlertSettings) { a.WebhookURL = "https://exämple.com/" },
		"upper-case events": func(a *AlertSettings) { a.Events = "NODE_OFFLINE" },
	} {
		a := ok
		mod(&a)
		var ve *ValidationError
		if err := a.Validate(); !errors.As(err, &ve) {
			t.Errorf("%s: Validate = %v, want a ValidationError", name, err)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid settings: %v", err)
	}
}

func historyEntry(kind, pool, node string, at time.Time) AlertHistory {
	return AlertHistory{Kind: kind, PoolID: pool, PoolName: "Frankfurt", NodeID: node, NodeName: "n1", Detail: "d", OccurredAt: at}
}

func TestAlertHistoryOptIn(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := newAlertWorld(t, s)
		at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
		entries := []AlertHistory{historyEntry("node_offline", w.shared.ID, "n1", at)}

		// No settings, or settings without history: nothing is stored.
		if n, err := s.AddAlertHistory(ctx, w.a.ID, entries); err != nil || n != 0 {
			t.Fatalf("AddAlertHistory without settings = %d, %v; want 0", n, err)
		}
		mustPutAlertSettings(t, s, webhookSettings(w.a.ID))
		if n, err := s.AddAlertHistory(ctx, w.a.ID, entries); err != nil || n != 0 {
			t.Fatalf("AddAlertHistory without opt-in = %d, %v; want 0", n, err)
		}
		if n := MustCount(t, s, &AlertHistory{}); n != 0 {
			t.Fatalf("%d history rows without opt-in", n)
		}

		on := webhookSettings(w.a.ID)
		on.KeepHistory, on.RetentionDays = true, 10
		mustPutAlertSettings(t, s, on)
		for i := range 3 {
			if n, err := s.AddAlertHistory(ctx, w.a.ID, []AlertHistory{historyEntry("node_offline", w.shared.ID, "n1", at.Add(time.Duration(i)*time.Minute))}); err != nil || n != 1 {
				t.Fatalf("AddAlertHistory = %d, %v", n, err)
			}
		}
		page, err := s.ListAlertHistory(ctx, w.a.ID, HistoryCursor{}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 2 || !page[0].OccurredAt.Equal(at.Add(2*time.Minute)) || !page[1].OccurredAt.Equal(at.Add(time.Minute)) {
			t.Fatalf("first page = %+v", page)
		}
		if want := at.Add(2*time.Minute + 10*24*time.Hour); !page[0].ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %v, want %v (occurred + 10 days)", page[0].ExpiresAt, want)
		}
		rest, err := s.ListAlertHistory(ctx, w.a.ID, HistoryCursor{At: page[1].OccurredAt, ID: page[1].ID}, 2)
		if err != nil || len(rest) != 1 || !rest[0].OccurredAt.Equal(at) {
			t.Fatalf("second page = %+v, %v", rest, err)
		}
		if other, _ := s.ListAlertHistory(ctx, w.b.ID, HistoryCursor{}, 10); len(other) != 0 {
			t.Errorf("owner B sees A's history: %+v", other)
		}

		// A shorter retention moves the expiry of what is kept.
		on.RetentionDays = 1
		mustPutAlertSettings(t, s, on)
		page, _ = s.ListAlertHistory(ctx, w.a.ID, HistoryCursor{}, 1)
		if want := at.Add(2*time.Minute + 24*time.Hour); len(page) != 1 || !page[0].ExpiresAt.Equal(want) {
			t.Errorf("after retention 1 day: %+v, want expiry %v", page, want)
		}

		// Opting out deletes the history at once.
		mustPutAlertSettings(t, s, webhookSettings(w.a.ID))
		if n := MustCount(t, s, &AlertHistory{}); n != 0 {
			t.Errorf("%d history rows after opting out", n)
		}
	})
}

// TestAlertHistoryFollowsEvents: the history keeps only the kinds the
// owner subscribed to, as deliveries do; a pool_down reaches the history
// of an owner who asked for node_offline and node_online only if the
// filter is not applied.
func TestAlertHistoryFollowsEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := newAlertWorld(t, s)
		at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
		on := webhookSettings(w.a.ID) // node_offline,node_online
		on.KeepHistory = true
		mustPutAlertSettings(t, s, on)
		n, err := s.AddAlertHistory(ctx, w.a.ID, []AlertHistory{
			historyEntry("node_offline", w.shared.ID, "n1", at),
			{Kind: "pool_down", PoolID: w.shared.ID, PoolName: "Frankfurt", Detail: "no node of the pool is online", OccurredAt: at},
			historyEntry("posture_regressed", w.shared.ID, "n1", at),
			historyEntry("node_online", w.shared.ID, "n1", at.Add(time.Minute)),
		})
		if err != nil || n != 2 {
			t.Fatalf("AddAlertHistory = %d, %v; want 2 (the subscribed kinds)", n, err)
		}
		rows, err := s.ListAlertHistory(ctx, w.a.ID, HistoryCursor{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, r := range rows {
			kinds = append(kinds, r.Kind)
		}
		if diff := cmp.Diff([]string{"node_online", "node_offline"}, kinds); diff != "" {
			t.Errorf("stored kinds (-want +got):\n%s", diff)
		}

		// No kinds subscribed: nothing is kept, even with the opt-in.
		on.Events = ""
		mustPutAlertSettings(t, s, on)
		if n, err := s.AddAlertHistory(ctx, w.a.ID, []AlertHistory{historyEntry("node_offline", w.shared.ID, "n1", at)}); err != nil || n != 0 {
			t.Errorf("AddAlertHistory with no kinds subscribed = %d, %v; want 0", n, err)
		}
	})
}

func TestPurgeAlertHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := newAlertWorld(t, s)
		at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
		for _, o := range []struct {
			id   string
			days int
		}{{w.a.ID, 1}, {w.b.ID, 3}} {
			a := webhookSettings(o.id)
			a.KeepHistory, a.RetentionDays = true, o.days
			mustPutAlertSettings(t, s, a)
			if _, err := s.AddAlertHistory(ctx, o.id, []AlertHistory{historyEntry("node_offline", w.shared.ID, "n1", at)}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.PurgeAlertHistory(ctx, at.Add(24*time.Hour-time.Second)); err != nil || n != 0 {
			t.Fatalf("purge before any expiry = %d, %v", n, err)
		}
		if n, err := s.PurgeAlertHistory(ctx, at.Add(24*time.Hour)); err != nil || n != 1 {
			t.Fatalf("purge after a day = %d, %v; want A's entry", n, err)
		}
		if n := MustCountWhere(t, s, &AlertHistory{}, "owner_id = ?", w.b.ID); n != 1 {
			t.Errorf("B's entry (3 days) purged after one day")
		}
		if n, err := s.DeleteAlertHistory(ctx, w.b.ID); err != nil || n != 1 {
			t.Errorf("DeleteAlertHistory = %d, %v", n, err)
		}
	})
}

func subscriberPools(subs []AlertSubscriber) map[string][]string {
	out := map[string][]string{}
	for _, s := range subs {
		for p := range s.Pools {
			out[s.Settings.OwnerID] = append(out[s.Settings.OwnerID], p)
		}
		sort.Strings(out[s.Settings.OwnerID])
	}
	return out
}

func TestAlertSubscribersIsolation(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := newAlertWorld(t, s)
		for _, o := range []Owner{w.a, w.b, w.c} {
			mustPutAlertSettings(t, s, webhookSettings(o.ID))
		}
		all := []string{w.shared.ID, w.other.ID, w.poolA.ID, w.poolB.ID}
		subs, err := s.AlertSubscribers(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		sorted := func(ids ...string) []string { sort.Strings(ids); return ids }
		want := map[string][]string{
			w.a.ID: sorted(w.shared.ID, w.poolA.ID),
			w.b.ID: sorted(w.shared.ID, w.poolB.ID),
			// C's plan grants no pool and C has no dedicated pool.
		}
		if diff := cmp.Diff(want, subscriberPools(subs)); diff != "" {
			t.Errorf("subscribers (-want +got):\n%s", diff)
		}
		// An operator with alert settings hears of every pool.
		op, err := s.CreateOwner(ctx, Owner{Email: "ops@example.com", PasswordHash: "$argon2id$b", Role: RoleAdmin}, "pro")
		if err != nil {
			t.Fatal(err)
		}
		mustPutAlertSettings(t, s, webhookSettings(op.ID))
		subs, _ = s.AlertSubscribers(ctx, all)
		want[op.ID] = sorted(all...)
		if diff := cmp.Diff(want, subscriberPools(subs)); diff != "" {
			t.Errorf("subscribers with an operator (-want +got):\n%s", diff)
		}
		// A plan that names B's dedicated pool still does not give it to A.
		MustExec(t, s.w, "INSERT INTO plan_pools (plan_id, pool_id) VALUES ('"+w.sharedPlan.ID+"', '"+w.poolB.ID+"')")
		subs, _ = s.AlertSubscribers(ctx, []string{w.poolB.ID})
		if diff := cmp.Diff(map[string][]string{w.b.ID: {w.poolB.ID}, op.ID: {w.poolB.ID}}, subscriberPools(subs)); diff != "" {
			t.Errorf("a plan naming B's pool (-want +got):\n%s", diff)
		}
		// A suspended owner hears nothing.
		if _, err := s.UpdateOwner(ctx, w.a.ID, OwnerUpdate{Status: ptr(StatusSuspended)}); err != nil {
			t.Fatal(err)
		}
		subs, _ = s.AlertSubscribers(ctx, []string{w.poolA.ID, w.shared.ID})
		if _, ok := subscriberPools(subs)[w.a.ID]; ok {
			t.Errorf("suspended owner A still subscribed: %+v", subs)
		}
		pools, err := s.OwnerPoolIDs(ctx, w.b.ID)
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(pools)
		if diff := cmp.Diff(sorted(w.shared.ID, w.poolB.ID), pools); diff != "" {
			t.Errorf("OwnerPoolIDs(B) (-want +got):\n%s", diff)
		}
	})
}

func TestAlertsGoWithTheAccount(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := newAlertWorld(t, s)
		for _, o := range []Owner{w.a, w.b} {
			a := webhookSettings(o.ID)
			a.KeepHistory = true
			mustPutAlertSettings(t, s, a)
			if _, err := s.AddAlertHistory(ctx, o.ID, []AlertHistory{historyEntry("node_offline", w.shared.ID, "n", time.Now())}); err != nil {
				t.Fatal(err)
			}
		}
		ex, err := s.ExportOwner(ctx, w.a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ex["alert_settings"]) != 1 || ex["alert_settings"][0]["webhook_secret"] != Withheld ||
			ex["alert_settings"][0]["webhook_url"] != "https://hooks.example.com/t" {
			t.Errorf("export of alert_settings = %+v", ex["alert_settings"])
		}
		if len(ex["alert_history"]) != 1 {
			t.Errorf("export of alert_history = %+v", ex["alert_history"])
		}
		if err := s.DeleteOwner(ctx, w.a.ID); err != nil {
			t.Fatal(err)
		}
		if n := MustCountWhere(t, s, &AlertSettings{}, "owner_id = ?", w.a.ID); n != 0 {
			t.Errorf("%d alert settings left after deleting the account", n)
		}
		if n := MustCountWhere(t, s, &AlertHistory{}, "owner_id = ?", w.a.ID); n != 0 {
			t.Errorf("%d history rows left after deleting the account", n)
		}
		if n := MustCountWhere(t, s, &AlertHistory{}, "owner_id = ?", w.b.ID); n != 1 {
			t.Errorf("B's history went with A's account")
		}
	})
}
