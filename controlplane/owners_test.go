package controlplane

import (
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func TestAdminListOwnersPaging(t *testing.T) {
	h := newHarness(t)
	admin := h.MustAdmin()
	want := []string{admin.Owner.ID}
	for range 7 {
		want = append(want, h.MustOwner().Owner.ID)
	}
	sort.Strings(want)

	list := func(query string) api.OwnerList {
		t.Helper()
		r := h.Do(request{Method: http.MethodGet, Path: "/api/v1/admin/owners" + query, Token: admin.Token})
		r.MustStatus(t, http.StatusOK)
		var ol api.OwnerList
		r.MustDecode(t, &ol)
		return ol
	}

	// Default page: everything, no cursor.
	all := list("")
	if all.NextCursor != "" {
		t.Errorf("next_cursor = %q on the only page", all.NextCursor)
	}
	var got []string
	for _, o := range all.Owners {
		got = append(got, o.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("owners mismatch (-want +got):\n%s", diff)
	}

	// Pages of every size, each cursor leading to the next.
	for _, limit := range []string{"1", "3", "8", "500"} {
		t.Run("limit="+limit, func(t *testing.T) {
			var got []string
			cursor, pages := "", 0
			for {
				q := "?limit=" + limit
				if cursor != "" {
					q += "&cursor=" + cursor
				}
				page := list(q)
				pages++
				for _, o := range page.Owners {
					got = append(got, o.ID)
				}
				if page.NextCursor == "" {
					break
				}
				if page.NextCursor != page.Owners[len(page.Owners)-1].ID {
					t.Fatalf("next_cursor %q is not the last ID of the page", page.NextCursor)
				}
				cursor = page.NextCursor
				if pages > 20 {
					t.Fatal("paging does not end")
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("paged owners mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// An exact fit has no next page.
	if p := list("?limit=8"); p.NextCursor != "" || len(p.Owners) != 8 {
		t.Errorf("limit=8: %d owners, next_cursor %q", len(p.Owners), p.NextCursor)
	}
	// A cursor past the end gives an empty list, not null.
	r := h.Do(request{Method: http.MethodGet, Path: "/api/v1/admin/owners?cursor=zzzz", Token: admin.Token})
	r.MustStatus(t, http.StatusOK)
	if string(r.Body) != `{"owners":[],"next_cursor":""}`+"\n" {
		t.Errorf("empty page = %s", r.Body)
	}

	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=501", "?limit=x", "?limit=1e2"} {
		h.Do(request{Method: http.MethodGet, Path: "/api/v1/admin/owners" + q, Token: admin.Token}).
			MustHaveError(t, wantErr{http.StatusBadRequest, api.CodeInvalidRequest, "limit"})
	}
	h.Do(request{Method: http.MethodGet, Path: "/api/v1/admin/owners?cursor=" + strings.Repeat("a", 65), Token: admin.Token}).
		MustHaveError(t, wantErr{http.StatusBadRequest, api.CodeInvalidRequest, "cursor"})
}

func TestAdminUpdateOwner(t *testing.T) {
	h := newHarness(t)
	admin := h.MustAdmin()
	owner := h.MustOwner()
	put := func(body string) api.Owner {
		t.Helper()
		r := h.Do(request{Method: http.MethodPut, Path: "/api/v1/admin/owners/" + owner.Owner.ID, Token: admin.Token, Body: body})
		r.MustStatus(t, http.StatusOK)
		var o api.Owner
		r.MustDecode(t, &o)
		// The answer is what is stored.
		r = h.Do(request{Method: http.MethodGet, Path: "/api/v1/admin/owners?limit=500", Token: admin.Token})
		var ol api.OwnerList
		r.MustDecode(t, &ol)
		for _, lo := range ol.Owners {
			if lo.ID == o.ID {
				if diff := cmp.Diff(o, lo); diff != "" {
					t.Errorf("listed owner differs from the PUT answer (-put +list):\n%s", diff)
				}
			}
		}
		return o
	}
	hold := func(s string) *string { return &s }
	base := owner.Owner

	for _, tc := range []struct {
		name string
		body string
		want func(o *api.Owner)
	}{
		{"empty change", `{}`, func(*api.Owner) {}},
		{"suspend", `{"status":"suspended"}`, func(o *api.Owner) { o.Status = store.StatusSuspended }},
		{"set hold", `{"legal_hold":"chargeback dispute #12"}`, func(o *api.Owner) { o.LegalHold = hold("chargeback dispute #12") }},
		{"absent hold is left alone", `{"status":"active"}`, func(o *api.Owner) { o.Status = store.StatusActive }},
		{"plan", `{"plan":"business"}`, func(o *api.Owner) { o.Plan = "business" }},
		{"null plan is left alone", `{"plan":null}`, func(*api.Owner) {}},
		{"replace hold", `{"legal_hold":"court order"}`, func(o *api.Owner) { o.LegalHold = hold("court order") }},
		{"null clears hold", `{"legal_hold":null}`, func(o *api.Owner) { o.LegalHold = nil }},
		{"null again is fine", `{"legal_hold":null}`, func(*api.Owner) {}},
		{"all at once", `{"status":"suspended","plan":"pro","legal_hold":"audit"}`, func(o *api.Owner) {
			o.Status, o.Plan, o.LegalHold = store.StatusSuspended, "pro", hold("audit")
		}},
	} {
		tc.want(&base)
		if got := put(tc.body); !cmp.Equal(base, got) {
			t.Errorf("%s: owner mismatch (-want +got):\n%s", tc.name, cmp.Diff(base, got))
		}
	}

	// A retired plan can be assigned by an operator.
	h.Do(request{Method: http.MethodPost, Path: "/api/v1/admin/plans", Token: admin.Token,
		Body: api.PlanInput{Slug: "legacy", Name: "Legacy", MaxApps: 1, MaxDevices: 1, Currency: "EUR", Retired: true}}).MustStatus(t, http.StatusCreated)
	if o := put(`{"plan":"legacy"}`); o.Plan != "legacy" {
		t.Errorf("plan = %q, want legacy", o.Plan)
	}
}
