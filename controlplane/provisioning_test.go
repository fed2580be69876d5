package controlplane

// Bad input on the provisioning API and the owner's app and key routes:
// every case gets its exact status, code and field, and writes nothing —
// no app, key or device row changes and the sync revision stays put.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// provWorld is a syncWorld with its app's ID at hand.
type provWorld struct {
	*syncWorld
	appID string
}

func newProvWorld(t *testing.T, mods ...func(*Options)) *provWorld {
	t.Helper()
	sw := newSyncWorld(t, mods...)
	apps, err := sw.h.store.ListApps(context.Background(), sw.owner.Owner.ID)
	if err != nil || len(apps) != 1 {
		t.Fatalf("apps of the world's owner: %v, %v", apps, err)
	}
	return &provWorld{syncWorld: sw, appID: apps[0].ID}
}

// provRows is everything the provisioning and app routes may write, read
// straight from the store.
type provRows struct {
	Revision int64
	Stats    store.Stats
	Apps     map[string][]store.App    // by owner
	Keys     map[string][]store.APIKey // by app
	Devices  map[string][]store.Device // by app
}

// mustRows reads the rows of the given owners' apps.
func mustRows(tb testing.TB, h *harness, ownerIDs ...string) provRows {
	tb.Helper()
	ctx := context.Background()
	var r provRows
	var err error
	if r.Revision, err = h.store.Revision(ctx); err != nil {
		tb.Fatal(err)
	}
	if r.Stats, err = h.store.Stats(ctx); err != nil {
		tb.Fatal(err)
	}
	r.Apps, r.Keys, r.Devices = map[string][]store.App{}, map[string][]store.APIKey{}, map[string][]store.Device{}
	for _, o := range ownerIDs {
		apps, err := h.store.ListApps(ctx, o)
		if err != nil {
			tb.Fatal(err)
		}
		r.Apps[o] = apps
		for _, a := range apps {
			if r.Keys[a.ID], err = h.store.ListAPIKeys(ctx, o, a.ID); err != nil {
				tb.Fatal(err)
			}
			if r.Devices[a.ID], err = h.store.ListDevices(ctx, a.ID, "", 1<<20); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return r
}

// mustNotChange fails when the rows differ.
func mustNotChange(tb testing.TB, before, after provRows) {
	tb.Helper()
	if diff := cmp.Diff(before, after); diff != "" {
		tb.Errorf("a refused request changed the store (-before +after):\n%s", diff)
	}
}

// fixedKey is a deterministic WireGuard public key for a label.
func fixedKey(label string) string {
	b := sha256.Sum256([]byte("traceless test key " + label))
	return base64.StdEncoding.EncodeToString(b[:])
}

// keyJSON is a device or rotation body with the given raw public_key JSON.
func keyJSON(raw string) string { return `{"public_key":` + raw + `}` }

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// nonCanonical returns an alias of key that lax base64 decodes to the same
// 32 bytes: the unused low bits of the last character are set.
func nonCanonical(key string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, key[42])
	return key[:42] + string(alphabet[i|1]) + key[43:]
}

// badKeyCases are public keys no route may accept, with the key as raw
// JSON.
func badKeyCases(tb testing.TB) []struct{ name, raw string } {
	tb.Helper()
	good := fixedKey("good")
	url := base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32])
	if url == base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32]) {
		tb.Fatal("the URL-safe case encodes like standard base64")
	}
	b31 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 31))
	b33 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 33))
	if len(b31) != 44 || len(b33) != 44 {
		tb.Fatalf("31/33-byte keys are %d/%d characters; the cases must pass the length check", len(b31), len(b33))
	}
	return []struct{ name, raw string }{
		{"not base64", jsonString(strings.Repeat("!", 44))},
		{"not base64, short", jsonString("not a key")},
		{"URL-safe base64", jsonString(url)},
		{"31 bytes", jsonString(b31)},
		{"33 bytes", jsonString(b33)},
		{"all zeros", jsonString(base64.StdEncoding.EncodeToString(make([]byte, 32)))},
		{"unpadded", jsonString(strings.TrimRight(good, "="))},
		{"non-canonical trailing bits", jsonString(nonCanonical(good))},
		{"leading space", jsonString(" " + good)},
		{"trailing newline", jsonString(good + "\n")},
		{"newline inside", jsonString(good[:22] + "\n" + good[22:])},
		{"newline for padding", jsonString(good[:43] + "\n")},
		{"CRLF inside", jsonString(good[:20] + "\r\n" + good[20:42])},
		{"tab inside", jsonString(good[:22] + "\t" + good[23:])},
		{"hex", jsonString(fmt.Sprintf("%x", sha256.Sum256([]byte("hex"))))},
		{"private key shape", jsonString(good[:43] + "A")},
		{"empty", `""`},
		{"number", `12345`},
		{"array", `["` + good + `"]`},
		{"object", `{"k":"` + good + `"}`},
		{"bool", `true`},
		{"null", `null`},
	}
}

func TestRegisterDeviceBadInput(t *testing.T) {
	w := newProvWorld(t)
	good := fixedKey("good")
	ref := func(v string) string { return `{"public_key":"` + good + `","external_ref":` + jsonString(v) + `}` }
	type tc struct {
		name, ct, body string
		want           wantErr
	}
	var cases []tc
	for _, k := range badKeyCases(t) {
		cases = append(cases, tc{name: "public_key " + k.name, body: keyJSON(k.raw), want: bad("public_key")})
	}
	cases = append(cases,
		tc{name: "public_key missing", body: `{}`, want: bad("public_key")},
		tc{name: "public_key missing with ref", body: `{"external_ref":"r"}`, want: bad("public_key")},
		tc{name: "external_ref 129 chars", body: ref(strings.Repeat("r", 129)), want: bad("external_ref")},
		tc{name: "external_ref 129 runes", body: ref(strings.Repeat("é", 129)), want: bad("external_ref")},
		tc{name: "external_ref control char", body: ref("ref\x01x"), want: bad("external_ref")},
		tc{name: "external_ref newline", body: ref("ref\nx"), want: bad("external_ref")},
		tc{name: "external_ref DEL", body: ref("ref\x7fx"), want: bad("external_ref")},
		tc{name: "external_ref bidi override", body: ref("user\u202egnp.exe"), want: bad("external_ref")},
		tc{name: "external_ref zero width", body: ref("us\u200ber"), want: bad("external_ref")},
		tc{name: "external_ref BOM", body: ref("\ufeffuser"), want: bad("external_ref")},
		tc{name: "external_ref empty", body: ref(""), want: bad("external_ref")},
		tc{name: "external_ref blank", body: ref("   "), want: bad("external_ref")},
		tc{name: "external_ref surrounding space", body: ref(" user "), want: bad("external_ref")},
		tc{name: "external_ref number", body: `{"public_key":"` + good + `","external_ref":7}`, want: bad("external_ref")},
		tc{name: "unknown field", body: `{"public_key":"` + good + `","owner_id":"x"}`, want: bad("owner_id")},
		tc{name: "unknown field ipv4", body: `{"public_key":"` + good + `","ipv4":"10.64.0.9"}`, want: bad("ipv4")},
		tc{name: "malformed JSON", body: `{"public_key" "` + good + `"}`, want: bad("")},
		tc{name: "trailing comma", body: `{"public_key":"` + good + `",}`, want: bad("")},
		tc{name: "truncated JSON", body: `{"public_key":"` + good[:10], want: bad("")},
		tc{name: "truncated after brace", body: `{`, want: bad("")},
		tc{name: "array body", body: `[{"public_key":"` + good + `"}]`, want: bad("")},
		tc{name: "string body", body: `"` + good + `"`, want: bad("")},
		tc{name: "null body", body: `null`, want: bad("")},
		tc{name: "empty body", body: ``, want: bad("")},
		tc{name: "two objects", body: keyJSON(jsonString(good)) + keyJSON(jsonString(fixedKey("other"))), want: bad("")},
		tc{name: "invalid UTF-8", body: "{\"public_key\":\"" + good + "\",\"external_ref\":\"\xff\xfe\"}", want: bad("")},
		tc{name: "1 MiB body", body: `{"public_key":"` + good + `","external_ref":"` + strings.Repeat("r", 1<<20) + `"}`, want: tooLarge},
		tc{name: "text/plain", ct: "text/plain", body: keyJSON(jsonString(good)), want: unsupported},
		tc{name: "form", ct: "application/x-www-form-urlencoded", body: "public_key=" + url.QueryEscape(good), want: unsupported},
		tc{name: "no content type", ct: "-", body: keyJSON(jsonString(good)), want: unsupported},
		tc{name: "charset latin1", ct: "application/json; charset=latin1", body: keyJSON(jsonString(good)), want: unsupported},
	)
	before := mustRows(t, w.h, w.owner.Owner.ID)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, ContentType: c.ct, Body: c.body})
			r.MustHaveError(t, c.want)
			mustNotEcho(t, r, c.body)
			mustNotChange(t, before, mustRows(t, w.h, w.owner.Owner.ID))
		})
	}

	// The control: the same good key, with the longest reference, is
	// accepted afterwards. (The store counts external_ref in bytes, so 128
	// non-ASCII characters are refused although the message says
	// characters; ASCII keeps this control independent of that.)
	long := strings.Repeat("r", 127) + "~"
	var d api.DeviceCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: ref(long)}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &d)
	if d.PublicKey != good || d.ExternalRef == nil || *d.ExternalRef != long {
		t.Errorf("registered %+v; want key %s with the 128-rune reference", d.Device, good)
	}
	after := mustRows(t, w.h, w.owner.Owner.ID)
	if after.Revision != before.Revision+1 || len(after.Devices[w.appID]) != 1 {
		t.Errorf("after the good registration: revision %d (was %d), %d devices", after.Revision, before.Revision, len(after.Devices[w.appID]))
	}
}

// mustNotEcho fails when an error response repeats a long token of the
// input (errors never echo what was sent: it may be a key or a secret).
func mustNotEcho(tb testing.TB, r response, body string) {
	tb.Helper()
	for _, tok := range regexp.MustCompile(`[A-Za-z0-9+/=_-]{20,}`).FindAllString(body, -1) {
		if len(tok) > 200 {
			tok = tok[:200]
		}
		if bytes.Contains(r.Body, []byte(tok)) {
			tb.Errorf("the error response echoes %q: %s", tok, r.Body)
		}
	}
}

// TestRegisterDeviceConflict: a known key is 409 conflict whichever app
// holds it, with the same body either way (a caller learns nothing about
// other apps), and nothing is written.
func TestRegisterDeviceConflict(t *testing.T) {
	w := newProvWorld(t)
	k := fixedKey("dup")
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: k}}).MustStatus(t, http.StatusCreated)
	other, otherKey := newOwnerApp(t, w.syncWorld, "pro")
	before := mustRows(t, w.h, w.owner.Owner.ID, other)
	var bodies []string
	for _, tc := range []struct{ name, token, body string }{
		{"same app", w.key, keyJSON(jsonString(k))},
		{"same app, escaped JSON string", w.key, keyJSON(fmt.Sprintf(`"\u%04x%s"`, k[0], k[1:]))},
		{"same app, with a reference", w.key, `{"public_key":"` + k + `","external_ref":"again"}`},
		{"other owner's app", otherKey, keyJSON(jsonString(k))},
	} {
		r := w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: tc.token, Body: tc.body})
		r.MustHaveError(t, wantErr{Status: http.StatusConflict, Code: api.CodeConflict})
		mustNotEcho(t, r, k)
		bodies = append(bodies, string(r.Body))
		mustNotChange(t, before, mustRows(t, w.h, w.owner.Owner.ID, other))
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("conflict bodies differ: %s vs %s", bodies[0], b)
		}
	}
}

// newOwnerApp signs up an owner on plan with one app and one key, and
// returns the owner's ID and the key.
func newOwnerApp(t *testing.T, w *syncWorld, plan string) (string, string) {
	t.Helper()
	o := w.h.MustOwner()
	if plan != "free" {
		w.h.Serve(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: o.Token, Body: api.PlanChange{Plan: plan}}).MustStatus(t, http.StatusOK)
	}
	var app api.App
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps", Token: o.Token, Body: api.AppInput{Name: "other"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &app)
	var key api.APIKeyCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps/" + app.ID + "/keys", Token: o.Token, Body: api.APIKeyInput{Name: "k"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &key)
	return o.Owner.ID, key.Key
}

// TestRegisterDevicePlanLimit: on a plan with max_devices 2 the third
// registration is 403 plan_limit and writes nothing; a deletion frees a
// slot.
func TestRegisterDevicePlanLimit(t *testing.T) {
	w := newProvWorld(t)
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/admin/plans", Token: w.admin,
		Body: api.PlanInput{Slug: "tiny", Name: "Tiny", MaxApps: 2, MaxDevices: 2, Currency: "EUR", Pools: []string{w.pool.ID}}}).
		MustStatus(t, http.StatusCreated)
	w.h.Serve(request{Method: http.MethodPut, Path: "/api/v1/me/plan", Token: w.owner.Token, Body: api.PlanChange{Plan: "tiny"}}).MustStatus(t, http.StatusOK)
	// A second app of the same owner shares the owner's device budget.
	var app2 api.App
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps", Token: w.owner.Token, Body: api.AppInput{Name: "second"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &app2)
	var key2 api.APIKeyCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps/" + app2.ID + "/keys", Token: w.owner.Token, Body: api.APIKeyInput{Name: "k2"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &key2)

	var first api.DeviceCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: fixedKey("l1")}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &first)
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: key2.Key, Body: api.DeviceInput{PublicKey: fixedKey("l2")}}).
		MustStatus(t, http.StatusCreated)
	before := mustRows(t, w.h, w.owner.Owner.ID)
	for _, tok := range []string{w.key, key2.Key} {
		w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: tok, Body: api.DeviceInput{PublicKey: fixedKey("l3")}}).
			MustHaveError(t, wantErr{Status: http.StatusForbidden, Code: api.CodePlanLimit})
		mustNotChange(t, before, mustRows(t, w.h, w.owner.Owner.ID))
	}
	// Rotation is not a registration: it works at the limit.
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices/" + first.ID + "/rotate", Token: w.key, Body: api.RotateInput{PublicKey: fixedKey("l1b")}}).
		MustStatus(t, http.StatusOK)
	w.h.Serve(request{Method: http.MethodDelete, Path: "/api/v1/devices/" + first.ID, Token: w.key}).MustStatus(t, http.StatusNoContent)
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: fixedKey("l3")}}).
		MustStatus(t, http.StatusCreated)
}

func TestRotateDeviceBadInput(t *testing.T) {
	w := newProvWorld(t)
	var d, other api.DeviceCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: fixedKey("rot")}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &d)
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: fixedKey("taken")}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &other)
	otherOwner, otherKey := newOwnerApp(t, w.syncWorld, "pro")
	var foreign api.DeviceCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: otherKey, Body: api.DeviceInput{PublicKey: fixedKey("foreign")}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &foreign)
	path := "/api/v1/devices/" + d.ID + "/rotate"
	fresh := jsonString(fixedKey("fresh"))

	type tc struct {
		name, path, ct, body string
		want                 wantErr
	}
	var cases []tc
	for _, k := range badKeyCases(t) {
		cases = append(cases, tc{name: "public_key " + k.name, path: path, body: keyJSON(k.raw), want: bad("public_key")})
	}
	conflict := wantErr{Status: http.StatusConflict, Code: api.CodeConflict}
	notFound := wantErr{Status: http.StatusNotFound, Code: api.CodeNotFound}
	cases = append(cases,
		tc{name: "public_key missing", path: path, body: `{}`, want: bad("public_key")},
		tc{name: "key of another device of the app", path: path, body: keyJSON(jsonString(other.PublicKey)), want: conflict},
		tc{name: "key of another owner's device", path: path, body: keyJSON(jsonString(foreign.PublicKey)), want: conflict},
		tc{name: "its own current key", path: path, body: keyJSON(jsonString(d.PublicKey)), want: conflict},
		tc{name: "non-canonical alias of another device's key", path: path, body: keyJSON(jsonString(nonCanonical(other.PublicKey))), want: bad("public_key")},
		tc{name: "unknown field", path: path, body: `{"public_key":` + fresh + `,"ipv4":"10.64.0.9"}`, want: bad("ipv4")},
		tc{name: "external_ref is not rotatable", path: path, body: `{"public_key":` + fresh + `,"external_ref":"x"}`, want: bad("external_ref")},
		tc{name: "malformed JSON", path: path, body: `{"public_key" ` + fresh + `}`, want: bad("")},
		tc{name: "truncated JSON", path: path, body: `{"public_key":` + fresh[:12], want: bad("")},
		tc{name: "array body", path: path, body: `[` + keyJSON(fresh) + `]`, want: bad("")},
		tc{name: "1 MiB body", path: path, body: `{"public_key":"` + strings.Repeat("A", 1<<20) + `"}`, want: tooLarge},
		tc{name: "text/plain", path: path, ct: "text/plain", body: keyJSON(fresh), want: unsupported},
		tc{name: "another owner's device", path: "/api/v1/devices/" + foreign.ID + "/rotate", body: keyJSON(fresh), want: notFound},
		tc{name: "unknown device", path: "/api/v1/devices/0a0a0a0a-0000-4000-8000-000000000000/rotate", body: keyJSON(fresh), want: notFound},
		tc{name: "device id not a uuid", path: "/api/v1/devices/%27%20OR%201%3D1--/rotate", body: keyJSON(fresh), want: notFound},
	)
	before := mustRows(t, w.h, w.owner.Owner.ID, otherOwner)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := w.h.Serve(request{Method: http.MethodPost, Path: c.path, Token: w.key, ContentType: c.ct, Body: c.body})
			r.MustHaveError(t, c.want)
			mustNotEcho(t, r, c.body)
			mustNotChange(t, before, mustRows(t, w.h, w.owner.Owner.ID, otherOwner))
		})
	}

	// The control: a fresh key rotates, keeping nothing of the old peer.
	var rot api.DeviceCreated
	w.h.Serve(request{Method: http.MethodPost, Path: path, Token: w.key, Body: keyJSON(fresh)}).MustStatus(t, http.StatusOK).MustDecode(t, &rot)
	if rot.ID != d.ID || rot.PublicKey != fixedKey("fresh") {
		t.Errorf("rotation answered %+v", rot.Device)
	}
	// The old key is free again: another device may take it.
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: d.PublicKey}}).MustStatus(t, http.StatusCreated)
}

func TestListDevicesBadInput(t *testing.T) {
	w := newProvWorld(t)
	mine := map[string]bool{}
	for i := range 3 {
		var d api.DeviceCreated
		w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: fixedKey(fmt.Sprint("mine", i))}}).
			MustStatus(t, http.StatusCreated).MustDecode(t, &d)
		mine[d.ID] = true
	}
	_, otherKey := newOwnerApp(t, w.syncWorld, "pro")
	theirs := map[string]bool{}
	for i := range 4 {
		var d api.DeviceCreated
		w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: otherKey, Body: api.DeviceInput{PublicKey: fixedKey(fmt.Sprint("theirs", i))}}).
			MustStatus(t, http.StatusCreated).MustDecode(t, &d)
		theirs[d.ID] = true
	}

	for _, tc := range []struct{ name, query, field string }{
		{"cursor not base64", "cursor=%21%21%21", "cursor"},
		{"cursor base64 of garbage", "cursor=" + base64.RawURLEncoding.EncodeToString([]byte("garbage")), "cursor"},
		{"cursor padded base64", "cursor=" + url.QueryEscape(base64.URLEncoding.EncodeToString([]byte("0a0a0a0a-0000-4000-8000-00000000000"))), "cursor"},
		{"cursor of an upper-case uuid", "cursor=" + base64.RawURLEncoding.EncodeToString([]byte("0A0A0A0A-0000-4000-8000-000000000000")), "cursor"},
		{"cursor with SQL", "cursor=" + base64.RawURLEncoding.EncodeToString([]byte("' OR 1=1 --")), "cursor"},
		{"cursor huge", "cursor=" + strings.Repeat("A", 10000), "cursor"},
		{"limit 0", "limit=0", "limit"},
		{"limit -1", "limit=-1", "limit"},
		{"limit 501", "limit=501", "limit"},
		{"limit abc", "limit=abc", "limit"},
		{"limit 1.5", "limit=1.5", "limit"},
		{"limit empty with cursor garbage", "limit=&cursor=x", "cursor"},
		{"limit huge", "limit=99999999999999999999", "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/devices?" + tc.query, Token: w.key}).MustHaveError(t, bad(tc.field))
		})
	}

	// Paging with limit=1 visits exactly the app's devices.
	page := func(token, query string) api.DeviceList {
		t.Helper()
		var l api.DeviceList
		w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/devices?" + query, Token: token}).MustStatus(t, http.StatusOK).MustDecode(t, &l)
		return l
	}
	seen := map[string]bool{}
	for cur, n := "", 0; ; n++ {
		l := page(w.key, "limit=1&cursor="+url.QueryEscape(cur))
		for _, d := range l.Devices {
			if seen[d.ID] || !mine[d.ID] {
				t.Errorf("page %d lists %s (seen before %v, mine %v)", n, d.ID, seen[d.ID], mine[d.ID])
			}
			seen[d.ID] = true
		}
		if l.NextCursor == "" {
			break
		}
		cur = l.NextCursor
		if n > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != len(mine) {
		t.Errorf("paging visited %d devices, want %d", len(seen), len(mine))
	}

	// A cursor from the other app, and cursors naming the other app's
	// device IDs directly, show only this app's devices.
	theirPage := page(otherKey, "limit=1")
	if theirPage.NextCursor == "" {
		t.Fatal("the other app's first page has no cursor")
	}
	cursors := []string{theirPage.NextCursor}
	for id := range theirs {
		cursors = append(cursors, encodeCursor(id))
	}
	cursors = append(cursors, encodeCursor("00000000-0000-0000-0000-000000000000"))
	for _, cur := range cursors {
		l := page(w.key, "limit=500&cursor="+url.QueryEscape(cur))
		for _, d := range l.Devices {
			if !mine[d.ID] {
				t.Errorf("cursor %s of another app lists device %s of another app", cur, d.ID)
			}
		}
	}
	if l := page(w.key, "cursor="+encodeCursor("00000000-0000-0000-0000-000000000000")); len(l.Devices) != len(mine) {
		t.Errorf("the lowest cursor lists %d devices, want %d", len(l.Devices), len(mine))
	}
}

func TestDeviceConfig(t *testing.T) {
	w := newProvWorld(t)
	var d api.DeviceCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: fixedKey("conf")}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &d)
	base := "/api/v1/devices/" + d.ID + "/config"
	nodes, err := w.h.store.ListNodes(context.Background(), "")
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes: %v, %v", nodes, err)
	}
	node := nodes[0]

	// Another owner's dedicated node, and a shared pool the plan does not
	// grant, are not servers this app may use.
	otherOwner, otherKey := newOwnerApp(t, w.syncWorld, "pro")
	dp, err := w.h.store.CreatePool(context.Background(), store.Pool{Name: "dedicated", Region: "r", Country: "NL", City: "Delft", OwnerID: &otherOwner})
	if err != nil {
		t.Fatal(err)
	}
	dedicated, _ := w.enroll(t, dp.ID, "theirs")
	var ungranted api.Pool
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/admin/pools", Token: w.admin, Body: api.PoolInput{Name: "ungranted", Region: "x", Country: "FR", City: "Paris"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &ungranted)
	outside, _ := w.enroll(t, ungranted.ID, "outside")
	var foreign api.DeviceCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: otherKey, Body: api.DeviceInput{PublicKey: fixedKey("foreign-conf")}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &foreign)

	for _, tc := range []struct {
		name, path string
		want       wantErr
	}{
		{"server missing", base, bad("server")},
		{"server empty", base + "?server=", bad("server")},
		{"server unknown", base + "?server=0a0a0a0a-0000-4000-8000-000000000000", bad("server")},
		{"server garbage", base + "?server=%27%20OR%201%3D1", bad("server")},
		{"another owner's dedicated node", base + "?server=" + dedicated.NodeID, bad("server")},
		{"a node of a pool the plan does not grant", base + "?server=" + outside.NodeID, bad("server")},
		{"format svg", base + "?server=" + node.ID + "&format=svg", bad("format")},
		{"format QR upper case", base + "?server=" + node.ID + "&format=QR", bad("format")},
		{"another owner's device", "/api/v1/devices/" + foreign.ID + "/config?server=" + node.ID, wantErr{Status: http.StatusNotFound, Code: api.CodeNotFound}},
		{"unknown device", "/api/v1/devices/0a0a0a0a-0000-4000-8000-000000000000/config?server=" + node.ID, wantErr{Status: http.StatusNotFound, Code: api.CodeNotFound}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.h.Serve(request{Method: http.MethodGet, Path: tc.path, Token: w.key}).MustHaveError(t, tc.want)
		})
	}

	// wg-quick text.
	for _, q := range []string{"?server=" + node.ID, "?server=" + node.ID + "&format=conf"} {
		r := w.h.Serve(request{Method: http.MethodGet, Path: base + q, Token: w.key}).MustStatus(t, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("conf Content-Type = %q", ct)
		}
		conf := string(r.Body)
		for _, want := range []string{
			"[Interface]\n",
			fmt.Sprintf("\nAddress = %s/32, %s/128\n", d.IPv4, d.IPv6),
			"\n[Peer]\n",
			"\nPublicKey = " + node.PublicKey + "\n",
			"\nEndpoint = " + node.Endpoint + "\n",
			"\nAllowedIPs = 0.0.0.0/0, ::/0\n",
		} {
			if !strings.Contains(conf, want) {
				t.Errorf("conf lacks %q:\n%s", want, conf)
			}
		}
		if m := regexp.MustCompile(`(?m)^PrivateKey = (.*)$`).FindAllStringSubmatch(conf, -1); len(m) != 1 || !regexp.MustCompile(`^<[^<>]+>$`).MatchString(m[0][1]) {
			t.Errorf("conf PrivateKey lines %q; want one placeholder in angle brackets", m)
		}
		// The only key in the file is the node's public key: no private key,
		// not even the device's own public key in a PrivateKey line.
		for _, k := range regexp.MustCompile(`[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=`).FindAllString(conf, -1) {
			if k != node.PublicKey {
				t.Errorf("conf holds the key %s, which is not the node's public key", k)
			}
		}
		if strings.Contains(conf, d.PublicKey) {
			t.Errorf("conf holds the device's public key where only the node's belongs:\n%s", conf)
		}
	}

	// QR code: a real PNG of a real size, not blank.
	r := w.h.Serve(request{Method: http.MethodGet, Path: base + "?server=" + node.ID + "&format=qr", Token: w.key}).MustStatus(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("qr Content-Type = %q, want image/png", ct)
	}
	img, err := png.Decode(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("qr is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 200 || len(r.Body) < 1000 {
		t.Errorf("qr is %v, %d bytes; want a scannable size", b, len(r.Body))
	}
	if dark, light := countShades(img); dark < 1000 || light < 1000 {
		t.Errorf("qr has %d dark and %d light pixels; want a code", dark, light)
	}

	// A disabled node is no longer offered.
	w.h.Serve(request{Method: http.MethodPut, Path: "/api/v1/admin/nodes/" + node.ID, Token: w.admin, Body: map[string]bool{"enabled": false}}).MustStatus(t, http.StatusOK)
	w.h.Serve(request{Method: http.MethodGet, Path: base + "?server=" + node.ID, Token: w.key}).MustHaveError(t, bad("server"))
}

func countShades(img image.Image) (dark, light int) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if (r+g+bl)/3 < 0x8000 {
				dark++
			} else {
				light++
			}
		}
	}
	return dark, light
}

func TestAppBadInput(t *testing.T) {
	w := newProvWorld(t)
	owner := w.owner.Owner.ID
	name := func(v string) string { return `{"name":` + jsonString(v) + `}` }
	cases := []struct {
		name, body string
		want       wantErr
	}{
		{"empty", name(""), bad("name")},
		{"missing", `{}`, bad("name")},
		{"101 chars", name(strings.Repeat("n", 101)), bad("name")},
		{"101 runes", name(strings.Repeat("ñ", 101)), bad("name")},
		{"control char", name("my\x00app"), bad("name")},
		{"newline", name("my\napp"), bad("name")},
		{"bidi override", name("app\u202etxt.exe"), bad("name")},
		{"zero width", name("a\u200bpp"), bad("name")},
		{"surrounding space", name(" app"), bad("name")},
		{"number", `{"name":1}`, bad("name")},
		{"unknown field", `{"name":"a","owner_id":"x"}`, bad("owner_id")},
		{"malformed", `{"name" "a"}`, bad("")},
		{"array", `[{"name":"a"}]`, bad("")},
		{"1 MiB", name(strings.Repeat("n", 1<<20)), tooLarge},
	}
	before := mustRows(t, w.h, owner)
	for _, c := range cases {
		t.Run("create "+c.name, func(t *testing.T) {
			w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps", Token: w.owner.Token, Body: c.body}).MustHaveError(t, c.want)
			mustNotChange(t, before, mustRows(t, w.h, owner))
		})
		if c.name == "missing" {
			continue // PUT is a partial update: {} changes nothing, rightly
		}
		t.Run("rename "+c.name, func(t *testing.T) {
			w.h.Serve(request{Method: http.MethodPut, Path: "/api/v1/apps/" + w.appID, Token: w.owner.Token, Body: c.body}).MustHaveError(t, c.want)
			mustNotChange(t, before, mustRows(t, w.h, owner))
		})
	}
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps", Token: w.owner.Token, Body: name(strings.Repeat("ñ", 100))}).MustStatus(t, http.StatusCreated)
}

// TestAppPlanLimit: a free owner gets one app; the second is 403
// plan_limit and is not stored.
func TestAppPlanLimit(t *testing.T) {
	h := newHarness(t)
	o := h.MustOwner()
	if o.Owner.Plan != "free" {
		t.Fatalf("new owner's plan = %q, want free", o.Owner.Plan)
	}
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps", Token: o.Token, Body: api.AppInput{Name: "first"}}).MustStatus(t, http.StatusCreated)
	before := mustRows(t, h, o.Owner.ID)
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps", Token: o.Token, Body: api.AppInput{Name: "second"}}).
		MustHaveError(t, wantErr{Status: http.StatusForbidden, Code: api.CodePlanLimit})
	mustNotChange(t, before, mustRows(t, h, o.Owner.ID))
	if n := len(before.Apps[o.Owner.ID]); n != 1 {
		t.Errorf("owner has %d apps, want 1", n)
	}
}

// TestDeleteAppCascades: deleting an app revokes its keys at once and
// removes its devices from every node, and leaves other apps alone.
func TestDeleteAppCascades(t *testing.T) {
	w := newProvWorld(t)
	var key2 api.APIKeyCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps/" + w.appID + "/keys", Token: w.owner.Token, Body: api.APIKeyInput{Name: "second"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &key2)
	var gone []string
	for i := range 3 {
		var d api.DeviceCreated
		w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: fixedKey(fmt.Sprint("gone", i))}}).
			MustStatus(t, http.StatusCreated).MustDecode(t, &d)
		gone = append(gone, d.PublicKey)
	}
	sort.Strings(gone)
	// A second app of the same owner keeps its key and device.
	var keep api.App
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps", Token: w.owner.Token, Body: api.AppInput{Name: "keep"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &keep)
	var keepKey api.APIKeyCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps/" + keep.ID + "/keys", Token: w.owner.Token, Body: api.APIKeyInput{Name: "k"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &keepKey)
	var kept api.DeviceCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: keepKey.Key, Body: api.DeviceInput{PublicKey: fixedKey("kept")}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &kept)

	base := w.peers(t, w.nodeToken, 0)
	if len(base.Upserts) != 4 {
		t.Fatalf("snapshot has %d peers, want 4", len(base.Upserts))
	}
	w.h.Serve(request{Method: http.MethodDelete, Path: "/api/v1/apps/" + w.appID, Token: w.owner.Token}).MustStatus(t, http.StatusNoContent)

	for _, k := range []string{w.key, key2.Key} {
		w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/servers", Token: k}).MustHaveError(t, unauthorized)
		w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: k, Body: api.DeviceInput{PublicKey: fixedKey("after")}}).MustHaveError(t, unauthorized)
	}
	w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/apps/" + w.appID, Token: w.owner.Token}).MustHaveError(t, wantErr{Status: http.StatusNotFound, Code: api.CodeNotFound})
	w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/apps/" + w.appID + "/keys", Token: w.owner.Token}).MustHaveError(t, wantErr{Status: http.StatusNotFound, Code: api.CodeNotFound})
	w.h.Serve(request{Method: http.MethodDelete, Path: "/api/v1/apps/" + w.appID, Token: w.owner.Token}).MustHaveError(t, wantErr{Status: http.StatusNotFound, Code: api.CodeNotFound})

	delta := w.peers(t, w.nodeToken, base.Revision)
	removes := append([]string(nil), delta.Removes...)
	sort.Strings(removes)
	if diff := cmp.Diff(gone, removes); diff != "" || delta.Full || len(delta.Upserts) != 0 {
		t.Errorf("delta after the app's deletion (full=%v, upserts %v); removes (-want +got):\n%s", delta.Full, delta.Upserts, diff)
	}
	rows := mustRows(t, w.h, w.owner.Owner.ID)
	if _, ok := rows.Devices[w.appID]; ok || rows.Stats.Devices != 1 || len(rows.Apps[w.owner.Owner.ID]) != 1 {
		t.Errorf("after the deletion: %d devices, apps %+v", rows.Stats.Devices, rows.Apps[w.owner.Owner.ID])
	}
	if _, err := w.h.store.AuthenticateAPIKey(context.Background(), hashAPIKey(w.key)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the deleted app's key still authenticates in the store: %v", err)
	}
	w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/devices/" + kept.ID, Token: keepKey.Key}).MustStatus(t, http.StatusOK)
	full := w.peers(t, w.nodeToken, 0)
	if got := keysOf(full.Upserts); !cmp.Equal(got, []string{kept.PublicKey}) {
		t.Errorf("snapshot after the deletion = %v, want only %s", got, kept.PublicKey)
	}
}

func TestAPIKeys(t *testing.T) {
	w := newProvWorld(t)
	path := "/api/v1/apps/" + w.appID + "/keys"
	var made []api.APIKeyCreated
	for i := range 3 {
		var k api.APIKeyCreated
		w.h.Serve(request{Method: http.MethodPost, Path: path, Token: w.owner.Token, Body: api.APIKeyInput{Name: fmt.Sprint("key ", i)}}).
			MustStatus(t, http.StatusCreated).MustDecode(t, &k)
		if !strings.HasPrefix(k.Key, "tlk_") || len(k.Key) != 47 || credentialLen != 47 {
			t.Errorf("key %q: want tlk_ and 43 characters", k.Key)
		}
		if raw, err := base64.RawURLEncoding.Strict().DecodeString(strings.TrimPrefix(k.Key, "tlk_")); err != nil || len(raw) != 32 {
			t.Errorf("key %q is not 256 bits of base64url: %v", k.Key, err)
		}
		if k.Prefix != k.Key[:12] || k.ID == "" || k.Name != fmt.Sprint("key ", i) {
			t.Errorf("created %+v", k)
		}
		for _, o := range made {
			if o.Key == k.Key || o.Prefix == k.Prefix {
				t.Errorf("two keys share %q / %q", k.Key, k.Prefix)
			}
		}
		made = append(made, k)
		w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/servers", Token: k.Key}).MustStatus(t, http.StatusOK)
	}

	r := w.h.Serve(request{Method: http.MethodGet, Path: path, Token: w.owner.Token}).MustStatus(t, http.StatusOK)
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Keys) != 4 {
		t.Errorf("listing has %d keys, want 4", len(raw.Keys))
	}
	for _, k := range raw.Keys {
		if diff := cmp.Diff([]string{"expired", "expires_at", "id", "kind", "name", "prefix", "replaced_by"}, logKeys(k)); diff != "" {
			t.Errorf("listed key fields (-want +got):\n%s", diff)
		}
	}
	for _, k := range append(made, api.APIKeyCreated{Key: w.key}) {
		if bytes.Contains(r.Body, []byte(k.Key)) || bytes.Contains(r.Body, []byte(hashAPIKey(k.Key))) {
			t.Errorf("the listing holds a secret or its hash")
		}
	}

	// Revocation is immediate, and only for that key.
	w.h.Serve(request{Method: http.MethodDelete, Path: path + "/" + made[1].ID, Token: w.owner.Token}).MustStatus(t, http.StatusNoContent)
	w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/servers", Token: made[1].Key}).MustHaveError(t, unauthorized)
	w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/devices", Token: made[1].Key}).MustHaveError(t, unauthorized)
	w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/servers", Token: made[0].Key}).MustStatus(t, http.StatusOK)
	w.h.Serve(request{Method: http.MethodDelete, Path: path + "/" + made[1].ID, Token: w.owner.Token}).MustHaveError(t, wantErr{Status: http.StatusNotFound, Code: api.CodeNotFound})

	// Bad names and near-miss keys.
	before := mustRows(t, w.h, w.owner.Owner.ID)
	for _, body := range []string{`{"name":""}`, `{}`, `{"name":"` + strings.Repeat("k", 101) + `"}`, `{"name":"a\u202eb"}`, `{"name":"k","key":"tlk_x"}`} {
		r := w.h.Serve(request{Method: http.MethodPost, Path: path, Token: w.owner.Token, Body: body})
		if r.Status != http.StatusBadRequest {
			t.Errorf("key with body %s: status %d", body, r.Status)
		}
	}
	mustNotChange(t, before, mustRows(t, w.h, w.owner.Owner.ID))
	k := made[0].Key
	for _, near := range []string{k[:len(k)-1], k + "A", strings.ToUpper(k[:4]) + k[4:], "tlk_" + strings.Repeat("A", 43), k[:len(k)-1] + string(k[len(k)-1]^1)} {
		w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/servers", Token: near}).MustHaveError(t, unauthorized)
	}
}
