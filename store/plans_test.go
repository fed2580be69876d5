package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
)

// validPlan is a plan every test may start from.
func validPlan() PlanWithPools {
	return PlanWithPools{Plan: Plan{Slug: "team", Name: "Team", MaxApps: 2, MaxDevices: 20, MaxOwnNodes: 1, PriceCents: 999, Currency: "EUR"}}
}

// MustCount returns the number of rows of model.
func MustCount(tb testing.TB, s *Store, model any) int64 {
	tb.Helper()
	var n int64
	if err := s.w.Model(model).Count(&n).Error; err != nil {
		tb.Fatalf("count %T: %v", model, err)
	}
	return n
}

// MustInsertPool inserts a shared pool directly through the write handle.
func MustInsertPool(tb testing.TB, s *Store, name string) Pool {
	tb.Helper()
	p := Pool{ID: uuid.NewString(), Name: name, Region: "eu-central", Country: "DE", City: "Frankfurt"}
	if err := s.w.Create(&p).Error; err != nil {
		tb.Fatalf("insert pool: %v", err)
	}
	return p
}

// wantValidation fails unless err is a *ValidationError about field.
func wantValidation(tb testing.TB, err error, field string) {
	tb.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		tb.Fatalf("error = %v (%T); want *ValidationError for %q", err, err, field)
	}
	if ve.Field != field {
		tb.Errorf("ValidationError.Field = %q (%v); want %q", ve.Field, ve, field)
	}
}

func TestSeedPlans(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		seeded, err := s.SeedPlans(ctx, DefaultPlans())
		if err != nil || !seeded {
			t.Fatalf("first SeedPlans = %v, %v; want true, nil", seeded, err)
		}
		seeded, err = s.SeedPlans(ctx, DefaultPlans())
		if err != nil || seeded {
			t.Fatalf("second SeedPlans = %v, %v; want false, nil", seeded, err)
		}
		got, err := s.ListPlans(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]PlanWithPools, 0, 3)
		for _, p := range DefaultPlans() {
			want = append(want, PlanWithPools{Plan: p})
		}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Plan{}, "ID")); diff != "" {
			t.Errorf("ListPlans after seeding twice (-want +got):\n%s", diff)
		}
	})
}

func TestSeedPlansInvalid(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		plans := DefaultPlans()
		plans[2].Currency = "euro"
		seeded, err := s.SeedPlans(context.Background(), plans)
		wantValidation(t, err, "currency")
		if seeded {
			t.Error("SeedPlans reported seeding after an error")
		}
		if n := MustCount(t, s, &Plan{}); n != 0 {
			t.Errorf("%d plans stored after a failed seed; want 0 (one transaction)", n)
		}
	})
}

func TestCreatePlanValidation(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(p *PlanWithPools)
		field string
	}{
		{"empty slug", func(p *PlanWithPools) { p.Slug = "" }, "slug"},
		{"upper-case slug", func(p *PlanWithPools) { p.Slug = "Team" }, "slug"},
		{"slug with leading dash", func(p *PlanWithPools) { p.Slug = "-team" }, "slug"},
		{"slug with underscore", func(p *PlanWithPools) { p.Slug = "team_1" }, "slug"},
		{"slug with space", func(p *PlanWithPools) { p.Slug = "team 1" }, "slug"},
		{"slug with non-ASCII", func(p *PlanWithPools) { p.Slug = "tëam" }, "slug"},
		{"slug too long", func(p *PlanWithPools) { p.Slug = strings.Repeat("a", 33) }, "slug"},
		{"slug with newline", func(p *PlanWithPools) { p.Slug = "team\n" }, "slug"},
		{"empty name", func(p *PlanWithPools) { p.Name = "" }, "name"},
		{"name with surrounding space", func(p *PlanWithPools) { p.Name = " Team" }, "name"},
		{"name with newline", func(p *PlanWithPools) { p.Name = "Te\nam" }, "name"},
		{"name with NUL", func(p *PlanWithPools) { p.Name = "Te\x00am" }, "name"},
		{"name with escape", func(p *PlanWithPools) { p.Name = "Te\x1b[31mam" }, "name"},
		{"name with DEL", func(p *PlanWithPools) { p.Name = "Te\x7fam" }, "name"},
		{"name with C1 control", func(p *PlanWithPools) { p.Name = "Te\u0085am" }, "name"},
		{"name with right-to-left override", func(p *PlanWithPools) { p.Name = "Team\u202egpj.exe" }, "name"},
		{"name with left-to-right isolate", func(p *PlanWithPools) { p.Name = "\u2066Team" }, "name"},
		{"name with zero-width space", func(p *PlanWithPools) { p.Name = "Te\u200bam" }, "name"},
		{"name with zero-width joiner", func(p *PlanWithPools) { p.Name = "Te\u200dam" }, "name"},
		{"name with byte order mark", func(p *PlanWithPools) { p.Name = "\ufeffTeam" }, "name"},
		{"name with private-use character", func(p *PlanWithPools) { p.Name = "Team\ue000" }, "name"},
		{"name with invalid UTF-8", func(p *PlanWithPools) { p.Name = "Team\xff" }, "name"},
		{"name too long", func(p *PlanWithPools) { p.Name = strings.Repeat("n", 65) }, "name"},
		{"negative max apps", func(p *PlanWithPools) { p.MaxApps = -1 }, "max_apps"},
		{"negative max devices", func(p *PlanWithPools) { p.MaxDevices = -1 }, "max_devices"},
		{"negative max own nodes", func(p *PlanWithPools) { p.MaxOwnNodes = -1 }, "max_own_nodes"},
		{"negative price", func(p *PlanWithPools) { p.PriceCents = -1 }, "price_cents"},
		{"huge max devices", func(p *PlanWithPools) { p.MaxDevices = 100_000_001 }, "max_devices"},
		{"empty currency", func(p *PlanWithPools) { p.Currency = "" }, "currency"},
		{"lower-case currency", func(p *PlanWithPools) { p.Currency = "eur" }, "currency"},
		{"long currency", func(p *PlanWithPools) { p.Currency = "EURO" }, "currency"},
		{"currency with digit", func(p *PlanWithPools) { p.Currency = "E1R" }, "currency"},
		{"unknown pool", func(p *PlanWithPools) { p.PoolIDs = []string{uuid.NewString()} }, "pools"},
	}
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := validPlan()
				tt.edit(&p)
				got, err := s.CreatePlan(ctx, p)
				wantValidation(t, err, tt.field)
				if diff := cmp.Diff(PlanWithPools{}, got); diff != "" {
					t.Errorf("CreatePlan returned a plan with its error (-want +got):\n%s", diff)
				}
				if n := MustCount(t, s, &Plan{}); n != 0 {
					t.Errorf("%d plans stored after a rejected CreatePlan; want 0", n)
				}
				if n := MustCount(t, s, &PlanPool{}); n != 0 {
					t.Errorf("%d plan pools stored after a rejected CreatePlan; want 0", n)
				}
			})
		}
	})
}

func TestCreatePlan(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, b := MustInsertPool(t, s, "eu-1"), MustInsertPool(t, s, "us-1")
		p := validPlan()
		p.Name = "Équipe — チーム"
		p.PoolIDs = []string{b.ID, a.ID, b.ID}
		created, err := s.CreatePlan(ctx, p)
		if err != nil {
			t.Fatalf("CreatePlan: %v", err)
		}
		if _, err := uuid.Parse(created.ID); err != nil {
			t.Errorf("CreatePlan ID %q is not a UUID: %v", created.ID, err)
		}
		wantPools := []string{a.ID, b.ID}
		if wantPools[0] > wantPools[1] {
			wantPools[0], wantPools[1] = wantPools[1], wantPools[0]
		}
		want := PlanWithPools{Plan: p.Plan, PoolIDs: wantPools}
		want.ID = created.ID
		for name, get := range map[string]func() (PlanWithPools, error){
			"GetPlan":       func() (PlanWithPools, error) { return s.GetPlan(ctx, created.ID) },
			"GetPlanBySlug": func() (PlanWithPools, error) { return s.GetPlanBySlug(ctx, "team") },
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", name, diff)
			}
		}
		list, err := s.ListPlans(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]PlanWithPools{want}, list); diff != "" {
			t.Errorf("ListPlans (-want +got):\n%s", diff)
		}
		if _, err := s.GetPlan(ctx, uuid.NewString()); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetPlan(unknown) error = %v; want ErrNotFound", err)
		}
		if _, err := s.GetPlanBySlug(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetPlanBySlug(unknown) error = %v; want ErrNotFound", err)
		}
	})
}

func TestCreatePlanDuplicateSlug(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.CreatePlan(ctx, validPlan()); err != nil {
			t.Fatal(err)
		}
		dup := validPlan()
		dup.Name = "Another team"
		if _, err := s.CreatePlan(ctx, dup); !errors.Is(err, ErrConflict) {
			t.Errorf("CreatePlan(duplicate slug) error = %v; want ErrConflict", err)
		}
		if n := MustCount(t, s, &Plan{}); n != 1 {
			t.Errorf("%d plans stored; want 1", n)
		}
	})
}

func TestUpdatePlan(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		pool := MustInsertPool(t, s, "eu-1")
		plans := MustSeedPlans(t, s)
		pro := plans["pro"]
		pro.Name = "Professional"
		pro.Retired = true
		pro.PoolIDs = []string{pool.ID}
		if _, err := s.UpdatePlan(ctx, pro); err != nil {
			t.Fatalf("UpdatePlan: %v", err)
		}
		got, err := s.GetPlan(ctx, pro.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(pro, got); diff != "" {
			t.Errorf("plan after UpdatePlan (-want +got):\n%s", diff)
		}
		active, err := s.ListPlans(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		var slugs []string
		for _, p := range active {
			slugs = append(slugs, p.Slug)
		}
		if diff := cmp.Diff([]string{"free", "business"}, slugs); diff != "" {
			t.Errorf("ListPlans(false) after retiring pro (-want +got):\n%s", diff)
		}

		pro.PoolIDs = nil
		if _, err := s.UpdatePlan(ctx, pro); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetPlan(ctx, pro.ID); got.PoolIDs != nil {
			t.Errorf("pools after clearing = %v; want none", got.PoolIDs)
		}

		clash := plans["business"]
		clash.Slug = "free"
		if _, err := s.UpdatePlan(ctx, clash); !errors.Is(err, ErrConflict) {
			t.Errorf("UpdatePlan(slug taken) error = %v; want ErrConflict", err)
		}
		missing := validPlan()
		missing.ID = uuid.NewString()
		if _, err := s.UpdatePlan(ctx, missing); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdatePlan(unknown) error = %v; want ErrNotFound", err)
		}
		bad := plans["free"]
		bad.Name = "Free\u202e"
		_, err = s.UpdatePlan(ctx, bad)
		wantValidation(t, err, "name")
		if got, _ := s.GetPlan(ctx, bad.ID); got.Name != "Free" {
			t.Errorf("name after rejected update = %q; want %q", got.Name, "Free")
		}
	})
}

func TestDeletePlan(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		pool := MustInsertPool(t, s, "eu-1")
		plans := MustSeedPlans(t, s)
		MustCreateOwner(t, s, "owner@example.com", "pro")

		err := s.DeletePlan(ctx, plans["pro"].ID)
		if !errors.Is(err, ErrConflict) {
			t.Errorf("DeletePlan(plan with an owner) error = %v; want ErrConflict", err)
		}
		if _, err := s.GetPlan(ctx, plans["pro"].ID); err != nil {
			t.Errorf("plan with an owner is gone after a refused delete: %v", err)
		}

		business := plans["business"]
		business.PoolIDs = []string{pool.ID}
		if _, err := s.UpdatePlan(ctx, business); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePlan(ctx, business.ID); err != nil {
			t.Fatalf("DeletePlan: %v", err)
		}
		if _, err := s.GetPlan(ctx, business.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetPlan after delete error = %v; want ErrNotFound", err)
		}
		if n := MustCount(t, s, &PlanPool{}); n != 0 {
			t.Errorf("%d plan pools left after deleting their plan; want 0", n)
		}
		if n := MustCount(t, s, &Pool{}); n != 1 {
			t.Errorf("%d pools after deleting a plan; want the pool to stay", n)
		}
		if err := s.DeletePlan(ctx, business.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeletePlan(deleted) error = %v; want ErrNotFound", err)
		}
	})
}

// TestSeedPlansConcurrently seeds from several replicas at once, as
// control planes starting together on one PostgreSQL database do: exactly
// one seeds, none fails.
func TestSeedPlansConcurrently(t *testing.T) {
	eachBackend(t, func(t *testing.T, b testBackend) {
		cfg := b.Config(t)
		const n = 4
		stores := make([]*Store, n)
		for i := range stores {
			stores[i] = MustOpen(t, cfg)
		}
		seeded := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Go(func() { seeded[i], errs[i] = s.SeedPlans(context.Background(), DefaultPlans()) })
		}
		wg.Wait()
		count := 0
		for i := range n {
			if errs[i] != nil {
				t.Errorf("SeedPlans #%d: %v", i, errs[i])
			}
			if seeded[i] {
				count++
			}
		}
		if count != 1 {
			t.Errorf("%d replicas seeded; want exactly 1", count)
		}
		if got := MustCount(t, stores[0], &Plan{}); got != int64(len(DefaultPlans())) {
			t.Errorf("%d plans; want %d", got, len(DefaultPlans()))
		}
	})
}
