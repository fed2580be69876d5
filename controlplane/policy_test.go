package controlplane

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestPolicyVersions: the current version is served; a new one is
// announced a notice period before it takes effect, owners may accept it
// from then, and it becomes current on its date.
func TestPolicyVersions(t *testing.T) {
	next := harnessStart.Add(45 * 24 * time.Hour)
	h := newHarness(t, func(o *Options) {
		o.Policies = []PolicyVersion{
			{Version: "2026-01", EffectiveAt: harnessStart.Add(-90 * 24 * time.Hour), Text: "old text"},
			{Version: "2027-01", EffectiveAt: next, Text: "new text"},
		}
		o.PolicyNotice = 30 * 24 * time.Hour
	})
	status := func() api.PolicyStatus {
		var ps api.PolicyStatus
		h.Do(request{Method: "GET", Path: "/api/v1/policy"}).MustStatus(t, http.StatusOK).MustDecode(t, &ps)
		return ps
	}
	o := h.MustOwner()
	accept := func(v string) response {
		tok := h.MustLogin(o.Owner.Email, testPassword).Token // the clock moves past sign-in lifetimes
		return h.Do(request{Method: "PUT", Path: "/api/v1/me/policy", Token: tok, Body: api.PolicyAccept{Version: v}})
	}

	ps := status()
	if ps.Current.Version != "2026-01" || ps.Upcoming != nil {
		t.Fatalf("before the notice period: %+v", ps)
	}
	accept("2027-01").MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "version"})
	var me api.Owner
	accept("2026-01").MustStatus(t, http.StatusOK).MustDecode(t, &me)
	if me.AcceptedPolicyVersion != "2026-01" {
		t.Errorf("accepted = %q", me.AcceptedPolicyVersion)
	}

	h.clock.Advance(16 * 24 * time.Hour) // 29 days before the new version
	ps = status()
	if ps.Upcoming == nil || ps.Upcoming.Version != "2027-01" || !ps.Upcoming.AnnouncedAt.Equal(next.Add(-30*24*time.Hour)) {
		t.Fatalf("in the notice period: %+v", ps)
	}
	accept("2027-01").MustStatus(t, http.StatusOK)

	h.clock.Advance(30 * 24 * time.Hour)
	ps = status()
	if ps.Current.Version != "2027-01" || ps.Upcoming != nil || ps.Current.Text != "new text" {
		t.Errorf("after the effective date: %+v", ps)
	}
	accept("nope").MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "version"})
}

func TestLoadPolicies(t *testing.T) {
	good := "- version: \"2027-01\"\n  effective_at: 2027-01-01T00:00:00Z\n  text: |\n    # Policy\n"
	if vs, err := LoadPolicies(strings.NewReader(good)); err != nil || len(vs) != 1 {
		t.Fatalf("LoadPolicies(good) = %v, %v", vs, err)
	}
	for name, in := range map[string]string{
		"empty":      "[]",
		"no date":    "- version: a\n  text: x\n",
		"no text":    "- version: a\n  effective_at: 2027-01-01T00:00:00Z\n",
		"duplicate":  "- {version: a, effective_at: 2027-01-01T00:00:00Z, text: x}\n- {version: a, effective_at: 2027-02-01T00:00:00Z, text: y}\n",
		"unknown":    "- {version: a, effective_at: 2027-01-01T00:00:00Z, text: x, extra: 1}\n",
		"not a list": "version: a\n",
	} {
		if _, err := LoadPolicies(strings.NewReader(in)); err == nil {
			t.Errorf("%s: LoadPolicies accepted %q", name, in)
		}
	}
}

// TestAppRotationPolicy: the owner sets a rotation policy on an app, and
// the app's devices read it with the API key.
func TestAppRotationPolicy(t *testing.T) {
	w := newSyncWorld(t)
	var apps api.AppList
	w.h.Do(request{Method: "GET", Path: "/api/v1/apps", Token: w.owner.Token}).MustStatus(t, 200).MustDecode(t, &apps)
	id := apps.Apps[0].ID
	days := 30
	var a api.App
	w.h.Do(request{Method: "PUT", Path: "/api/v1/apps/" + id, Token: w.owner.Token, Body: api.AppUpdate{RotationDays: &days}}).
		MustStatus(t, http.StatusOK).MustDecode(t, &a)
	if a.RotationDays != 30 || a.Name != "vpn" {
		t.Errorf("after setting the policy: %+v (name must be unchanged)", a)
	}
	var p api.AppPolicy
	w.h.Do(request{Method: "GET", Path: "/api/v1/app", Token: w.key}).MustStatus(t, http.StatusOK).MustDecode(t, &p)
	if p.RotationDays != 30 {
		t.Errorf("policy read by the key = %+v", p)
	}
	bad := 366
	w.h.Do(request{Method: "PUT", Path: "/api/v1/apps/" + id, Token: w.owner.Token, Body: api.AppUpdate{RotationDays: &bad}}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "rotation_days"})
	name := "renamed"
	w.h.Do(request{Method: "PUT", Path: "/api/v1/apps/" + id, Token: w.owner.Token, Body: api.AppUpdate{Name: &name}}).
		MustStatus(t, http.StatusOK).MustDecode(t, &a)
	if a.Name != "renamed" || a.RotationDays != 30 {
		t.Errorf("after renaming: %+v (policy must be unchanged)", a)
	}
}
