package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
)

func TestCreateApp(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		a, err := s.CreateApp(ctx, o.ID, "Weather VPN")
		if err != nil {
			t.Fatalf("CreateApp: %v", err)
		}
		if _, err := uuid.Parse(a.ID); err != nil {
			t.Errorf("ID %q is not a UUID: %v", a.ID, err)
		}
		want := App{ID: a.ID, OwnerID: o.ID, Name: "Weather VPN"}
		if diff := cmp.Diff(want, a); diff != "" {
			t.Errorf("CreateApp (-want +got):\n%s", diff)
		}
		got, err := s.GetApp(ctx, o.ID, a.ID)
		if err != nil {
			t.Fatalf("GetApp: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetApp (-want +got):\n%s", diff)
		}

		if _, err := s.CreateApp(ctx, uuid.NewString(), "orphan"); !errors.Is(err, ErrNotFound) {
			t.Errorf("CreateApp(unknown owner) error = %v; want ErrNotFound", err)
		}
		if n := MustCount(t, s, &App{}); n != 1 {
			t.Errorf("%d apps; want 1", n)
		}
	})
}

func TestCreateAppPlanLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		for _, slug := range []string{"free", "pro"} {
			t.Run(slug, func(t *testing.T) {
				limit := plans[slug].MaxApps
				o := MustCreateOwner(t, s, slug+"@example.com", slug)
				for i := range limit {
					MustCreateApp(t, s, o.ID, "app "+string(rune('a'+i)))
				}
				if _, err := s.CreateApp(ctx, o.ID, "one too many"); !errors.Is(err, ErrPlanLimit) {
					t.Errorf("CreateApp beyond max_apps=%d error = %v; want ErrPlanLimit", limit, err)
				}
				if n := MustCountWhere(t, s, &App{}, "owner_id = ?", o.ID); n != int64(limit) {
					t.Errorf("%d apps; want %d", n, limit)
				}
			})
		}
		// Another owner's apps do not count against this owner's limit.
		other := MustCreateOwner(t, s, "other@example.com", "free")
		MustCreateApp(t, s, other.ID, "mine")
	})
}

// TestCreateAppConcurrentLimit checks that owners cannot pass max_apps by
// creating apps in parallel (several control-plane replicas on PostgreSQL).
func TestCreateAppConcurrentLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		limit := plans["pro"].MaxApps
		const workers = 20
		errs := make([]error, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = s.CreateApp(ctx, o.ID, "app")
			}()
		}
		close(start)
		wg.Wait()
		got := map[string]int{}
		for _, err := range errs {
			switch {
			case err == nil:
				got["ok"]++
			case errors.Is(err, ErrPlanLimit):
				got["plan limit"]++
			default:
				t.Errorf("CreateApp: unexpected error %v", err)
			}
		}
		want := map[string]int{"ok": limit, "plan limit": workers - limit}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("outcomes of %d parallel CreateApp (-want +got):\n%s", workers, diff)
		}
		if n := MustCount(t, s, &App{}); n != int64(limit) {
			t.Errorf("%d apps stored; want max_apps=%d", n, limit)
		}
	})
}

// badNames are app (and key) names that must be refused.
var badNames = []struct {
	name, value string
}{
	{"empty", ""},
	{"control character", "my\x07app"},
	{"newline", "my\napp"},
	{"tab", "my\tapp"},
	{"delete", "my\x7fapp"},
	{"C1 control", "my\u0085app"},
	{"bidi override", "my\u202eppa"},
	{"zero-width space", "my\u200bapp"},
	{"byte order mark", "\ufeffapp"},
	{"private use", "app\ue000"},
	{"too long", strings.Repeat("é", 101)},
	{"leading space", " app"},
	{"trailing space", "app "},
	{"only space", "   "},
	{"invalid UTF-8", "app\xff"},
}

func TestCreateAppRejectsNames(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		for _, tt := range badNames {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateApp(ctx, o.ID, tt.value)
				wantValidation(t, err, "name")
				if n := MustCount(t, s, &App{}); n != 0 {
					t.Errorf("%d apps stored after a rejected name; want 0", n)
				}
			})
		}
		// The limit counts runes, not bytes, and such a name round-trips.
		long := strings.Repeat("é", 100)
		a := MustCreateApp(t, s, o.ID, long)
		got, err := s.GetApp(ctx, o.ID, a.ID)
		if err != nil || got.Name != long {
			t.Errorf("GetApp = %q, %v; want the 100-rune name", got.Name, err)
		}
	})
}

func TestRenameApp(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		a := MustCreateApp(t, s, o.ID, "old")
		MustRegister(t, s, a.ID)
		got, err := s.RenameApp(ctx, o.ID, a.ID, "new name")
		if err != nil {
			t.Fatalf("RenameApp: %v", err)
		}
		want := App{ID: a.ID, OwnerID: o.ID, Name: "new name", DeviceCount: 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("RenameApp (-want +got):\n%s", diff)
		}
		for _, tt := range badNames {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.RenameApp(ctx, o.ID, a.ID, tt.value)
				wantValidation(t, err, "name")
				got, err := s.GetApp(ctx, o.ID, a.ID)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("app after a rejected rename (-want +got):\n%s", diff)
				}
			})
		}
		if _, err := s.RenameApp(ctx, o.ID, uuid.NewString(), "x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("RenameApp(unknown app) error = %v; want ErrNotFound", err)
		}
	})
}

func TestListApps(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		alice := MustCreateOwner(t, s, "alice@example.com", "pro")
		bob := MustCreateOwner(t, s, "bob@example.com", "pro")
		if apps, err := s.ListApps(ctx, alice.ID); err != nil || len(apps) != 0 {
			t.Errorf("ListApps of an owner without apps = %v, %v; want none", apps, err)
		}
		// Created out of name order: ListApps sorts by name.
		y := MustCreateApp(t, s, alice.ID, "y")
		x := MustCreateApp(t, s, alice.ID, "x")
		empty := MustCreateApp(t, s, alice.ID, "z-empty")
		z := MustCreateApp(t, s, bob.ID, "bobs")

		xs := []Device{MustRegister(t, s, x.ID), MustRegister(t, s, x.ID), MustRegister(t, s, x.ID)}
		ys := MustRegisterN(t, s, y.ID, 4)
		MustRegisterN(t, s, z.ID, 5)
		if err := s.DeleteDevice(ctx, x.ID, xs[1].ID); err != nil {
			t.Fatalf("DeleteDevice: %v", err)
		}
		if _, err := s.RotateDevice(ctx, y.ID, ys[0].ID, randomKey(t), ""); err != nil {
			t.Fatalf("RotateDevice: %v", err)
		}
		if err := s.DeleteDevice(ctx, y.ID, ys[3].ID); err != nil {
			t.Fatalf("DeleteDevice: %v", err)
		}
		// Rejected registrations leave the counts alone.
		if _, err := s.RegisterDevice(ctx, x.ID, NewDevice{PublicKey: ys[1].PublicKey}); !errors.Is(err, ErrConflict) {
			t.Fatalf("RegisterDevice(known key) error = %v; want ErrConflict", err)
		}

		got, err := s.ListApps(ctx, alice.ID)
		if err != nil {
			t.Fatalf("ListApps: %v", err)
		}
		want := []App{
			{ID: x.ID, OwnerID: alice.ID, Name: "x", DeviceCount: 2},
			{ID: y.ID, OwnerID: alice.ID, Name: "y", DeviceCount: 3},
			{ID: empty.ID, OwnerID: alice.ID, Name: "z-empty", DeviceCount: 0},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListApps(alice) (-want +got):\n%s", diff)
		}
		got, err = s.ListApps(ctx, bob.ID)
		if err != nil {
			t.Fatalf("ListApps: %v", err)
		}
		if diff := cmp.Diff([]App{{ID: z.ID, OwnerID: bob.ID, Name: "bobs", DeviceCount: 5}}, got); diff != "" {
			t.Errorf("ListApps(bob) (-want +got):\n%s", diff)
		}
		if got, err := s.ListApps(ctx, uuid.NewString()); err != nil || len(got) != 0 {
			t.Errorf("ListApps(unknown owner) = %v, %v; want none", got, err)
		}
		MustDeviceCounts(t, s)
	})
}

// TestAppsOfAnotherOwner checks that an owner can neither see nor change
// another owner's app, and that the attempt changes nothing.
func TestAppsOfAnotherOwner(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		alice := MustCreateOwner(t, s, "alice@example.com", "pro")
		mallory := MustCreateOwner(t, s, "mallory@example.com", "pro")
		a := MustCreateApp(t, s, alice.ID, "alice's")
		MustCreateApp(t, s, mallory.ID, "mallory's")
		MustRegisterN(t, s, a.ID, 3)
		if _, err := s.CreateAPIKey(ctx, alice.ID, a.ID, APIKey{Name: "k", Prefix: "tl_abc", Hash: strings.Repeat("a", 64), Scopes: "devices"}); err != nil {
			t.Fatal(err)
		}
		before := MustAllDevices(t, s)
		rev := MustRevision(t, s)
		want := App{ID: a.ID, OwnerID: alice.ID, Name: "alice's", DeviceCount: 3}

		tests := []struct {
			name string
			call func() error
		}{
			{"GetApp", func() error { _, err := s.GetApp(ctx, mallory.ID, a.ID); return err }},
			{"RenameApp", func() error { _, err := s.RenameApp(ctx, mallory.ID, a.ID, "pwned"); return err }},
			{"DeleteApp", func() error { return s.DeleteApp(ctx, mallory.ID, a.ID) }},
			{"ListAPIKeys", func() error { _, err := s.ListAPIKeys(ctx, mallory.ID, a.ID); return err }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(); !errors.Is(err, ErrNotFound) {
					t.Errorf("%s of another owner's app error = %v; want ErrNotFound", tt.name, err)
				}
				got, err := s.GetApp(ctx, alice.ID, a.ID)
				if err != nil {
					t.Fatalf("GetApp by its owner: %v", err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("app after %s by another owner (-want +got):\n%s", tt.name, diff)
				}
				if diff := cmp.Diff(before, MustAllDevices(t, s)); diff != "" {
					t.Errorf("devices after %s by another owner (-want +got):\n%s", tt.name, diff)
				}
				if n := MustCount(t, s, &APIKey{}); n != 1 {
					t.Errorf("%d API keys; want 1", n)
				}
				if got := MustRevision(t, s); got != rev {
					t.Errorf("revision = %d; want %d (unchanged)", got, rev)
				}
			})
		}
	})
}

func TestDeleteApp(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")
		doomed := MustCreateApp(t, s, o.ID, "doomed")
		kept := MustCreateApp(t, s, o.ID, "kept")
		MustRegisterN(t, s, doomed.ID, 4)
		MustRegister(t, s, doomed.ID)
		gone := MustAllDevicesOf(t, s, doomed.ID)
		MustRegisterN(t, s, kept.ID, 2)
		for i, app := range []App{doomed, doomed, kept} {
			hash := strings.Repeat(string(rune('a'+i)), 64)
			if _, err := s.CreateAPIKey(ctx, o.ID, app.ID, APIKey{Name: fmt.Sprintf("k%d", i), Prefix: "tl_x", Hash: hash, Scopes: "devices"}); err != nil {
				t.Fatal(err)
			}
		}
		keptDevices := MustAllDevicesOf(t, s, kept.ID)
		rev := MustRevision(t, s)

		changes := MustRecordChanges(t, s)
		if err := s.DeleteApp(ctx, o.ID, doomed.ID); err != nil {
			t.Fatalf("DeleteApp: %v", err)
		}
		ch := changes.One(t)
		var wantRemoved []string
		for _, d := range gone {
			wantRemoved = append(wantRemoved, d.PublicKey)
		}
		sort.Strings(wantRemoved)
		sort.Strings(ch.Removed)
		if diff := cmp.Diff(Change{Revision: rev + 1, Removed: wantRemoved, OwnerID: o.ID}, ch); diff != "" {
			t.Errorf("DeleteApp Change (-want +got):\n%s", diff)
		}
		if got := MustRevision(t, s); got != rev+1 {
			t.Errorf("revision = %d after DeleteApp; want %d (bumped once)", got, rev+1)
		}
		for _, c := range []struct {
			model any
			where string
		}{{&App{}, "id = ?"}, {&Device{}, "app_id = ?"}, {&APIKey{}, "app_id = ?"}} {
			if n := MustCountWhere(t, s, c.model, c.where, doomed.ID); n != 0 {
				t.Errorf("%d %T rows of the deleted app left; want 0", n, c.model)
			}
		}
		if _, err := s.GetApp(ctx, o.ID, doomed.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetApp(deleted) error = %v; want ErrNotFound", err)
		}

		// The other app is untouched.
		got, err := s.GetApp(ctx, o.ID, kept.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(App{ID: kept.ID, OwnerID: o.ID, Name: "kept", DeviceCount: 2}, got); diff != "" {
			t.Errorf("other app after DeleteApp (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(keptDevices, MustAllDevicesOf(t, s, kept.ID)); diff != "" {
			t.Errorf("other app's devices after DeleteApp (-want +got):\n%s", diff)
		}
		if n := MustCountWhere(t, s, &APIKey{}, "app_id = ?", kept.ID); n != 1 {
			t.Errorf("other app has %d API keys; want 1", n)
		}
		MustDeviceCounts(t, s)

		// A second delete finds nothing and changes nothing.
		if err := s.DeleteApp(ctx, o.ID, doomed.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second DeleteApp error = %v; want ErrNotFound", err)
		}
		if got := MustRevision(t, s); got != rev+1 {
			t.Errorf("revision = %d after a failed DeleteApp; want %d", got, rev+1)
		}

		// Deleting an app without devices removes no key and needs no revision.
		empty := MustCreateApp(t, s, o.ID, "empty")
		changes.Take()
		if err := s.DeleteApp(ctx, o.ID, empty.ID); err != nil {
			t.Fatalf("DeleteApp(empty): %v", err)
		}
		ch = changes.One(t)
		if len(ch.Upserted) != 0 || len(ch.Removed) != 0 {
			t.Errorf("DeleteApp(empty) Change = %+v; want no devices", ch)
		}
		if got := MustRevision(t, s); got != rev+1 {
			t.Errorf("revision = %d after deleting an app without devices; want %d", got, rev+1)
		}
	})
}
