package store

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"gorm.io/gorm"
)

func TestCreateOwner(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		before := time.Now().Add(-time.Second)
		o, err := s.CreateOwner(ctx, Owner{Email: "a@example.com", PasswordHash: "$argon2id$a", Role: RoleOwner, AcceptedPolicyVersion: "2024-01"}, "")
		if err != nil {
			t.Fatalf("CreateOwner: %v", err)
		}
		if o.CreatedAt.Before(before) || o.CreatedAt.After(time.Now()) {
			t.Errorf("CreatedAt = %v; want about now", o.CreatedAt)
		}
		want := Owner{ID: o.ID, Email: "a@example.com", PasswordHash: "$argon2id$a", Role: RoleOwner,
			PlanID: plans["free"].ID, Status: StatusActive, AcceptedPolicyVersion: "2024-01", CreatedAt: o.CreatedAt}
		if diff := cmp.Diff(want, o); diff != "" {
			t.Errorf("CreateOwner with the default plan (-want +got):\n%s", diff)
		}
		for name, get := range map[string]func() (Owner, error){
			"GetOwner":        func() (Owner, error) { return s.GetOwner(ctx, o.ID) },
			"GetOwnerByEmail": func() (Owner, error) { return s.GetOwnerByEmail(ctx, "a@example.com") },
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		}

		admin, err := s.CreateOwner(ctx, Owner{Email: "ops@example.com", PasswordHash: "$argon2id$b", Role: RoleAdmin}, "business")
		if err != nil {
			t.Fatal(err)
		}
		if admin.PlanID != plans["business"].ID {
			t.Errorf("PlanID = %q; want business %q", admin.PlanID, plans["business"].ID)
		}
		if n, err := s.CountAdmins(ctx); err != nil || n != 1 {
			t.Errorf("CountAdmins = %d, %v; want 1, nil", n, err)
		}
		if _, err := s.GetOwner(ctx, uuid.NewString()); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetOwner(unknown) error = %v; want ErrNotFound", err)
		}
		if _, err := s.GetOwnerByEmail(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetOwnerByEmail(unknown) error = %v; want ErrNotFound", err)
		}
	})
}

func TestCreateOwnerRejects(t *testing.T) {
	tests := []struct {
		name  string
		owner Owner
		plan  string
		field string
	}{
		{"unknown plan", Owner{Email: "b@example.com", PasswordHash: "h", Role: RoleOwner}, "nope", "plan"},
		{"retired plan", Owner{Email: "b@example.com", PasswordHash: "h", Role: RoleOwner}, "pro", "plan"},
		{"no email", Owner{PasswordHash: "h", Role: RoleOwner}, "", "email"},
		{"long email", Owner{Email: strings.Repeat("e", 250) + "@x.io", PasswordHash: "h", Role: RoleOwner}, "", "email"},
		{"no password", Owner{Email: "b@example.com", Role: RoleOwner}, "", "password"},
		{"bad role", Owner{Email: "b@example.com", PasswordHash: "h", Role: "root"}, "", "role"},
		{"bad status", Owner{Email: "b@example.com", PasswordHash: "h", Role: RoleOwner, Status: "deleted"}, "", "status"},
		{"bad legal hold", Owner{Email: "b@example.com", PasswordHash: "h", Role: RoleOwner, LegalHold: ptr("dispute\u202e")}, "", "legal_hold"},
	}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		pro := plans["pro"]
		pro.Retired = true
		if _, err := s.UpdatePlan(ctx, pro); err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateOwner(ctx, tt.owner, tt.plan)
				wantValidation(t, err, tt.field)
				if n := MustCount(t, s, &Owner{}); n != 0 {
					t.Errorf("%d owners stored after a rejected CreateOwner; want 0", n)
				}
			})
		}
	})
}

func TestCreateOwnerDuplicateEmail(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		MustSeedPlans(t, s)
		MustCreateOwner(t, s, "a@example.com", "")
		_, err := s.CreateOwner(context.Background(), Owner{Email: "a@example.com", PasswordHash: "h2", Role: RoleOwner}, "pro")
		if !errors.Is(err, ErrConflict) {
			t.Errorf("CreateOwner(duplicate email) error = %v; want ErrConflict", err)
		}
		if n := MustCount(t, s, &Owner{}); n != 1 {
			t.Errorf("%d owners; want 1", n)
		}
	})
}

func TestSetOwnerPlan(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "pro")

		// Two apps: more than free allows (1).
		a := MustInsertApp(t, s, o.ID, "one")
		MustInsertApp(t, s, o.ID, "two")
		if _, err := s.SetOwnerPlan(ctx, o.ID, "free", false); !errors.Is(err, ErrPlanLimit) {
			t.Errorf("SetOwnerPlan(free with 2 apps) error = %v; want ErrPlanLimit", err)
		}
		MustOwnerPlan(t, s, o.ID, plans["pro"].ID)

		// One app but eleven devices: more than free allows (10).
		if err := s.w.Where("owner_id = ? AND id <> ?", o.ID, a.ID).Delete(&App{}).Error; err != nil {
			t.Fatal(err)
		}
		for i := range 11 {
			MustInsertDevice(t, s, a.ID, i)
		}
		if _, err := s.SetOwnerPlan(ctx, o.ID, "free", false); !errors.Is(err, ErrPlanLimit) {
			t.Errorf("SetOwnerPlan(free with 11 devices) error = %v; want ErrPlanLimit", err)
		}
		MustOwnerPlan(t, s, o.ID, plans["pro"].ID)

		// Ten devices fit.
		if err := s.w.Where("revision = ?", 11).Delete(&Device{}).Error; err != nil {
			t.Fatal(err)
		}
		got, err := s.SetOwnerPlan(ctx, o.ID, "free", false)
		if err != nil {
			t.Fatalf("SetOwnerPlan(free with 1 app, 10 devices): %v", err)
		}
		if got.PlanID != plans["free"].ID {
			t.Errorf("returned PlanID = %q; want free", got.PlanID)
		}
		MustOwnerPlan(t, s, o.ID, plans["free"].ID)

		// Retired plans only when allowed.
		business := plans["business"]
		business.Retired = true
		if _, err := s.UpdatePlan(ctx, business); err != nil {
			t.Fatal(err)
		}
		_, err = s.SetOwnerPlan(ctx, o.ID, "business", false)
		wantValidation(t, err, "plan")
		if _, err := s.SetOwnerPlan(ctx, o.ID, "business", true); err != nil {
			t.Errorf("SetOwnerPlan(retired, allowed): %v", err)
		}
		MustOwnerPlan(t, s, o.ID, plans["business"].ID)

		_, err = s.SetOwnerPlan(ctx, o.ID, "nope", true)
		wantValidation(t, err, "plan")
		if _, err := s.SetOwnerPlan(ctx, uuid.NewString(), "free", false); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetOwnerPlan(unknown owner) error = %v; want ErrNotFound", err)
		}
	})
}

// MustOwnerPlan fails unless the stored owner is on planID.
func MustOwnerPlan(tb testing.TB, s *Store, ownerID, planID string) {
	tb.Helper()
	o, err := s.GetOwner(context.Background(), ownerID)
	if err != nil {
		tb.Fatal(err)
	}
	if o.PlanID != planID {
		tb.Errorf("owner's plan = %q; want %q", o.PlanID, planID)
	}
}

func TestBumpTokenEpoch(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "")
		other := MustCreateOwner(t, s, "b@example.com", "")
		for want := int64(1); want <= 3; want++ {
			if err := s.BumpTokenEpoch(ctx, o.ID); err != nil {
				t.Fatalf("BumpTokenEpoch: %v", err)
			}
			got, err := s.GetOwner(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.TokenEpoch != want {
				t.Errorf("TokenEpoch = %d; want %d", got.TokenEpoch, want)
			}
		}
		if got, _ := s.GetOwner(ctx, other.ID); got.TokenEpoch != 0 {
			t.Errorf("another owner's TokenEpoch = %d; want 0", got.TokenEpoch)
		}
		if err := s.BumpTokenEpoch(ctx, uuid.NewString()); !errors.Is(err, ErrNotFound) {
			t.Errorf("BumpTokenEpoch(unknown) error = %v; want ErrNotFound", err)
		}
	})
}

func TestUpdateOwner(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		plans := MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "")

		hold := "chargeback dispute #42"
		got, err := s.UpdateOwner(ctx, o.ID, OwnerUpdate{LegalHold: &hold, Status: ptr(StatusSuspended)})
		if err != nil {
			t.Fatalf("UpdateOwner(set hold): %v", err)
		}
		want := o
		want.LegalHold = &hold
		want.Status = StatusSuspended
		MustOwnerEqual(t, s, want, got)

		_, err = s.UpdateOwner(ctx, o.ID, OwnerUpdate{LegalHold: ptr("x\u200b")})
		wantValidation(t, err, "legal_hold")
		_, err = s.UpdateOwner(ctx, o.ID, OwnerUpdate{Status: ptr("gone")})
		wantValidation(t, err, "status")
		MustOwnerEqual(t, s, want, want) // unchanged by the rejected updates

		got, err = s.UpdateOwner(ctx, o.ID, OwnerUpdate{ClearLegalHold: true, Status: ptr(StatusActive), PlanSlug: ptr("pro")})
		if err != nil {
			t.Fatalf("UpdateOwner(clear hold): %v", err)
		}
		want.LegalHold = nil
		want.Status = StatusActive
		want.PlanID = plans["pro"].ID
		MustOwnerEqual(t, s, want, got)

		// A rejected update changes nothing, not even the plan it names.
		_, err = s.UpdateOwner(ctx, o.ID, OwnerUpdate{PlanSlug: ptr("business"), Status: ptr("gone")})
		wantValidation(t, err, "status")
		MustOwnerEqual(t, s, want, want)

		if _, err := s.UpdateOwner(ctx, uuid.NewString(), OwnerUpdate{Status: ptr(StatusActive)}); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateOwner(unknown) error = %v; want ErrNotFound", err)
		}
	})
}

// MustOwnerEqual compares got, and the stored owner, with want.
func MustOwnerEqual(tb testing.TB, s *Store, want, got Owner) {
	tb.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		tb.Errorf("returned owner (-want +got):\n%s", diff)
	}
	stored, err := s.GetOwner(context.Background(), want.ID)
	if err != nil {
		tb.Fatal(err)
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		tb.Errorf("stored owner (-want +got):\n%s", diff)
	}
}

func TestListOwners(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		var want []string
		for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			want = append(want, MustCreateOwner(t, s, e, "").ID)
		}
		sort.Strings(want)
		var got []string
		after := ""
		for {
			page, err := s.ListOwners(ctx, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, o := range page {
				got = append(got, o.ID)
			}
			after = page[len(page)-1].ID
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("paged ListOwners (-want +got):\n%s", diff)
		}
	})
}

func TestStats(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Stats{}, st); diff != "" {
			t.Errorf("Stats of an empty store (-want +got):\n%s", diff)
		}

		MustSeedPlans(t, s)
		a := MustCreateOwner(t, s, "a@example.com", "pro")
		b := MustCreateOwner(t, s, "b@example.com", "pro")
		app1 := MustInsertApp(t, s, a.ID, "one")
		MustInsertApp(t, s, b.ID, "two")
		for i := range 3 {
			MustInsertDevice(t, s, app1.ID, i)
		}
		pool := MustInsertPool(t, s, "eu-1")
		node := Node{ID: uuid.NewString(), PoolID: pool.ID, Name: "fra-1", Endpoint: "fra-1.example.net:51820",
			PublicKey: strings.Repeat("n", 43) + "=", CredentialHash: strings.Repeat("c", 64), Enabled: true}
		if err := s.w.Create(&node).Error; err != nil {
			t.Fatal(err)
		}
		MustExec(t, s.w, "UPDATE sync_state SET revision = 7 WHERE id = 1")

		st, err = s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(Stats{Owners: 2, Apps: 2, Devices: 3, Nodes: 1, Revision: 7}, st); diff != "" {
			t.Errorf("Stats (-want +got):\n%s", diff)
		}
	})
}

// TestTranslateConstraints checks that both drivers' constraint errors
// reach callers as ErrConflict, and that no driver error type leaks.
func TestTranslateConstraints(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		MustSeedPlans(t, s)
		o := MustCreateOwner(t, s, "a@example.com", "")
		app := MustInsertApp(t, s, o.ID, "one")
		tests := []struct {
			name  string
			model any
		}{
			{"unique", &App{ID: app.ID, OwnerID: o.ID, Name: "dup"}},
			{"foreign key", &App{ID: uuid.NewString(), OwnerID: uuid.NewString(), Name: "orphan"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.write(ctx, func(tx *gorm.DB) error { return tx.Create(tt.model).Error })
				if !errors.Is(err, ErrConflict) {
					t.Errorf("error = %v (%T); want ErrConflict", err, errors.Unwrap(err))
				}
			})
		}
		if n := MustCount(t, s, &App{}); n != 1 {
			t.Errorf("%d apps; want 1", n)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestCreateOperatorOnce starts three replicas' stores on one database
// and lets each create the first operator at the same moment, as replicas
// started together with the same TRACELESS_ADMIN_EMAIL do: exactly one
// creates it, the others find it and report so without an error.
func TestCreateOperatorOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b testBackend) {
		ctx := context.Background()
		cfg := b.Config(t)
		first := MustOpen(t, cfg)
		MustSeedPlans(t, first)
		stores := []*Store{first, MustOpen(t, cfg), MustOpen(t, cfg)}
		for round := range 4 {
			if round > 0 { // start again from no operator
				if err := first.w.Exec("DELETE FROM owners").Error; err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			created := make([]bool, len(stores))
			errs := make([]error, len(stores))
			for i, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, created[i], errs[i] = s.CreateOperator(ctx, Owner{Email: "op@example.com", PasswordHash: "$argon2id$test"})
				}()
			}
			wg.Wait()
			n := 0
			for i := range stores {
				if errs[i] != nil {
					t.Fatalf("round %d: replica %d: %v", round, i, errs[i])
				}
				if created[i] {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("round %d: %d replicas created the operator; want 1", round, n)
			}
			if got, err := first.CountAdmins(ctx); err != nil || got != 1 {
				t.Fatalf("round %d: CountAdmins = %d, %v; want 1", round, got, err)
			}
		}
		// An operator exists: nothing more is created, whatever the email.
		if _, created, err := first.CreateOperator(ctx, Owner{Email: "other@example.com", PasswordHash: "$argon2id$test"}); err != nil || created {
			t.Fatalf("CreateOperator with an operator present = %v, %v; want false, nil", created, err)
		}
	})
}
