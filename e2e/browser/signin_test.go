package browser

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/internal/mailpit"
)

// mailWait bounds the wait for a mail to reach Mailpit.
const mailWait = 20 * time.Second

// TestBrowserSignIn walks sign-in security in Chromium against a real SMTP
// server (Mailpit): sign-up, the verification mail read from Mailpit, its
// link, an API key, two-factor enrolment with the QR code (the code
// computed from the secret, as an authenticator app does), sign-out, sign-in
// with a code, the same code refused in another browser, a password reset
// by mail, and the old sessions gone.
func TestBrowserSignIn(t *testing.T) {
	mp := mailpit.Start(t)
	w := newWorldWith(t, worldConfig{options: func(o *controlplane.Options) {
		o.Alerts.SMTP = controlplane.SMTPConfig{Addr: mp.SMTPAddr, From: "traceless@example.org"}
	}})
	const email = "secure@example.org"
	tb := w.newTab(t, "signin")

	// Sign-up: the banner asks for the mailed link.
	tb.open("/signup")
	tb.fill("sign up", "signup-email", email, "signup-password", ownerPassword)
	tb.submit("sign up", `form[action="/signup"]`, http.StatusOK, "/plan?done=welcome")
	tb.mustSee("Verify your email address", "Send a new link")
	tb.screenshot("verify-banner")

	link := mp.WaitFor(t, email, "Confirm your email", mailWait).Link(t, "/verify-email")
	if link.Host != strings.TrimPrefix(w.base, "http://") {
		t.Fatalf("the mailed link goes to %s, not to this server %s", link.Host, w.base)
	}
	tb.navigate("open the mailed link", http.StatusOK, link.RequestURI(), chromedp.Navigate(link.String()))
	tb.mustSee("Confirm your email address")
	tb.screenshot("verify-email")
	tb.submit("confirm the address", `form[action="/verify-email"]`, http.StatusOK, "/apps?done=email-verified")
	tb.mustSee("your email address is verified")
	if strings.Contains(tb.text(), "Verify your email address") {
		t.Error("the banner outlived the verification")
	}

	// An API key.
	tb.fill("app name", "app-name", "Secure VPN")
	tb.submit("create app", `form[action="/apps"]`, http.StatusOK, "")
	appPath := strings.SplitN(tb.path(), "?", 2)[0]
	tb.fill("key name", "key-name", "backend")
	tb.submit("create key", `form[action$="/keys"]`, http.StatusCreated, appPath+"/keys")
	if key := run(tb, "key", chromedp.Text(chromedp.ID("new-key"))); !strings.HasPrefix(key, "tlk_") {
		t.Fatalf("key %q", key)
	}

	// Two-factor enrolment with the QR code.
	tb.open("/account/security")
	tb.mustSee("Two-factor authentication", "off")
	tb.submit("set up two-factor", `form[action="/account/2fa"]`, http.StatusOK, "/account/security#two-factor")
	tb.mustSee("Scan this QR code")
	if wd := run(tb, "QR image", chromedp.Poll[int](`document.querySelector("img.qr").complete && document.querySelector("img.qr").naturalWidth`,
		chromedp.WithPollingTimeout(5*time.Second))); wd != 512 {
		t.Errorf("QR image width %d, want 512", wd)
	}
	tb.screenshot("2fa-enrol")
	secret := run(tb, "secret", chromedp.Text(chromedp.ID("totp-secret")))
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tb.fill("the app's code", "totp-code", code)
	tb.submit("turn two-factor on", `form[action="/account/2fa/confirm"]`, http.StatusOK, "/account/2fa/confirm")
	tb.mustSee("Two-factor authentication is on", "shown only now")
	recovery := run(tb, "recovery codes", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#recovery-codes code")).map(function (e) { return e.textContent; })`))
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes on the page, want 10", len(recovery))
	}
	tb.screenshot("2fa-on")

	// Sign out, then in: the password, then a code. The confirmation spent
	// the code of its time step; the app's next code (the phone's clock may
	// be ahead by one step) signs in.
	tb.submit("sign out", `form[action="/logout"]`, http.StatusOK, "/login?done=signed-out")
	tb.fill("sign in", "login-email", email, "login-password", ownerPassword)
	tb.submit("sign in", `form[action="/login"]`, http.StatusOK, "/login")
	tb.mustSee("Two-factor authentication", "6-digit code")
	if tb.cookies()["traceless_session"] != nil {
		t.Fatal("a session cookie before the second factor")
	}
	tb.screenshot("login-code")
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	tb.fill("code", "code-code", next)
	tb.submit("send the code", `form[action="/login/code"]`, http.StatusOK, "/apps")
	tb.mustSee("Secure VPN")

	// The same code in another browser is refused.
	other := w.newTab(t, "signin-replay")
	other.allowStatus("/login/code")
	other.open("/login")
	other.fill("sign in", "login-email", email, "login-password", ownerPassword)
	other.submit("sign in", `form[action="/login"]`, http.StatusOK, "/login")
	other.fill("replayed code", "code-code", next)
	other.submit("replay the code", `form[action="/login/code"]`, http.StatusUnauthorized, "/login/code")
	other.mustSee("was used already")
	other.screenshot("code-replayed")
	if other.cookies()["traceless_session"] != nil {
		t.Error("a replayed code gave a session")
	}

	// A password reset by mail, from the sign-in page.
	reset := w.newTab(t, "signin-reset")
	reset.open("/login")
	reset.navigate("forgot the password", http.StatusOK, "/forgot-password", chromedp.Click(chromedp.CSS(`a[href="/forgot-password"]`)))
	reset.fill("email", "forgot-email", email)
	reset.submit("mail a link", `form[action="/forgot-password"]`, http.StatusOK, "/forgot-password")
	reset.mustSee("a link to reset its password is on its way")
	rl := mp.WaitFor(t, email, "Reset your Traceless password", mailWait).Link(t, "/reset-password")
	reset.navigate("open the reset link", http.StatusOK, rl.RequestURI(), chromedp.Navigate(rl.String()))
	reset.screenshot("reset-password")
	const newPassword = "a fresh passphrase for 2025"
	reset.fill("new password", "reset-new_password", newPassword)
	reset.submit("set the new password", `form[action="/reset-password"]`, http.StatusOK, "/login?done=password-reset")
	reset.mustSee("Your password is reset")

	// Every old session is gone.
	tb.navigate("apps with the old session", http.StatusOK, "/login?next=%2Fapps", chromedp.Navigate(w.base+"/apps"))
	// The new password and a recovery code sign in, once the email's login
	// limit (five attempts at once, then one every 12 s) lets it.
	time.Sleep(12 * time.Second)
	reset.fill("sign in", "login-email", email, "login-password", newPassword)
	reset.submit("sign in", `form[action="/login"]`, http.StatusOK, "/login")
	reset.fill("recovery code", "code-code", recovery[0])
	reset.submit("send the recovery code", `form[action="/login/code"]`, http.StatusOK, "/apps")
	reset.mustSee("Secure VPN")
}
