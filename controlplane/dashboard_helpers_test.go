package controlplane

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// browser is a minimal browser for the dashboard's handler tests: a cookie
// jar over the harness's in-process handler, each request from a fresh
// client address (so rate limits stay out of the way), redirects not
// followed.
type browser struct {
	t   *testing.T
	h   *harness
	jar map[string]string
}

func newBrowser(t *testing.T, h *harness) *browser {
	return &browser{t: t, h: h, jar: map[string]string{}}
}

// page is a response as a browser sees it.
type pageResponse struct {
	Status   int
	Header   http.Header
	Body     string
	Location string
}

func (b *browser) do(method, path string, form url.Values) pageResponse {
	b.t.Helper()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	req.RemoteAddr = b.h.NextAddr()
	for k, v := range b.jar {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	rec := httptest.NewRecorder()
	b.h.srv.Handler().ServeHTTP(rec, req)
	res := rec.Result()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.jar, c.Name)
		} else {
			b.jar[c.Name] = c.Value
		}
	}
	return pageResponse{Status: res.StatusCode, Header: res.Header, Body: rec.Body.String(), Location: res.Header.Get("Location")}
}

// get loads a page.
func (b *browser) get(path string) pageResponse {
	b.t.Helper()
	return b.do(http.MethodGet, path, nil)
}

var csrfFieldRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// submit loads the page at from, takes the CSRF token of its forms and
// posts form to action, as a person filling in the form would.
func (b *browser) submit(from, action string, form url.Values) pageResponse {
	b.t.Helper()
	p := b.get(from)
	if p.Status != http.StatusOK {
		b.t.Fatalf("GET %s: status %d, want 200\n%.500s", from, p.Status, p.Body)
	}
	m := csrfFieldRE.FindStringSubmatch(p.Body)
	if m == nil || m[1] == "" {
		b.t.Fatalf("GET %s: no CSRF token in the page", from)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set(csrfField, m[1])
	return b.do(http.MethodPost, action, form)
}

// mustStatus fails unless p has status want.
func (p pageResponse) mustStatus(t *testing.T, want int) pageResponse {
	t.Helper()
	if p.Status != want {
		t.Fatalf("status %d, want %d; Location %q\n%.1500s", p.Status, want, p.Location, p.Body)
	}
	return p
}

// mustRedirect fails unless p is a 303 to a location starting with prefix.
func (p pageResponse) mustRedirect(t *testing.T, prefix string) pageResponse {
	t.Helper()
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, prefix) {
		t.Fatalf("got %d to %q, want 303 to %s…\n%.1000s", p.Status, p.Location, prefix, p.Body)
	}
	return p
}

// mustContain fails unless the page's text contains every string.
func (p pageResponse) mustContain(t *testing.T, subs ...string) pageResponse {
	t.Helper()
	text := html.UnescapeString(p.Body)
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("page lacks %q:\n%.3000s", s, p.Body)
		}
	}
	return p
}

// mustNotContain fails when the page's text contains any string.
func (p pageResponse) mustNotContain(t *testing.T, subs ...string) pageResponse {
	t.Helper()
	text := html.UnescapeString(p.Body)
	for _, s := range subs {
		if strings.Contains(text, s) {
			t.Errorf("page contains %q", s)
		}
	}
	return p
}

// signup creates an owner through the sign-up form and stays signed in.
func (b *browser) signup(email string) {
	b.t.Helper()
	b.submit("/signup", "/signup", url.Values{"email": {email}, "password": {testPassword}}).mustRedirect(b.t, "/plan")
}

// signInAs puts an API sign-in token into the session cookie.
func (b *browser) signInAs(token string) { b.jar[sessionCookie] = token }

// dashWorld is an installation for the dashboard tests: an operator, a
// shared pool granted by "pro" with one enrolled node, and owner A on
// "pro" with an app, a key and a device, signed in in browser a.
type dashWorld struct {
	*syncWorld
	a, admin *browser
	app      api.App
	dev      api.DeviceCreated
}

func newDashWorld(t *testing.T) *dashWorld {
	t.Helper()
	sw := newSyncWorld(t, func(o *Options) { o.LongPoll = 50 * time.Millisecond })
	w := &dashWorld{syncWorld: sw, a: newBrowser(t, sw.h), admin: newBrowser(t, sw.h)}
	var apps api.AppList
	sw.h.Do(request{Method: "GET", Path: "/api/v1/apps", Token: sw.owner.Token}).MustStatus(t, 200).MustDecode(t, &apps)
	w.app = apps.Apps[0]
	w.dev = sw.register(t)
	w.a.signInAs(sw.owner.Token)
	w.admin.signInAs(sw.admin)
	return w
}

// appCount is the number of apps owner id has, straight from the store.
func (w *dashWorld) appCount(t *testing.T, ownerID string) int {
	t.Helper()
	apps, err := w.h.store.ListApps(context.Background(), ownerID)
	if err != nil {
		t.Fatal(err)
	}
	return len(apps)
}

// ownerExists reports whether the account is still stored.
func (w *dashWorld) ownerExists(t *testing.T, id string) bool {
	t.Helper()
	_, err := w.h.store.GetOwner(context.Background(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}
