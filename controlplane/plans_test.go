package controlplane

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// ignorePlanID compares plans without their random IDs.
var ignorePlanID = cmpopts.IgnoreFields(api.Plan{}, "ID")

func seededPlans() []api.Plan {
	return []api.Plan{
		{Slug: "free", Name: "Free", MaxApps: 1, MaxDevices: 10, MaxOwnNodes: 0, PriceCents: 0, Currency: "EUR", Pools: []string{}},
		{Slug: "pro", Name: "Pro", MaxApps: 5, MaxDevices: 10_000, MaxOwnNodes: 2, PriceCents: 4900, Currency: "EUR", Pools: []string{}},
		{Slug: "business", Name: "Business", MaxApps: 50, MaxDevices: 1_000_000, MaxOwnNodes: 20, PriceCents: 49900, Currency: "EUR", Pools: []string{}},
	}
}

// MustListPlans GETs a plan list.
func (h *harness) MustListPlans(path, token string) []api.Plan {
	h.tb.Helper()
	r := h.Do(request{Method: http.MethodGet, Path: path, Token: token})
	r.MustStatus(h.tb, http.StatusOK)
	var pl api.PlanList
	r.MustDecode(h.tb, &pl)
	return pl.Plans
}

func TestPublicPlans(t *testing.T) {
	h := newHarness(t)
	got := h.MustListPlans("/api/v1/plans", "")
	if diff := cmp.Diff(seededPlans(), got, ignorePlanID); diff != "" {
		t.Errorf("catalogue mismatch (-want +got):\n%s", diff)
	}
	for _, p := range got {
		if p.ID == "" {
			t.Errorf("plan %s has no id", p.Slug)
		}
	}
	// A second Bootstrap does not seed again.
	if _, err := h.srv.Bootstrap(t.Context(), "", "", h.ts.URL); err != nil {
		t.Fatal(err)
	}
	if n := len(h.MustListPlans("/api/v1/plans", "")); n != 3 {
		t.Errorf("%d plans after a second Bootstrap, want 3", n)
	}
}

func TestAdminPlanCRUD(t *testing.T) {
	h := newHarness(t)
	admin := h.MustAdmin()
	do := func(method, path string, body any) response {
		return h.Do(request{Method: method, Path: path, Token: admin.Token, Body: body})
	}

	// Create.
	in := api.PlanInput{Slug: "team", Name: "Team", MaxApps: 3, MaxDevices: 100, MaxOwnNodes: 1, PriceCents: 1900, Currency: "USD"}
	r := do(http.MethodPost, "/api/v1/admin/plans", in)
	r.MustStatus(t, http.StatusCreated)
	var created api.Plan
	r.MustDecode(t, &created)
	want := api.Plan{Slug: "team", Name: "Team", MaxApps: 3, MaxDevices: 100, MaxOwnNodes: 1, PriceCents: 1900, Currency: "USD", Pools: []string{}}
	if diff := cmp.Diff(want, created, ignorePlanID); diff != "" {
		t.Errorf("created plan mismatch (-want +got):\n%s", diff)
	}
	if created.ID == "" {
		t.Fatal("created plan has no id")
	}
	public := h.MustListPlans("/api/v1/plans", "")
	if diff := cmp.Diff(append(seededPlans()[:1:1], append([]api.Plan{want}, seededPlans()[1:]...)...), public, ignorePlanID); diff != "" {
		t.Errorf("catalogue after create mismatch (-want +got):\n%s", diff)
	}

	// Duplicate slug; validation names the field.
	do(http.MethodPost, "/api/v1/admin/plans", in).MustHaveError(t, wantErr{http.StatusConflict, api.CodeConflict, ""})
	bad := in
	bad.Slug = "Team!"
	do(http.MethodPost, "/api/v1/admin/plans", bad).MustHaveError(t, wantErr{http.StatusBadRequest, api.CodeInvalidRequest, "slug"})
	bad = in
	bad.MaxDevices = -5
	do(http.MethodPost, "/api/v1/admin/plans", bad).MustHaveError(t, wantErr{http.StatusBadRequest, api.CodeInvalidRequest, "max_devices"})

	// Update.
	in.Name, in.MaxDevices = "Team Plus", 250
	r = do(http.MethodPut, "/api/v1/admin/plans/"+created.ID, in)
	r.MustStatus(t, http.StatusOK)
	var updated api.Plan
	r.MustDecode(t, &updated)
	want.Name, want.MaxDevices, want.ID = "Team Plus", 250, created.ID
	if diff := cmp.Diff(want, updated); diff != "" {
		t.Errorf("updated plan mismatch (-want +got):\n%s", diff)
	}
	renamed := in
	renamed.Slug = "pro"
	do(http.MethodPut, "/api/v1/admin/plans/"+created.ID, renamed).MustHaveError(t, wantErr{http.StatusConflict, api.CodeConflict, ""})
	do(http.MethodPut, "/api/v1/admin/plans/00000000-0000-4000-8000-000000000000", in).MustHaveError(t, wantErr{http.StatusNotFound, api.CodeNotFound, ""})

	// An owner moves to the plan; then the plan cannot be deleted.
	owner := h.MustOwner()
	r = h.Do(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: owner.Token, Body: api.PlanChange{Plan: "team"}})
	r.MustStatus(t, http.StatusOK)
	var me api.Owner
	r.MustDecode(t, &me)
	if me.Plan != "team" {
		t.Errorf("plan after change = %q, want team", me.Plan)
	}
	do(http.MethodDelete, "/api/v1/admin/plans/"+created.ID, nil).MustHaveError(t, wantErr{http.StatusConflict, api.CodeConflict, ""})

	// Retire: hidden from the catalogue, listed for operators, refused to
	// new takers, kept by the owner on it.
	in.Retired = true
	do(http.MethodPut, "/api/v1/admin/plans/"+created.ID, in).MustStatus(t, http.StatusOK)
	if diff := cmp.Diff(seededPlans(), h.MustListPlans("/api/v1/plans", ""), ignorePlanID); diff != "" {
		t.Errorf("catalogue shows a retired plan (-want +got):\n%s", diff)
	}
	all := h.MustListPlans("/api/v1/admin/plans", admin.Token)
	if len(all) != 4 || all[1].Slug != "team" || !all[1].Retired {
		t.Errorf("operator list = %+v, want the retired team plan among 4", all)
	}
	other := h.MustOwner()
	h.Do(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: other.Token, Body: api.PlanChange{Plan: "team"}}).
		MustHaveError(t, wantErr{http.StatusBadRequest, api.CodeInvalidRequest, "plan"})
	h.Do(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: owner.Token, Body: api.PlanChange{Plan: "team"}}).
		MustStatus(t, http.StatusOK) // staying on it is fine
	if me := h.MustGetOwner(owner.Owner.ID); me.PlanID != created.ID {
		t.Errorf("owner left the retired plan")
	}

	// The owner moves away; now the plan can be deleted, once.
	h.Do(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: owner.Token, Body: api.PlanChange{Plan: "free"}}).MustStatus(t, http.StatusOK)
	do(http.MethodDelete, "/api/v1/admin/plans/"+created.ID, nil).MustStatus(t, http.StatusNoContent)
	do(http.MethodDelete, "/api/v1/admin/plans/"+created.ID, nil).MustHaveError(t, wantErr{http.StatusNotFound, api.CodeNotFound, ""})
	if n := len(h.MustListPlans("/api/v1/admin/plans", admin.Token)); n != 3 {
		t.Errorf("%d plans after delete, want 3", n)
	}
}

func TestChangePlan(t *testing.T) {
	h := newHarness(t)
	owner := h.MustOwner()
	if owner.Owner.Plan != "free" {
		t.Fatalf("new owner on plan %q, want free (the cheapest)", owner.Owner.Plan)
	}
	for _, slug := range []string{"pro", "business", "free"} {
		r := h.Do(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: owner.Token, Body: api.PlanChange{Plan: slug}})
		r.MustStatus(t, http.StatusOK)
		var me api.Owner
		r.MustDecode(t, &me)
		if me.Plan != slug {
			t.Errorf("plan = %q, want %q", me.Plan, slug)
		}
		r = h.Do(request{Method: http.MethodGet, Path: "/api/v1/me", Token: owner.Token})
		r.MustDecode(t, &me)
		if me.Plan != slug {
			t.Errorf("me.plan = %q after change to %q", me.Plan, slug)
		}
	}
	for _, slug := range []string{"platinum", "FREE", "free "} {
		h.Do(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: owner.Token, Body: api.PlanChange{Plan: slug}}).
			MustHaveError(t, wantErr{http.StatusBadRequest, api.CodeInvalidRequest, "plan"})
	}
}
