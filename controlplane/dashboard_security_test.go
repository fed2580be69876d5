package controlplane

import (
	"net/url"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/mailpit"
)

// TestDashboardEmailFlows walks the mailed links in the dashboard: the
// banner of an unverified owner, the key form refused, the verification
// link (a GET spends nothing), a password reset by mail that signs the
// browser out, and a password change that keeps it signed in.
func TestDashboardEmailFlows(t *testing.T) {
	mp := mailpit.Start(t)
	h := newHarness(t, withMail(mp))
	b := newBrowser(t, h)
	email := h.NewEmail()
	b.signup(email)
	b.get("/apps").mustStatus(t, 200).mustContain(t, "Verify your email address", "Send a new link")
	b.submit("/apps", "/apps", url.Values{"name": {"vpn"}}).mustStatus(t, 303)
	var appID string
	for _, a := range mustApps(t, h, email) {
		appID = a
	}
	b.submit("/apps/"+appID, "/apps/"+appID+"/keys", url.Values{"name": {"k"}}).mustStatus(t, 403).mustContain(t, "verify your email address first")
	// Nor a replacement (of a key the server made) or a test ticket.
	o, err := h.store.GetOwnerByEmail(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	old, err := h.srv.createKey(t.Context(), o.ID, appID, api.APIKeyInput{Name: "made"})
	if err != nil {
		t.Fatal(err)
	}
	b.submit("/apps/"+appID, "/apps/"+appID+"/keys/"+old.ID+"/replace", url.Values{"name": {"k"}}).mustStatus(t, 403).mustContain(t, "verify your email address first")
	b.submit("/apps/"+appID, "/apps/"+appID+"/tickets", nil).mustStatus(t, 403).mustContain(t, "verify your email address first")

	link := mp.WaitFor(t, email, "Confirm your email", mailTimeout).Link(t, verifyEmailPath)
	b.get(link.RequestURI()).mustStatus(t, 200).mustContain(t, "Confirm my email address")
	b.get(link.RequestURI()).mustStatus(t, 200) // opening the link twice spends nothing
	b.submit(link.RequestURI(), verifyEmailPath, url.Values{"token": {link.Query().Get("token")}}).mustRedirect(t, "/apps?done=email-verified")
	b.get("/apps").mustNotContain(t, "Verify your email address")
	b.submit("/apps/"+appID, "/apps/"+appID+"/keys", url.Values{"name": {"k"}}).mustStatus(t, 201)

	// A password change keeps this browser signed in and ends the others.
	other := newBrowser(t, h)
	other.signInAs(h.MustLogin(email, testPassword).Token)
	b.submit("/account/security", "/account/password", url.Values{"current_password": {"wrong one here"}, "new_password": {"a brand new passphrase"}}).
		mustStatus(t, 403).mustContain(t, "The current password is wrong")
	b.submit("/account/security", "/account/password", url.Values{"current_password": {testPassword}, "new_password": {"a brand new passphrase"}}).
		mustRedirect(t, "/account/security?done=password-changed")
	b.get("/account/security?done=password-changed").mustStatus(t, 200).mustContain(t, "Password changed")
	other.get("/apps").mustRedirect(t, "/login")

	// Reset by mail from the sign-in page.
	anon := newBrowser(t, h)
	anon.get("/login").mustContain(t, "Forgot your password?")
	anon.submit("/forgot-password", "/forgot-password", url.Values{"email": {email}}).mustStatus(t, 200).mustContain(t, "a link to reset its password is on its way")
	unknown := newBrowser(t, h).submit("/forgot-password", "/forgot-password", url.Values{"email": {"nobody@example.com"}}).mustStatus(t, 200)
	unknown.mustContain(t, "a link to reset its password is on its way")
	reset := mp.WaitFor(t, email, "Reset your Traceless password", mailTimeout).Link(t, resetPasswordPath)
	anon.submit(reset.RequestURI(), resetPasswordPath, url.Values{"token": {reset.Query().Get("token")}, "new_password": {"short"}}).mustStatus(t, 400)
	anon.submit(reset.RequestURI(), resetPasswordPath, url.Values{"token": {reset.Query().Get("token")}, "new_password": {"a third passphrase"}}).
		mustRedirect(t, "/login?done=password-reset")
	b.get("/apps").mustRedirect(t, "/login") // every session ended
	anon.submit("/login", "/login", url.Values{"email": {email}, "password": {"a third passphrase"}}).mustRedirect(t, "/apps")
}

// mustApps returns the IDs of the owner's apps.
func mustApps(t *testing.T, h *harness, email string) []string {
	t.Helper()
	o, err := h.store.GetOwnerByEmail(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	apps, err := h.store.ListApps(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range apps {
		ids = append(ids, a.ID)
	}
	return ids
}
