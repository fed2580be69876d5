package browser

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/traceless-vpn/traceless/agent"
	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// chromiumPath is Debian's chromium, which CI installs.
const chromiumPath = "/usr/bin/chromium"

const (
	operatorEmail    = "operator@example.net"
	operatorPassword = "blue giraffe tangerine 42"
	ownerPassword    = "correct horse battery staple"
)

// world is the control plane under test and a headless Chromium.
type world struct {
	t         *testing.T
	base      string // http://127.0.0.1:port
	srv       *controlplane.Server
	store     *store.Store
	browser   context.Context
	artifacts string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	return newWorldWith(t, worldConfig{})
}

// worldConfig changes a world: the listener the control plane serves on
// (a fresh loopback port when nil), its options, and host names besides
// 127.0.0.1 the browser may resolve (to loopback: Chromium resolves
// localhost itself).
type worldConfig struct {
	ln      net.Listener
	options func(*controlplane.Options)
	hosts   []string
}

func newWorldWith(t *testing.T, cfg worldConfig) *world {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing; CI must install Debian's chromium package (apt-get install -y chromium): %v", chromiumPath, err)
		}
		t.Skipf("browser tests need %s (apt-get install -y chromium): %v", chromiumPath, err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "traceless.db")})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	o := controlplane.Options{
		Store:    st,
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Argon2:   controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1},
		LongPoll: 2 * time.Second,
		KeyRate:  -1,
		Version:  "e2e",
	}
	if cfg.options != nil {
		cfg.options(&o)
	}
	srv, err := controlplane.New(o)
	if err != nil {
		t.Fatalf("controlplane.New: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewUnstartedServer(srv.Handler()) // 127.0.0.1 only
	if cfg.ln != nil {
		ts.Listener.Close()
		ts.Listener = cfg.ln
	}
	ts.Start()
	t.Cleanup(ts.Close)
	if _, err := srv.Bootstrap(ctx, operatorEmail, operatorPassword, ts.URL); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}

	artifacts := os.Getenv("TRACELESS_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s", artifacts)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("no-proxy-server", true),
		// Nothing but the test server resolves: the browser cannot reach
		// another host even if something tried.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"+excludes(cfg.hosts)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &world{t: t, base: ts.URL, srv: srv, store: st, browser: browserCtx, artifacts: artifacts}
}

// tab is one browser tab in its own browser context (its own cookies),
// with every console error, uncaught exception and CSP violation
// collected.
type tab struct {
	t    *testing.T
	w    *world
	ctx  context.Context
	name string // prefix of its screenshots

	mu       sync.Mutex
	label    string   // what the tab is doing now, for messages
	problems []string // console errors and CSP violations not yet reported
	allowed  map[string]bool
}

// cspReporter turns every CSP violation into a console error. DevTools
// injects it, so the page's CSP does not apply to it.
const cspReporter = `document.addEventListener("securitypolicyviolation", function (e) {
	console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline code") + " at " + e.sourceFile + ":" + e.lineNumber);
});`

func (w *world) newTab(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(w.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tb := &tab{t: t, w: w, ctx: ctx, name: name, allowed: map[string]bool{}}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.consider(m)
		}
	}()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspReporter}); err != nil {
		t.Fatalf("add the CSP reporter: %v", err)
	}
	tb.do("laptop viewport", chromedp.EmulateViewport(1280, 900))
	return tb
}

// consider records a console message that is an error, an exception or
// about security (CSP).
func (tb *tab) consider(m chromedp.ConsoleMessage) {
	bad := m.Type == chromedp.ConsoleError || m.IsException() || m.Source == "security" ||
		strings.Contains(strings.ToLower(m.Text), "content security policy")
	if !bad {
		return
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	// A page answered on purpose with an error status (a form shown again
	// with its errors) makes the browser log its status.
	if m.Source == "network" && tb.allowed[m.URL] {
		return
	}
	tb.problems = append(tb.problems, fmt.Sprintf("on %q: %s (%s:%d)", tb.label, m, m.URL, m.Line+1))
}

// allowStatus lets the page at path answer with an error status without
// that being a console error of the test.
func (tb *tab) allowStatus(path string) {
	tb.mu.Lock()
	tb.allowed[tb.w.base+path] = true
	tb.mu.Unlock()
}

// setLabel names the current step.
func (tb *tab) setLabel(label string) {
	tb.mu.Lock()
	tb.label = label
	tb.mu.Unlock()
}

// clean waits for late console messages and fails on any problem so far.
func (tb *tab) clean() {
	tb.t.Helper()
	time.Sleep(150 * time.Millisecond)
	tb.mu.Lock()
	problems := tb.problems
	tb.problems = nil
	tb.mu.Unlock()
	for _, p := range problems {
		tb.t.Errorf("console error or CSP violation %s", p)
	}
}

// do runs actions with a time limit.
func (tb *tab) do(label string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	tb.setLabel(label)
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", label, err)
	}
}

// run runs one action that returns a value, with a time limit.
func run[T any](tb *tab, label string, a chromedp.Action[T]) T {
	tb.t.Helper()
	tb.setLabel(label)
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.t.Fatalf("%s: %v", label, err)
	}
	return v
}

// navigate runs actions that load a page (a navigation, a click on a link
// or a submit button) and checks the status and the path it ends on.
func (tb *tab) navigate(label string, status int, wantPath string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	tb.setLabel(label)
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		tb.t.Fatalf("%s: %v", label, err)
	}
	if int(resp.Status) != status {
		tb.t.Fatalf("%s: status %d, want %d (%s)", label, resp.Status, status, resp.URL)
	}
	if got := tb.path(); wantPath != "" && got != wantPath {
		tb.t.Fatalf("%s: at %s, want %s", label, got, wantPath)
	}
	tb.clean()
}

// open loads a page of the dashboard.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.navigate("open "+path, http.StatusOK, path, chromedp.Navigate(tb.w.base+path))
}

// submit clicks the submit button of the form matched by form.
func (tb *tab) submit(label, form string, status int, wantPath string) {
	tb.t.Helper()
	tb.navigate(label, status, wantPath, chromedp.Click(chromedp.CSS(form+` button[type=submit]`)))
}

// fill types into fields by id.
func (tb *tab) fill(label string, fields ...string) {
	tb.t.Helper()
	var actions []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(fields); i += 2 {
		clear := fmt.Sprintf(`document.getElementById(%q).value = ""`, fields[i])
		actions = append(actions, chromedp.Evaluate[chromedp.Void](clear), chromedp.SendKeys(chromedp.ID(fields[i]), fields[i+1]))
	}
	tb.do(label, actions...)
}

// path is the path and query of the current page.
func (tb *tab) path() string {
	tb.t.Helper()
	loc := run(tb, "location", chromedp.Location())
	return strings.TrimPrefix(loc, tb.w.base)
}

// text is the visible text of the page.
func (tb *tab) text() string {
	tb.t.Helper()
	return run(tb, "page text", chromedp.Evaluate[string](`document.body.innerText`))
}

// mustSee fails unless the page shows every string.
func (tb *tab) mustSee(subs ...string) {
	tb.t.Helper()
	text := tb.text()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			tb.t.Errorf("%s: the page does not show %q:\n%s", tb.path(), s, text)
		}
	}
}

// screenshot saves the full page at laptop and phone width.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	for _, v := range []struct {
		suffix string
		size   chromedp.Action[chromedp.Void]
	}{
		{"laptop", chromedp.EmulateViewport(1280, 900)},
		{"phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)},
	} {
		tb.do("viewport "+v.suffix, v.size)
		// Nothing may stick out sideways: the page scrolls only down (wide
		// tables scroll inside their own box).
		wide := run(tb, "overflow "+name, chromedp.Evaluate[string](overflowJS))
		if wide != "" {
			tb.t.Errorf("%s at %s width: the page is wider than the screen because of %s", name, v.suffix, wide)
		}
		png := run(tb, "screenshot "+name, chromedp.FullScreenshot(100))
		file := filepath.Join(tb.w.artifacts, fmt.Sprintf("%s-%s-%s.png", tb.name, name, v.suffix))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
	tb.do("viewport laptop", chromedp.EmulateViewport(1280, 900))
	tb.clean()
}

// overflowJS names the elements that make the page wider than the
// viewport, or returns "" when it fits.
const overflowJS = `(function () {
	var vw = document.documentElement.clientWidth;
	if (document.documentElement.scrollWidth <= vw) { return ""; }
	var out = [];
	document.querySelectorAll("body *").forEach(function (e) {
		var r = e.getBoundingClientRect();
		if (r.right > vw + 1 && out.length < 5) {
			var inScroller = false;
			for (var p = e.offsetParent ? e.parentElement : null; p; p = p.parentElement) {
				if (getComputedStyle(p).overflowX === "auto") { inScroller = true; break; }
			}
			if (!inScroller) { out.push(e.tagName.toLowerCase() + (e.className ? "." + e.className : "") + " (" + Math.round(r.right) + "px > " + vw + "px)"); }
		}
	});
	return out.join(", ") || ("document " + document.documentElement.scrollWidth + "px > " + vw + "px");
})()`

// cookies returns the browser's cookies for the test server.
func (tb *tab) cookies() map[string]*network.Cookie {
	tb.t.Helper()
	res, err := chromedp.Call(tb.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.w.base}})
	if err != nil {
		tb.t.Fatalf("get cookies: %v", err)
	}
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

// fetch gets a URL with the tab's session cookie, outside the browser.
func (tb *tab) fetch(url string) (*http.Response, []byte) {
	tb.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.t.Fatal(err)
	}
	ck := tb.cookies()["traceless_session"]
	if ck == nil {
		tb.t.Fatal("no session cookie in the browser")
	}
	req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.t.Fatal(err)
	}
	return res, b
}

// copyButton clicks a copy button and waits for its confirmation.
func (tb *tab) copyButton(target string) string {
	tb.t.Helper()
	tb.do("copy "+target, chromedp.Click(chromedp.CSS(`button[data-copy="`+target+`"]`)))
	status := run(tb, "copy status", chromedp.Poll[string](
		`document.querySelector('button[data-copy="`+target+`"] + .copy-status').textContent`,
		chromedp.WithPollingTimeout(5*time.Second)))
	tb.clean()
	return status
}

// TestDashboardInChromium drives the dashboard in a real browser: the
// operator's flow (pool, enrollment token, a real agent on the fake
// WireGuard backend enrolls, the node shows online with its posture) and
// then the owner's (sign-up, plan, app, a secret and a publishable key,
// the publishable one replaced with a grace period, a device registered
// through the API with a test ticket minted on the app page, config
// download, account deletion).
func TestDashboardInChromium(t *testing.T) {
	w := newWorld(t)
	if !t.Run("operator", w.operatorFlow) {
		t.Fatal("the owner's flow needs the operator's node")
	}
	t.Run("owner", w.ownerFlow)
	t.Run("csp detector", w.cspDetector)
}

func (w *world) operatorFlow(t *testing.T) {
	tb := w.newTab(t, "operator")

	tb.open("/login")
	tb.fill("sign in", "login-email", operatorEmail, "login-password", operatorPassword)
	tb.submit("sign in", `form[action="/login"]`, http.StatusOK, "/admin")
	tb.mustSee("Overview", "Needs attention", "There is no shared pool yet", "Nodes", "Pools", "Plans", "Owners", "Signed in as "+operatorEmail)

	tb.open("/admin/nodes")
	tb.mustSee("No nodes yet")

	// A pool, with a mistake first: the error is next to the field, which
	// has the focus.
	tb.open("/admin/pools")
	tb.fill("pool form", "pool-name", "Frankfurt 1", "pool-region", "eu-central", "pool-country", "D", "pool-city", "Frankfurt")
	tb.allowStatus("/admin/pools")
	tb.submit("create pool with a bad country", `form[action="/admin/pools"]`, http.StatusBadRequest, "/admin/pools")
	focus := run(tb, "focus", chromedp.Evaluate[string](`document.activeElement.id + " " + document.activeElement.getAttribute("aria-describedby")`))
	if focus != "pool-country pool-country-error" {
		t.Errorf("focus after the error: %q, want the country field described by its error", focus)
	}
	tb.mustSee("Country must be an ISO 3166 alpha-2 code such as DE.")
	if v := run(tb, "kept value", chromedp.Value(chromedp.ID("pool-name"))); v != "Frankfurt 1" {
		t.Errorf("the form lost the pool name: %q", v)
	}
	tb.screenshot("form-error")
	tb.fill("fix country", "pool-country", "DE")
	// No plan is ticked: the pool is created and flagged as serving
	// nobody until the Pro plan includes it, below.
	tb.submit("create pool", `form[action="/admin/pools"]`, http.StatusOK, "/admin/pools?done=pool-created-no-plan")
	tb.mustSee("Pool created, in no plan", "Frankfurt 1", "eu-central")

	// An enrollment token, shown once with the agent's command line.
	tb.navigate("new enrollment token", http.StatusCreated, "", chromedp.Click(chromedp.CSS(`form[action$="/enrollment-tokens"] button`)))
	token := run(tb, "token", chromedp.Text(chromedp.ID("enroll-token")))
	command := run(tb, "command", chromedp.Text(chromedp.ID("agent-command")))
	if !regexp.MustCompile(`^tle_[A-Za-z0-9_-]{43}$`).MatchString(token) {
		t.Fatalf("token %q", token)
	}
	want := api.EnrollCommand(w.base, token, "", api.AgentCredentialFile)
	if command != want {
		t.Errorf("agent command:\n got %s\nwant %s", command, want)
	}
	if s := tb.copyButton("agent-command"); s == "" {
		t.Error("the copy button said nothing")
	}
	tb.mustSee("shown only this once")
	tb.screenshot("enroll-token")

	// A real agent on the fake WireGuard backend enrolls with the token.
	stopAgent := startAgent(t, w.base, token)
	defer stopAgent()

	deadline := time.Now().Add(30 * time.Second)
	for {
		tb.open("/admin/nodes")
		text := tb.text()
		if strings.Contains(text, "fra-1") && strings.Contains(text, "Online") && strings.Contains(text, "Privacy posture") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never showed online:\n%s", text)
		}
		time.Sleep(300 * time.Millisecond)
	}
	tb.mustSee("fra-1", "Frankfurt 1", "vpn1.example.net:51820", "Peers", "Applied revision", "e2e-agent", "1 check fails")
	pass := run(tb, "passing checks", chromedp.Evaluate[int](`document.querySelectorAll(".checks li.pass").length`))
	fail := run(tb, "failing checks", chromedp.Evaluate[string](`[...document.querySelectorAll(".checks li.fail")].map(e => e.textContent.trim()).join("|")`))
	if pass != 6 || !strings.Contains(fail, "Swap off or encrypted") || strings.Contains(fail, "|") {
		t.Errorf("posture shown: %d green, red %q; want 6 green and swap red", pass, fail)
	}
	tb.screenshot("nodes")

	// The Pro plan grants the new pool.
	pro, err := w.store.GetPlanBySlug(context.Background(), "pro")
	if err != nil {
		t.Fatal(err)
	}
	tb.open("/admin/plans/" + pro.ID)
	tb.do("grant pool", chromedp.Click(chromedp.CSS(`input[name=pools]`)))
	tb.submit("save plan", `form[action="/admin/plans/`+pro.ID+`"]`, http.StatusOK, "/admin/plans?done=plan-saved")
	tb.mustSee("Plan saved", "Frankfurt 1")
	tb.screenshot("plans")

	tb.open("/admin/owners")
	tb.mustSee(operatorEmail, "Operator")
	tb.screenshot("owners")

	tb.submit("sign out", `form.signout`, http.StatusOK, "/login?done=signed-out")
	tb.mustSee("You are signed out.")
	if tb.cookies()["traceless_session"] != nil {
		t.Error("the session cookie outlived the sign-out")
	}
}

func (w *world) ownerFlow(t *testing.T) {
	tb := w.newTab(t, "owner")
	email := "dev@example.org"

	tb.open("/signup")
	tb.screenshot("signup")
	tb.fill("sign up", "signup-email", email, "signup-password", ownerPassword)
	tb.submit("sign up", `form[action="/signup"]`, http.StatusOK, "/plan?done=welcome")
	tb.mustSee("Welcome!", "Free", "Pro", "Business", "Your plan")
	ck := tb.cookies()["traceless_session"]
	if ck == nil || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("session cookie %+v, want HttpOnly and SameSite=Strict", ck)
	}
	tb.screenshot("plan")

	tb.submit("choose Pro", `li.plan:has(input[value="pro"]) form`, http.StatusOK, "/plan?done=plan-changed")
	tb.mustSee("Your plan was changed.")
	current := run(tb, "current plan", chromedp.Text(chromedp.CSS(`li.plan.current h2`)))
	if !strings.HasPrefix(current, "Pro") {
		t.Errorf("current plan: %q", current)
	}

	tb.open("/apps")
	tb.mustSee("You have no apps yet")
	tb.fill("app name", "app-name", "Acme VPN")
	tb.submit("create app", `form[action="/apps"]`, http.StatusOK, "")
	tb.mustSee("App created", "Acme VPN", "No API keys yet")
	appPath := strings.SplitN(tb.path(), "?", 2)[0]

	tb.fill("key name", "key-name", "backend")
	tb.submit("create key", `form[action$="/keys"]`, http.StatusCreated, appPath+"/keys")
	key := run(tb, "key", chromedp.Text(chromedp.ID("new-key")))
	if !regexp.MustCompile(`^tlk_[A-Za-z0-9_-]{43}$`).MatchString(key) {
		t.Fatalf("key %q", key)
	}
	if s := tb.copyButton("new-key"); s == "" {
		t.Error("the copy button said nothing")
	}
	tb.mustSee("shown only this once")
	tb.screenshot("key-created")
	tb.open(appPath)
	if html := run(tb, "app page", chromedp.Evaluate[string](`document.documentElement.outerHTML`)); strings.Contains(html, key) {
		t.Error("the app page shows the key again")
	}
	tb.mustSee("backend", key[:12], "Secret", "Never", "Active")
	tb.screenshot("app")

	// A publishable key that expires, for the app binary.
	tb.do("choose publishable", chromedp.Click(chromedp.CSS(`input[name="kind"][value="publishable"]`)))
	tb.fill("key name", "key-name", "shipped")
	expires := time.Now().UTC().Add(90 * 24 * time.Hour).Truncate(time.Minute)
	tb.do("key expiry", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById("key-expires_at").value = %q`, expires.Format("2006-01-02T15:04"))))
	tb.submit("create publishable key", `form[action$="/keys"]`, http.StatusCreated, appPath+"/keys")
	pubKey := run(tb, "publishable key", chromedp.Text(chromedp.ID("new-key")))
	if !regexp.MustCompile(`^tlp_[A-Za-z0-9_-]{43}$`).MatchString(pubKey) {
		t.Fatalf("publishable key %q", pubKey)
	}
	tb.mustSee("Your new publishable API key “shipped”", "may ship inside your app", expires.Format("2 Jan 2006, 15:04 UTC"))
	if res, _ := provisioning(t, w.base, http.MethodGet, "/api/v1/devices", pubKey, ""); res.StatusCode != http.StatusForbidden {
		t.Errorf("a publishable key lists devices: %d", res.StatusCode)
	}

	// Replacing it keeps the shipped key working for the grace period the
	// form suggests.
	tb.open(appPath)
	tb.mustSee("Publishable", expires.Format("2 Jan 2006, 15:04 UTC"))
	replace := run(tb, "replace link", chromedp.Evaluate[string](
		`[...document.querySelectorAll("tbody tr")].find(r => r.cells[0].textContent === "shipped").querySelector('a[href$="/replace"]').getAttribute("href")`))
	tb.navigate("to replacement", http.StatusOK, replace, chromedp.Click(chromedp.CSS(`a[href="`+replace+`"]`)))
	tb.mustSee("Replace the API key “shipped”", "Installed copies of your app carry the old key")
	if v := run(tb, "suggested grace", chromedp.Evaluate[string](`document.getElementById("replace-grace_until").value`)); v == "" {
		t.Error("no grace period suggested for a publishable key")
	}
	tb.screenshot("key-replace")
	tb.submit("replace key", `form[action$="/replace"]`, http.StatusCreated, replace)
	tb.mustSee("Your new publishable API key “shipped v2”", "keeps working until")
	if next := run(tb, "replacement key", chromedp.Text(chromedp.ID("new-key"))); !strings.HasPrefix(next, "tlp_") || next == pubKey {
		t.Errorf("replacement key %q", next)
	}
	if res, _ := provisioning(t, w.base, http.MethodGet, "/api/v1/app", pubKey, ""); res.StatusCode != http.StatusOK {
		t.Errorf("the replaced key in its grace period: %d", res.StatusCode)
	}
	tb.open(appPath)
	tb.mustSee("Replaced", "by “shipped v2”; works until")
	tb.screenshot("app-keys")

	// The app registers a device with a test ticket minted on the page.
	tb.fill("ticket reference", "ticket-reference", "user-42")
	tb.submit("mint a test ticket", `form[action$="/tickets"]`, http.StatusCreated, appPath+"/tickets")
	ticket := run(tb, "ticket", chromedp.Text(chromedp.ID("new-ticket")))
	if !regexp.MustCompile(`^tlt_[A-Za-z0-9_-]{43}$`).MatchString(ticket) {
		t.Fatalf("ticket %q", ticket)
	}
	if s := tb.copyButton("new-ticket"); s == "" {
		t.Error("the copy button said nothing")
	}
	tb.mustSee("shown only this once", "“user-42”")
	tb.screenshot("ticket-created")
	pub := randomKey(t)
	res, body := provisioning(t, w.base, http.MethodPost, "/api/v1/devices", ticket, fmt.Sprintf(`{"public_key": %q}`, pub))
	var dev api.DeviceCreated
	if err := json.Unmarshal(body, &dev); err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("register a device with the ticket: %d %s", res.StatusCode, body)
	}
	if dev.ExternalRef == nil || *dev.ExternalRef != "user-42" || !strings.HasPrefix(dev.DeviceToken, "tld_") {
		t.Fatalf("registered with the ticket: ref %v, token %q", dev.ExternalRef, dev.DeviceToken)
	}
	if res, _ := provisioning(t, w.base, http.MethodPost, "/api/v1/devices", ticket, fmt.Sprintf(`{"public_key": %q}`, randomKey(t))); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a used ticket: %d", res.StatusCode)
	}

	tb.open(appPath + "/devices")
	tb.mustSee(pub, dev.IPv4, dev.IPv6, "user-42", "1 device")
	tb.screenshot("devices")

	tb.navigate("open the device", http.StatusOK, appPath+"/devices/"+dev.ID, chromedp.Click(chromedp.CSS(`a[href="`+appPath+`/devices/`+dev.ID+`"]`)))
	tb.mustSee(pub, "fra-1", "Online", ".conf file", "QR code")
	tb.screenshot("device")
	href := run(tb, "config link", chromedp.Evaluate[string](`document.querySelector('a[download][href*="/config?server="]').href`))
	res, conf := tb.fetch(href)
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("config download: %d %v", res.StatusCode, res.Header)
	}
	for _, s := range []string{"[Interface]", "PrivateKey = <device private key", "Address = " + dev.IPv4 + "/32, " + dev.IPv6 + "/128",
		"[Peer]", "Endpoint = vpn1.example.net:51820", "AllowedIPs = 0.0.0.0/0, ::/0"} {
		if !strings.Contains(string(conf), s) {
			t.Errorf("config lacks %q:\n%s", s, conf)
		}
	}
	tb.navigate("QR code", http.StatusOK, "", chromedp.Click(chromedp.CSS(`a[href*="#qr"]`)))
	tb.mustSee("as a QR code")
	if wd := run(tb, "QR image", chromedp.Poll[int](`document.querySelector("#qr img").complete && document.querySelector("#qr img").naturalWidth`,
		chromedp.WithPollingTimeout(5*time.Second))); wd != 512 {
		t.Errorf("QR image width %d, want 512", wd)
	}
	tb.screenshot("device-qr")
	if res, png := tb.fetch(href + "&format=qr"); res.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Errorf("QR: %s", res.Header.Get("Content-Type"))
	}

	tb.open("/servers")
	tb.mustSee("fra-1", "eu-central", "Frankfurt, DE", "Online")
	tb.screenshot("servers")
	tb.open("/privacy")
	tb.mustSee("What we store about you and your users", "Never stored", "WireGuard handshake times", "public_key")
	tb.screenshot("privacy")

	res, export := tb.fetch(w.base + "/account/export")
	if res.StatusCode != http.StatusOK || !strings.Contains(string(export), email) || !strings.Contains(string(export), pub) {
		t.Errorf("export: %d\n%s", res.StatusCode, export)
	}

	// Account deletion, with its confirmation.
	tb.open("/account")
	tb.mustSee(email, "Pro", "Download my data", "Delete my account")
	tb.screenshot("account")
	tb.navigate("to deletion", http.StatusOK, "/account/delete", chromedp.Click(chromedp.CSS(`a[href="/account/delete"]`)))
	tb.mustSee("This cannot be undone", "1 app", "1 device")
	tb.screenshot("account-delete")
	tb.fill("confirm", "delete-confirm", email)
	tb.submit("delete account", `form[action="/account/delete"]`, http.StatusOK, "/login?done=deleted")
	tb.mustSee("Your account was deleted")
	tb.screenshot("deleted")
	if tb.cookies()["traceless_session"] != nil {
		t.Error("the session cookie outlived the account")
	}
	if _, err := w.store.GetOwnerByEmail(context.Background(), email); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the account is still stored: %v", err)
	}
	tb.navigate("apps after deletion", http.StatusOK, "/login?next=%2Fapps", chromedp.Navigate(w.base+"/apps"))
}

// provisioning calls the provisioning API with a credential and returns
// the answer and its body.
func provisioning(t *testing.T, base, method, path, credential, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+credential)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// cspDetector proves that the collector sees a CSP violation: an inline
// script added to a page is blocked and reported.
func (w *world) cspDetector(t *testing.T) {
	tb := w.newTab(t, "detector")
	tb.open("/privacy")
	tb.do("inject inline script", chromedp.Evaluate[chromedp.Void](`(function () {
		var s = document.createElement("script");
		s.textContent = "window.injected = true";
		document.body.appendChild(s);
	})()`))
	time.Sleep(300 * time.Millisecond)
	tb.mu.Lock()
	problems := tb.problems
	tb.problems = nil
	tb.mu.Unlock()
	if len(problems) == 0 {
		t.Fatal("an inline script ran or was blocked without the test noticing")
	}
	if ran := run(tb, "injected", chromedp.Evaluate[bool](`window.injected === true`)); ran {
		t.Error("the CSP let an inline script run")
	}
	t.Logf("detected as expected: %s", problems[0])
}

func randomKey(t *testing.T) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// startAgent runs the real node agent against the control plane, on the
// fake WireGuard backend and a fake host whose swap is on (so the posture
// shows a red check), until the returned func is called.
func startAgent(t *testing.T, server, token string) func() {
	t.Helper()
	fake, links := wg.NewFake(), wg.NewFakeLinks(true)
	root := &memFS{files: fstest.MapFS{
		"proc/swaps": {Data: []byte("Filename\tType\tSize\tUsed\tPriority\n/dev/sda2\tpartition\t1048572\t0\t-2\n")},
		"proc/sys/net/netfilter/nf_conntrack_acct":      {Data: []byte("0\n")},
		"proc/sys/net/netfilter/nf_conntrack_timestamp": {Data: []byte("0\n")},
		"proc/sys/net/ipv4/ip_forward":                  {Data: []byte("0\n")},
		"proc/sys/net/ipv6/conf/all/forwarding":         {Data: []byte("0\n")},
	}}
	host := agent.Host{
		FS:        root,
		WriteFile: root.WriteFile,
		LookPath:  func(string) (string, error) { return "", errors.New("not found") },
		Run: func(context.Context, string, ...string) ([]byte, error) {
			return nil, errors.New("no commands in tests")
		},
		Firewall: noFirewall{},
		Process:  &hardenedProcess{dumpable: true, core: 1 << 20},
	}
	a, err := agent.New(agent.Options{
		Servers:        []string{server},
		EnrollToken:    token,
		CredentialFile: filepath.Join(t.TempDir(), "state", "credential"),
		Name:           "fra-1",
		NodeEndpoint:   "vpn1.example.net:51820",
		ListenPort:     51820,
		Version:        "e2e-agent",
		Open:           func() (*wg.Interface, error) { return wg.NewFakeInterface("tl0", fake, links), nil },
		Host:           host,
		StatusInterval: 300 * time.Millisecond, PostureInterval: time.Minute, AntiEntropyInterval: time.Minute,
		ScrubTick: time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		PollTimeout: 10 * time.Second, RequestTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		a.Close()
	}
}

// memFS is a writable in-memory root file system for the agent's host.
type memFS struct {
	mu    sync.Mutex
	files fstest.MapFS
}

func (m *memFS) Open(name string) (fs.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files.Open(name)
}

// WriteFile writes an existing file (sysctls cannot be created).
func (m *memFS) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = strings.TrimPrefix(filepath.Clean(name), "/")
	if _, ok := m.files[name]; !ok {
		return fs.ErrNotExist
	}
	m.files[name] = &fstest.MapFile{Data: append([]byte(nil), data...), Mode: 0o644}
	return nil
}

// noFirewall accepts every rule set and has no logging rules.
type noFirewall struct{}

func (noFirewall) Apply(agent.FirewallRules) error { return nil }
func (noFirewall) LogRules() (int, error)          { return 0, nil }

// hardenedProcess is a process whose hardening by the agent sticks.
type hardenedProcess struct {
	mu       sync.Mutex
	dumpable bool
	core     uint64
}

func (p *hardenedProcess) SetNotDumpable() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dumpable = false
	return nil
}

func (p *hardenedProcess) Dumpable() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dumpable, nil
}

func (p *hardenedProcess) SetNoCore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.core = 0
	return nil
}

func (p *hardenedProcess) CoreLimit() (uint64, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.core, p.core, nil
}

// excludes writes host-resolver-rules exclusions for hosts.
func excludes(hosts []string) string {
	var b strings.Builder
	for _, h := range hosts {
		b.WriteString(" , EXCLUDE " + h)
	}
	return b.String()
}
