package controlplane

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// form posts v with the CSRF token of the page at from.
func (b *ssoBrowser) form(from, to string, v url.Values) response {
	b.t.Helper()
	page := b.do("GET", from, nil, false).MustStatus(b.t, http.StatusOK)
	m := csrfRE.FindStringSubmatch(string(page.Body))
	if m == nil {
		b.t.Fatalf("%s has no form token:\n%s", from, page.Body)
	}
	v.Set("csrf", m[1])
	req, _ := http.NewRequest("POST", b.w.h.ts.URL+to, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: body}
}

// TestSSODashboard: the page finishing a provider sign-in links an existing
// account only with its password, and the account page unlinks providers,
// the last one only with the password.
func TestSSODashboard(t *testing.T) {
	w := newSSOWorlds(t, func(*Options) {})[0]
	h := w.h
	if _, err := h.srv.createAccount(context.Background(), "bob@example.com", testPassword, store.RoleOwner); err != nil {
		t.Fatal(err)
	}
	b := w.browser(t)
	r := b.signIn(ssoBob, false).MustStatus(t, http.StatusOK)
	if !strings.Contains(string(r.Body), `url=/login/sso"`) {
		t.Fatalf("callback page: %s", r.Body)
	}
	page := string(b.do("GET", "/login/sso", nil, false).MustStatus(t, http.StatusOK).Body)
	for _, want := range []string{"An account with the email bob@example.com exists", `value="bob@example.com"`, "Link and sign in"} {
		if !strings.Contains(page, want) {
			t.Errorf("/login/sso lacks %q", want)
		}
	}
	if !strings.Contains(page, "Or create a new account with another email") || strings.Contains(page, `id="ssosignup-email" name="email" type="email" value="bob@example.com"`) {
		t.Error("/login/sso offers a new account under an email that has one")
	}
	r = b.form("/login/sso", "/login/sso/link", url.Values{"email": {"bob@example.com"}, "password": {"not bob's password"}})
	if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), "Wrong email or password.") {
		t.Fatalf("link with a wrong password: %d %s", r.Status, r.Body)
	}
	r = b.form("/login/sso", "/login/sso/signup", url.Values{"email": {"bob@example.com"}})
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "link this sign-in to it with its password") {
		t.Fatalf("signup with bob's email: %d %s", r.Status, r.Body)
	}
	r = b.form("/login/sso", "/login/sso/link", url.Values{"email": {"bob@example.com"}, "password": {testPassword}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/apps" || r.SessionCookie() == nil {
		t.Fatalf("link: %d %v", r.Status, r.Header)
	}
	// The waiting sign-in is spent.
	if r := b.do("GET", "/login/sso", nil, false); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Errorf("/login/sso after the link: %d %s", r.Status, r.Header.Get("Location"))
	}

	acct := string(b.do("GET", "/account", nil, false).MustStatus(t, http.StatusOK).Body)
	m := regexp.MustCompile(`action="/account/sso/([^/"]+)/unlink"`).FindStringSubmatch(acct)
	if m == nil || !strings.Contains(acct, "Test ID") || !strings.Contains(acct, `name="password"`) {
		t.Fatalf("account page:\n%s", acct)
	}
	unlink := "/account/sso/" + m[1] + "/unlink"
	r = b.form("/account", unlink, url.Values{})
	if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "needs the account") {
		t.Fatalf("unlink without the password: %d %s", r.Status, r.Body)
	}
	r = b.form("/account", unlink, url.Values{"password": {testPassword}})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/account?done=sso-unlinked" {
		t.Fatalf("unlink: %d %v", r.Status, r.Header)
	}
	// The privacy manifest and page name the provider as a third party.
	var pm api.PrivacyManifest
	h.Do(request{Method: "GET", Path: "/api/v1/privacy"}).MustStatus(t, http.StatusOK).MustDecode(t, &pm)
	if len(pm.ThirdParties) != 1 || !strings.Contains(pm.ThirdParties[0].Name, "Test ID") || !strings.Contains(pm.ThirdParties[0].Name, w.op.Issuer) ||
		!strings.Contains(pm.ThirdParties[0].Receives, "each sign-in made through it") {
		t.Errorf("third parties: %+v", pm.ThirdParties)
	}
	if page := string(b.do("GET", "/privacy", nil, false).MustStatus(t, http.StatusOK).Body); !strings.Contains(page, "Third parties") || !strings.Contains(page, "Test ID") {
		t.Errorf("the privacy page does not name the provider")
	}
	acct = string(b.do("GET", "/account?done=sso-unlinked", nil, false).MustStatus(t, http.StatusOK).Body)
	if !strings.Contains(acct, "Sign-in provider unlinked") || !strings.Contains(acct, "Link Test ID") {
		t.Errorf("account page after unlinking:\n%s", acct)
	}
}
