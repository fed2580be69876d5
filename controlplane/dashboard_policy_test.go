package controlplane

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestDashboardPolicy: an owner who has not accepted the policy sees a
// reminder on every page, reads and accepts it on /policy, and is told of
// a new version once it is announced, before it takes effect.
func TestDashboardPolicy(t *testing.T) {
	next := harnessStart.Add(40 * 24 * time.Hour)
	h := newHarness(t, func(o *Options) {
		o.Policies = []PolicyVersion{
			{Version: "2026-01", EffectiveAt: harnessStart.Add(-30 * 24 * time.Hour), Text: "The old policy text."},
			{Version: "2027-01", EffectiveAt: next, Text: "The new policy text."},
		}
		o.PolicyNotice = 30 * 24 * time.Hour
	})
	b := newBrowser(t, h)
	email := h.NewEmail()
	b.signup(email)

	b.get("/apps").mustStatus(t, http.StatusOK).mustContain(t, "has a version you have not accepted yet", `href="/policy"`)
	b.get("/policy").mustStatus(t, http.StatusOK).mustContain(t, "The old policy text.", "Accept version 2026-01").
		mustNotContain(t, "The new policy text.")
	b.submit("/policy", "/policy", url.Values{"version": {"2027-01"}}).mustStatus(t, http.StatusBadRequest)
	b.submit("/policy", "/policy", url.Values{"version": {"2026-01"}}).mustRedirect(t, "/policy?done=policy-accepted")
	b.get("/policy?done=policy-accepted").mustContain(t, "you accepted the privacy policy", "You accepted this version.")
	b.get("/apps").mustNotContain(t, "policy-banner")

	// Eleven days later the new version is announced (30 days ahead).
	h.clock.Advance(11 * 24 * time.Hour)
	b = newBrowser(t, h) // a fresh sign-in: the old session expired
	b.signInAs(h.MustLogin(email, testPassword).Token)
	b.get("/apps").mustContain(t, "A new version of the privacy policy takes effect on", "Review version 2027-01")
	b.get("/policy").mustContain(t, "The new policy text.", "Accept version 2027-01", "You accepted this version.")
	b.submit("/policy", "/policy", url.Values{"version": {"2027-01"}}).mustRedirect(t, "/policy?done=policy-accepted")
	b.get("/apps").mustNotContain(t, "policy-banner")
}
