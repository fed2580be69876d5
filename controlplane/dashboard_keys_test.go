package controlplane

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The app page's credentials (dashboard_keys.go): key kinds and expiry,
// replacement with a grace period, a test ticket and the registration cap.

var (
	shownKeyRE    = regexp.MustCompile(`<code id="new-key" class="secret">(tl[kp]_[A-Za-z0-9_-]{43})</code>`)
	shownTicketRE = regexp.MustCompile(`<code id="new-ticket" class="secret">(tlt_[A-Za-z0-9_-]{43})</code>`)
)

// shownSecret returns the secret a page shows once.
func shownSecret(t *testing.T, re *regexp.Regexp, p pageResponse) string {
	t.Helper()
	m := re.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no secret on the page:\n%.4000s", p.Body)
	}
	return m[1]
}

// formTime writes t as the dashboard's date-and-time fields take it.
func formTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04") }

// keyByName returns the app's stored key of that name.
func (w *dashWorld) keyByName(t *testing.T, name string) store.APIKey {
	t.Helper()
	keys, err := w.h.store.ListAPIKeys(context.Background(), w.owner.Owner.ID, w.app.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.Name == name {
			return k
		}
	}
	t.Fatalf("no key %q among %d", name, len(keys))
	return store.APIKey{}
}

// keyRowHTML returns the table row of the key named name on the app page.
func keyRowHTML(t *testing.T, p pageResponse, name string) string {
	t.Helper()
	for _, row := range strings.Split(p.Body, "<tr>") {
		if strings.HasPrefix(row, `<td data-label="Name">`+name+"</td>") {
			return row[:strings.Index(row, "</tr>")]
		}
	}
	t.Fatalf("no row for key %q:\n%.4000s", name, p.Body)
	return ""
}

// mustRowContain fails unless the key's row shows every string.
func mustRowContain(t *testing.T, p pageResponse, name string, subs ...string) string {
	t.Helper()
	row := keyRowHTML(t, p, name)
	for _, s := range subs {
		if !strings.Contains(row, s) {
			t.Errorf("the row of %q lacks %q: %s", name, s, row)
		}
	}
	return row
}

// TestDashboardKeyKinds: an owner creates a publishable key with an expiry
// on the app page; the list shows every key's kind, expiry and state; the
// key registers a device but may not list devices, and stops at its
// expiry. Bad kinds, times and duplicate names come back next to their
// field, and create nothing.
func TestDashboardKeyKinds(t *testing.T) {
	w := newDashWorld(t)
	appPath := "/apps/" + w.app.ID
	p := w.a.get(appPath).mustStatus(t, 200)
	checkPage(t, "app", p)
	mustRowContain(t, p, "k", ">Secret</td>", ">Never</td>", "Active", appPath+"/keys/", "/replace")
	p.mustContain(t, `type="radio" name="kind" value="secret" checked`, `value="publishable"`, `type="datetime-local"`)

	exp := w.h.clock.Now().Add(48 * time.Hour).Truncate(time.Minute)
	p = w.a.submit(appPath, appPath+"/keys", url.Values{"name": {"shipped"}, "kind": {"publishable"}, "expires_at": {formTime(exp)}}).
		mustStatus(t, http.StatusCreated)
	checkPage(t, "publishable key created", p)
	key := shownSecret(t, shownKeyRE, p)
	if !strings.HasPrefix(key, "tlp_") {
		t.Fatalf("a publishable key %q", key)
	}
	p.mustContain(t, "Your new publishable API key “shipped”", "may ship inside your app", formatDate(exp), "shown only this once")
	if k := w.keyByName(t, "shipped"); k.Kind != store.KeyPublishable || k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) {
		t.Fatalf("stored key: kind %s, expires %v; want publishable, %v", k.Kind, k.ExpiresAt, exp)
	}
	p = w.a.get(appPath).mustNotContain(t, key)
	mustRowContain(t, p, "shipped", ">Publishable</td>", ">"+formatDate(exp)+"</td>", "Active", key[:12])

	// What the key may do: register, but not list.
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: key, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 201)
	w.h.Do(request{Method: "GET", Path: "/api/v1/devices", Token: key}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})

	// A secret key with an expiry, created by the same form.
	secretExp := w.h.clock.Now().Add(72 * time.Hour).Truncate(time.Minute)
	p = w.a.submit(appPath, appPath+"/keys", url.Values{"name": {"backend"}, "kind": {"secret"}, "expires_at": {formTime(secretExp)}}).
		mustStatus(t, http.StatusCreated)
	if k := shownSecret(t, shownKeyRE, p); !strings.HasPrefix(k, "tlk_") {
		t.Fatalf("a secret key %q", k)
	}
	p.mustContain(t, "Your new secret API key “backend”", "never ship it inside an app")

	// At its expiry the key stops, and the list says so (to an owner
	// signed in again: sessions last less than two days).
	w.h.clock.Advance(48*time.Hour + time.Minute)
	w.a.signInAs(w.h.MustLogin(w.owner.Owner.Email, testPassword).Token)
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: key, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 401)
	p = w.a.get(appPath)
	row := mustRowContain(t, p, "shipped", "Expired")
	if strings.Contains(row, "/replace") {
		t.Errorf("an expired key offers a replacement: %s", row)
	}
	mustRowContain(t, p, "backend", ">Secret</td>", "Active", ">"+formatDate(secretExp)+"</td>")

	// Bad input: the message goes next to its field, the form keeps what
	// was typed, and no key is created.
	before, _ := w.h.store.ListAPIKeys(context.Background(), w.owner.Owner.ID, w.app.ID)
	for _, tc := range []struct {
		form   url.Values
		status int
		id     string
		msg    string
	}{
		{url.Values{"name": {"x"}, "kind": {"restricted"}}, 400, "key-kind", `Kind must be "secret" or "publishable".`},
		{url.Values{"name": {"x"}, "expires_at": {"next week"}}, 400, "key-expires_at", "Expires at must be a date and time in UTC, such as 2030-06-30T12:00."},
		{url.Values{"name": {"x"}, "expires_at": {formTime(w.h.clock.Now().Add(-time.Hour))}}, 400, "key-expires_at", "Expires at must be in the future."},
		{url.Values{"name": {"backend"}, "kind": {"publishable"}}, 409, "key-name", "The app already has a key of this name"},
	} {
		p := w.a.submit(appPath, appPath+"/keys", tc.form).mustStatus(t, tc.status)
		checkPage(t, "key error", p)
		if !strings.Contains(p.Body, `<p class="error" id="`+tc.id+`-error">`) {
			t.Errorf("%v: no error next to %s:\n%.3000s", tc.form, tc.id, p.Body)
		}
		p.mustContain(t, tc.msg)
		if strings.Count(p.Body, " autofocus") != 1 {
			t.Errorf("%v: %d autofocus attributes, want 1", tc.form, strings.Count(p.Body, " autofocus"))
		}
		if v := tc.form.Get("expires_at"); v != "" {
			p.mustContain(t, `value="`+v+`"`)
		}
		if tc.form.Get("kind") == "publishable" {
			p.mustContain(t, `value="publishable" checked`)
		}
	}
	if after, _ := w.h.store.ListAPIKeys(context.Background(), w.owner.Owner.ID, w.app.ID); len(after) != len(before) {
		t.Errorf("%d keys after refused forms, want %d", len(after), len(before))
	}
}

// TestDashboardReplaceKey: replacing a publishable key shows the new key
// once and keeps the old one working until the chosen time; the list
// shows which replaced which; a secret key replaced without a grace period
// stops at once. A key cannot be replaced twice, nor another owner's.
func TestDashboardReplaceKey(t *testing.T) {
	w := newDashWorld(t)
	appPath := "/apps/" + w.app.ID
	var shipped api.APIKeyCreated
	w.h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.app.ID + "/keys", Token: w.owner.Token,
		Body: api.APIKeyInput{Name: "shipped", Kind: api.KeyPublishable}}).MustStatus(t, 201).MustDecode(t, &shipped)
	replacePath := appPath + "/keys/" + shipped.ID + "/replace"

	// The form suggests a name and, for a publishable key, 30 days.
	p := w.a.get(replacePath).mustStatus(t, 200)
	checkPage(t, "replace", p)
	p.mustContain(t, "Replace the API key “shipped”", "Publishable", "Installed copies of your app carry the old key",
		`value="shipped v2"`, `value="`+formTime(w.h.clock.Now().Add(30*24*time.Hour))+`"`, "up to 366 days")

	// Bad input changes nothing.
	before, _ := w.h.store.ListAPIKeys(context.Background(), w.owner.Owner.ID, w.app.ID)
	for _, tc := range []struct {
		grace, expires, name string
		status               int
		id, msg              string
	}{
		{formTime(w.h.clock.Now().Add(400 * 24 * time.Hour)), "", "shipped v2", 400, "replace-grace_until", "Grace until must be at most 366 days ahead."},
		{formTime(w.h.clock.Now().Add(-time.Hour)), "", "shipped v2", 400, "replace-grace_until", "Grace until must not lie in the past."},
		{"soon", "", "shipped v2", 400, "replace-grace_until", "Grace until must be a date and time in UTC"},
		{"", formTime(w.h.clock.Now().Add(-time.Hour)), "shipped v2", 400, "replace-expires_at", "Expires at must be in the future."},
		{"", "", "k", 409, "replace-name", "The app already has a key of this name"},
		{"", "", "", 400, "replace-name", "Name must be 1-100 printable characters."},
	} {
		p := w.a.submit(replacePath, replacePath, url.Values{"name": {tc.name}, "grace_until": {tc.grace}, "expires_at": {tc.expires}}).mustStatus(t, tc.status)
		checkPage(t, "replace error", p)
		if !strings.Contains(p.Body, `<input id="`+tc.id+`"`) || !strings.Contains(p.Body, `<p class="error" id="`+tc.id+`-error">`) {
			t.Errorf("%+v: no error next to %s:\n%.3000s", tc, tc.id, p.Body)
		}
		p.mustContain(t, tc.msg)
		if tc.grace != "" {
			p.mustContain(t, `value="`+tc.grace+`"`)
		}
	}
	if after, _ := w.h.store.ListAPIKeys(context.Background(), w.owner.Owner.ID, w.app.ID); len(after) != len(before) {
		t.Fatalf("%d keys after refused replacements, want %d", len(after), len(before))
	}

	// Two hours of grace.
	grace := w.h.clock.Now().Add(2 * time.Hour).Truncate(time.Minute)
	p = w.a.submit(replacePath, replacePath, url.Values{"name": {"shipped v2"}, "grace_until": {formTime(grace)}}).mustStatus(t, http.StatusCreated)
	checkPage(t, "replaced", p)
	newKey := shownSecret(t, shownKeyRE, p)
	if !strings.HasPrefix(newKey, "tlp_") {
		t.Fatalf("the replacement of a publishable key is %q", newKey)
	}
	p.mustContain(t, "Your new publishable API key “shipped v2”", "Replaces", "“shipped” ("+shipped.Prefix+"…), which keeps working until "+formatDate(grace))
	for _, k := range []string{shipped.Key, newKey} {
		w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: k, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 201)
	}
	p = w.a.get(appPath)
	row := mustRowContain(t, p, "shipped", "Replaced", "by “shipped v2”; works until "+formatDate(grace), ">"+formatDate(grace)+"</td>")
	if strings.Contains(row, "/replace") {
		t.Errorf("a replaced key offers another replacement: %s", row)
	}
	mustRowContain(t, p, "shipped v2", ">Publishable</td>", "Active", ">Never</td>")

	// Once replaced, no second replacement.
	w.a.get(replacePath).mustStatus(t, 200).mustContain(t, "cannot be replaced again").mustNotContain(t, `action="`+replacePath+`"`)
	w.a.submit(appPath, replacePath, url.Values{"name": {"shipped v3"}}).mustStatus(t, http.StatusConflict).
		mustContain(t, "The key was already replaced")

	// The grace period ends.
	w.h.clock.Advance(2*time.Hour + time.Minute)
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: shipped.Key, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 401)
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: newKey, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 201)
	mustRowContain(t, w.a.get(appPath), "shipped", "Expired")

	// A secret key replaced with the grace field empty stops at once.
	k := w.keyByName(t, "k")
	secretPath := appPath + "/keys/" + k.ID + "/replace"
	w.a.get(secretPath).mustStatus(t, 200).mustContain(t, "Give your backend time to switch", `value="k v2"`).
		mustContain(t, `id="replace-grace_until" name="grace_until" type="datetime-local" value=""`)
	p = w.a.submit(secretPath, secretPath, url.Values{"name": {"k v2"}, "grace_until": {""}}).mustStatus(t, http.StatusCreated)
	if nk := shownSecret(t, shownKeyRE, p); !strings.HasPrefix(nk, "tlk_") {
		t.Fatalf("the replacement of a secret key is %q", nk)
	}
	p.mustContain(t, "Your new secret API key “k v2”", "which stopped working now")
	w.h.Do(request{Method: "GET", Path: "/api/v1/devices", Token: w.key}).MustStatus(t, 401)

	// Another owner sees none of it.
	bob := newBrowser(t, w.h)
	bob.signup(w.h.NewEmail())
	bob.get(secretPath).mustStatus(t, http.StatusNotFound)
	nk := w.keyByName(t, "k v2")
	bob.submit("/apps", appPath+"/keys/"+nk.ID+"/replace", url.Values{"name": {"stolen"}}).mustStatus(t, http.StatusNotFound)
	if r := w.keyByName(t, "k v2"); r.ReplacedBy != nil || r.ExpiresAt != nil {
		t.Errorf("another owner's post changed the key: %+v", r)
	}
}

// TestDashboardTestTicket: the app page mints a registration ticket and
// shows it once; it registers one device, once, with the bound reference,
// and the device's token manages that device only.
func TestDashboardTestTicket(t *testing.T) {
	w := newDashWorld(t)
	appPath := "/apps/" + w.app.ID
	w.a.get(appPath).mustContain(t, "Registration tickets", "Mint a test ticket", "at most 600 seconds")
	tickets := func() int {
		t.Helper()
		ex, err := w.h.store.ExportOwner(context.Background(), w.owner.Owner.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(ex["registration_tickets"])
	}

	// Bad input mints nothing.
	for _, tc := range []struct {
		form    url.Values
		id, msg string
	}{
		{url.Values{"lifetime": {"5"}}, "ticket-lifetime", "Lifetime must be 10 to 600 (absent: 600)."},
		{url.Values{"lifetime": {"601"}}, "ticket-lifetime", "Lifetime must be 10 to 600 (absent: 600)."},
		{url.Values{"lifetime": {"ten"}}, "ticket-lifetime", "Lifetime must be a whole number of seconds, 10 to 600."},
		{url.Values{"reference": {strings.Repeat("r", 129)}}, "ticket-reference", "Reference must be 1-128 printable characters."},
	} {
		p := w.a.submit(appPath, appPath+"/tickets", tc.form).mustStatus(t, http.StatusBadRequest)
		checkPage(t, "ticket error", p)
		if !strings.Contains(p.Body, `<p class="error" id="`+tc.id+`-error">`) {
			t.Errorf("%v: no error next to %s", tc.form, tc.id)
		}
		p.mustContain(t, tc.msg)
	}
	if n := tickets(); n != 0 {
		t.Fatalf("%d tickets after refused forms", n)
	}

	p := w.a.submit(appPath, appPath+"/tickets", url.Values{"reference": {"user-7"}, "lifetime": {"120"}}).mustStatus(t, http.StatusCreated)
	checkPage(t, "ticket", p)
	ticket := shownSecret(t, shownTicketRE, p)
	exp := w.h.clock.Now().Add(120 * time.Second)
	p.mustContain(t, "shown only this once", "“user-7”", formatDate(exp), "/api/v1/devices", "/api/v1/registration-tickets", `data-copy="new-ticket"`)
	w.a.get(appPath).mustNotContain(t, ticket)
	if n := tickets(); n != 1 {
		t.Fatalf("%d tickets stored, want 1", n)
	}

	// The ticket registers one device, once, with its reference.
	var dev api.DeviceCreated
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: ticket, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).
		MustStatus(t, 201).MustDecode(t, &dev)
	if dev.ExternalRef == nil || *dev.ExternalRef != "user-7" || !strings.HasPrefix(dev.DeviceToken, "tld_") {
		t.Fatalf("registered with the ticket: ref %v, token %q", dev.ExternalRef, dev.DeviceToken)
	}
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: ticket, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 401)
	w.h.Do(request{Method: "GET", Path: "/api/v1/devices/" + dev.ID, Token: dev.DeviceToken}).MustStatus(t, 200)
	w.h.Do(request{Method: "GET", Path: "/api/v1/devices", Token: dev.DeviceToken}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})
	w.h.Do(request{Method: "GET", Path: "/api/v1/devices/" + w.dev.ID, Token: dev.DeviceToken}).MustStatus(t, 404)

	// Without a lifetime, the longest; unused, it expires.
	p = w.a.submit(appPath, appPath+"/tickets", url.Values{}).mustStatus(t, http.StatusCreated)
	unused := shownSecret(t, shownTicketRE, p)
	p.mustContain(t, formatDate(w.h.clock.Now().Add(600*time.Second)), "None")
	w.h.clock.Advance(601 * time.Second)
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: unused, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 401)

	// Another owner cannot mint for the app.
	bob := newBrowser(t, w.h)
	bob.signup(w.h.NewEmail())
	bob.submit("/apps", appPath+"/tickets", url.Values{}).mustStatus(t, http.StatusNotFound)
	if n := tickets(); n != 0 {
		t.Errorf("%d tickets left", n)
	}
}

// TestDashboardRegistrationCap: the owner sets the app's cap on
// registrations per hour with publishable keys and sees how many it
// refused.
func TestDashboardRegistrationCap(t *testing.T) {
	w := newDashWorld(t)
	appPath := "/apps/" + w.app.ID
	w.a.get(appPath).mustContain(t, "Registration cap", "No cap.", "refused 0 registrations so far")

	for typed, msg := range map[string]string{
		"many":    "Registration cap must be a whole number of registrations per hour (0 for no cap).",
		"-1":      "Registration cap must be 0 (no cap) to 1000000.",
		"1000001": "Registration cap must be 0 (no cap) to 1000000.",
	} {
		p := w.a.submit(appPath, appPath+"/registration-cap", url.Values{"registration_cap": {typed}}).mustStatus(t, http.StatusBadRequest)
		checkPage(t, "cap error", p)
		p.mustContain(t, msg, `value="`+typed+`"`, `<p class="error" id="cap-registration_cap-error">`)
	}
	if a, _ := w.h.store.GetApp(context.Background(), w.owner.Owner.ID, w.app.ID); a.RegistrationCap != 0 {
		t.Fatalf("cap %d after refused forms", a.RegistrationCap)
	}

	w.a.submit(appPath, appPath+"/registration-cap", url.Values{"registration_cap": {"2"}}).mustRedirect(t, appPath+"?done=cap-saved")
	w.a.get(appPath+"?done=cap-saved").mustContain(t, "Registration cap saved", "Capped at 2 registrations per hour", `value="2"`)

	// A publishable key registers two devices this hour; the third is
	// refused, and the owner sees the refusal counted.
	var pub api.APIKeyCreated
	w.h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.app.ID + "/keys", Token: w.owner.Token,
		Body: api.APIKeyInput{Name: "shipped", Kind: api.KeyPublishable}}).MustStatus(t, 201).MustDecode(t, &pub)
	// The test clock may be late in its hour: start at the next one.
	w.h.clock.Advance(w.h.clock.Now().Truncate(time.Hour).Add(time.Hour).Sub(w.h.clock.Now()))
	for i := 0; i < 2; i++ {
		w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: pub.Key, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 201)
	}
	res := w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: pub.Key, Body: api.DeviceInput{PublicKey: newWGKey(t)}})
	res.MustHaveError(t, wantErr{429, api.CodeRateLimited, ""})
	if res.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	w.h.srv.sweepCredentialsOnce(context.Background())
	w.a.get(appPath).mustContain(t, "refused 1 registration so far")

	// 0 (or nothing) removes the cap.
	w.a.submit(appPath, appPath+"/registration-cap", url.Values{"registration_cap": {""}}).mustRedirect(t, appPath)
	w.a.get(appPath).mustContain(t, "No cap.", `value="0"`)
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: pub.Key, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 201)
}
