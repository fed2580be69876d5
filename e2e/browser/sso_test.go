package browser

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/internal/testoidc"
)

var (
	ssoNew      = testoidc.User{ID: "new-subject", Username: "newcomer", Password: "newcomer's provider password", Email: "newcomer@example.org", EmailVerified: true}
	ssoExisting = testoidc.User{ID: "existing-subject", Username: "existing", Password: "existing's provider password", Email: "existing@example.org", EmailVerified: true}
)

// TestBrowserSSO signs in through a real OpenID provider in Chromium: the
// provider's button on the sign-in page, the provider's own login page, back
// to the dashboard. The provider answers as http://localhost:…, another site
// than the dashboard's http://127.0.0.1:…, so the browser applies SameSite
// as it would between a real provider and a real server.
func TestBrowserSSO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	op := testoidc.Start(t, []testoidc.User{ssoNew, ssoExisting}, base+"/api/v1/auth/oidc/test/callback")
	w := newWorldWith(t, worldConfig{ln: ln, hosts: []string{"localhost"}, options: func(o *controlplane.Options) {
		o.PublicURL = base
		o.OIDCProviders = []controlplane.OIDCProvider{{Name: "test", Label: "Test ID", Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret}}
	}})
	if !strings.HasPrefix(op.Issuer, "http://localhost:") {
		t.Fatalf("the provider's issuer %s is not on localhost", op.Issuer)
	}

	t.Run("sign up", func(t *testing.T) {
		tb := w.newTab(t, "sso-signup")
		tb.open("/login")
		tb.mustSee("Sign in with Test ID")
		tb.screenshot("login")
		tb.providerLogin(op, ssoNew)
		w.waitPath(tb, "/login/sso")
		tb.mustSee("Finish signing in", "You signed in with Test ID", "Or create a new account")
		if v := run(tb, "prefilled email", chromedp.Value(chromedp.ID("ssosignup-email"))); v != "newcomer@example.org" {
			t.Errorf("the signup form offers %q, want the provider's email", v)
		}
		tb.screenshot("finish")
		tb.submit("create the account", `form[action="/login/sso/signup"]`, http.StatusOK, "/plan?done=welcome")
		tb.mustSee("Welcome!", "Signed in as newcomer@example.org")
		ck := tb.cookies()["traceless_session"]
		if ck == nil || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict {
			t.Fatalf("session cookie %+v", ck)
		}
		tb.open("/account")
		tb.mustSee("Single sign-on", "Test ID", "Unlink")
		tb.screenshot("account")
	})

	t.Run("sign in again", func(t *testing.T) {
		tb := w.newTab(t, "sso-signin")
		tb.open("/login")
		tb.providerLogin(op, ssoNew)
		// The callback's page moves on to /apps by itself, and the
		// SameSite=Strict session cookie goes along.
		w.waitPath(tb, "/apps")
		tb.mustSee("Signed in as newcomer@example.org")
		for name := range tb.cookies() {
			if name == "traceless_oidc" || name == "traceless_sso" {
				t.Errorf("cookie %s outlives the sign-in", name)
			}
		}
	})

	t.Run("link an existing account", func(t *testing.T) {
		res, err := http.Post(w.base+"/api/v1/auth/signup", "application/json",
			strings.NewReader(`{"email":"existing@example.org","password":"`+ownerPassword+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("signup: %s", res.Status)
		}
		tb := w.newTab(t, "sso-link")
		tb.open("/login")
		tb.providerLogin(op, ssoExisting)
		w.waitPath(tb, "/login/sso")
		tb.mustSee("An account with the email existing@example.org exists", "Link to your account")
		tb.mustSee("Or create a new account with another email")
		if v := run(tb, "signup email", chromedp.Value(chromedp.ID("ssosignup-email"))); v != "" {
			t.Errorf("the signup form offers %q, an email that has an account", v)
		}
		// The provider's word is not enough: a wrong password is refused.
		tb.fill("wrong password", "ssolink-password", "not the password at all")
		tb.allowStatus("/login/sso/link")
		tb.submit("link with a wrong password", `form[action="/login/sso/link"]`, http.StatusUnauthorized, "/login/sso/link")
		tb.mustSee("Wrong email or password.")
		tb.fill("password", "ssolink-password", ownerPassword)
		tb.submit("link", `form[action="/login/sso/link"]`, http.StatusOK, "/apps")
		tb.mustSee("Signed in as existing@example.org")
	})
}

// providerLogin clicks the provider's button on the sign-in page and signs
// in on the provider's own login page.
func (tb *tab) providerLogin(op *testoidc.Provider, u testoidc.User) {
	tb.t.Helper()
	// The provider's pages have no favicon; that is the provider's.
	tb.mu.Lock()
	tb.allowed[op.Issuer+"favicon.ico"] = true
	tb.mu.Unlock()
	tb.navigate("Sign in with Test ID", http.StatusOK, "", chromedp.Click(chromedp.CSS(`.sso a.button`)))
	if loc := run(tb, "location", chromedp.Location()); !strings.HasPrefix(loc, op.Issuer) {
		tb.t.Fatalf("the button led to %s, not to the provider %s", loc, op.Issuer)
	}
	tb.do("provider login form", chromedp.SendKeys(chromedp.ID("username"), u.Username), chromedp.SendKeys(chromedp.ID("password"), u.Password))
	tb.do("provider login", chromedp.Click(chromedp.CSS(`button[type=submit]`)))
}

// waitPath waits until the tab is at path (after the provider's redirects
// and the callback page's refresh).
func (w *world) waitPath(tb *tab, path string) {
	tb.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		loc := run(tb, "location", chromedp.Location())
		if loc == w.base+path {
			run(tb, "ready", chromedp.Evaluate[string](`document.readyState`))
			tb.clean()
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("at %s, want %s%s; page:\n%s", loc, w.base, path, tb.text())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
