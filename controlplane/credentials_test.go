package controlplane

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// credWorld is a syncWorld with its app's ID and owner token at hand.
type credWorld struct {
	*syncWorld
	app   string
	token string // the owner's sign-in token
}

func newCredWorld(t *testing.T, mods ...func(*Options)) *credWorld {
	t.Helper()
	sw := newSyncWorld(t, mods...)
	var apps api.AppList
	sw.h.Do(request{Method: "GET", Path: "/api/v1/apps", Token: sw.owner.Token}).MustStatus(t, 200).MustDecode(t, &apps)
	return &credWorld{syncWorld: sw, app: apps.Apps[0].ID, token: sw.owner.Token}
}

func (w *credWorld) createKey(t *testing.T, in api.APIKeyInput) api.APIKeyCreated {
	t.Helper()
	var k api.APIKeyCreated
	w.h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.app + "/keys", Token: w.token, Body: in}).MustStatus(t, 201).MustDecode(t, &k)
	return k
}

func (w *credWorld) ticket(t *testing.T, in api.TicketInput) api.RegistrationTicket {
	t.Helper()
	var rt api.RegistrationTicket
	w.h.Do(request{Method: "POST", Path: "/api/v1/registration-tickets", Token: w.key, Body: in}).MustStatus(t, 201).MustDecode(t, &rt)
	return rt
}

func (w *credWorld) registerWith(t *testing.T, cred string, in api.DeviceInput) response {
	t.Helper()
	if in.PublicKey == "" {
		in.PublicKey = newWGKey(t)
	}
	return w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: cred, Body: in})
}

func (w *credWorld) setCap(t *testing.T, n int) {
	t.Helper()
	w.h.Do(request{Method: "PUT", Path: "/api/v1/apps/" + w.app, Token: w.token, Body: api.AppUpdate{RegistrationCap: &n}}).MustStatus(t, 200)
}

func (w *credWorld) getApp(t *testing.T) api.App {
	t.Helper()
	var a api.App
	w.h.Do(request{Method: "GET", Path: "/api/v1/apps/" + w.app, Token: w.token}).MustStatus(t, 200).MustDecode(t, &a)
	return a
}

// TestKeyKinds: a publishable key is a tlp_ key that registers but does not
// list; kinds, expiry and grace show in the listing; an expired key is
// refused like an unknown one.
func TestKeyKinds(t *testing.T) {
	w := newCredWorld(t)
	h := w.h
	exp := h.clock.Now().Add(time.Hour)
	pub := w.createKey(t, api.APIKeyInput{Name: "shipped", Kind: api.KeyPublishable, ExpiresAt: &exp})
	if !strings.HasPrefix(pub.Key, "tlp_") || len(pub.Key) != credentialLen || pub.Kind != api.KeyPublishable ||
		pub.ExpiresAt == nil || !pub.ExpiresAt.Equal(exp) || pub.Prefix != pub.Key[:12] {
		t.Fatalf("publishable key = %+v", pub)
	}
	sec := w.createKey(t, api.APIKeyInput{Name: "backend 2"})
	if !strings.HasPrefix(sec.Key, "tlk_") || sec.Kind != api.KeySecret || sec.ExpiresAt != nil {
		t.Fatalf("secret key = %+v", sec)
	}
	w.registerWith(t, pub.Key, api.DeviceInput{}).MustStatus(t, 201)
	h.Do(request{Method: "GET", Path: "/api/v1/app", Token: pub.Key}).MustStatus(t, 200)
	h.Do(request{Method: "GET", Path: "/api/v1/servers", Token: pub.Key}).MustStatus(t, 200)
	h.Do(request{Method: "GET", Path: "/api/v1/devices", Token: pub.Key}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})
	h.Do(request{Method: "POST", Path: "/api/v1/registration-tickets", Token: pub.Key, Body: api.TicketInput{}}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})

	// A tlk_ bearer with a publishable key's secret part is not that key.
	h.Do(request{Method: "GET", Path: "/api/v1/app", Token: "tlk_" + pub.Key[4:]}).MustHaveError(t, wantErr{401, api.CodeUnauthorized, ""})

	// Replace the publishable key: both work during the grace period.
	var rep api.KeyReplaced
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.app + "/keys/" + pub.ID + "/replace", Token: w.token,
		Body: api.KeyReplaceInput{Name: "shipped v2", GraceUntil: h.clock.Now().Add(30 * time.Minute)}}).MustStatus(t, 201).MustDecode(t, &rep)
	if rep.Kind != api.KeyPublishable || !strings.HasPrefix(rep.Key, "tlp_") || rep.Replaced.ReplacedBy == nil || *rep.Replaced.ReplacedBy != rep.ID ||
		!rep.Replaced.ExpiresAt.Equal(h.clock.Now().Add(30*time.Minute)) || rep.Replaced.Expired {
		t.Fatalf("replacement = %+v", rep)
	}
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.app + "/keys/" + pub.ID + "/replace", Token: w.token,
		Body: api.KeyReplaceInput{Name: "shipped v3", GraceUntil: h.clock.Now().Add(time.Minute)}}).MustHaveError(t, wantErr{409, api.CodeConflict, ""})
	w.registerWith(t, pub.Key, api.DeviceInput{}).MustStatus(t, 201)
	w.registerWith(t, rep.Key, api.DeviceInput{}).MustStatus(t, 201)

	h.clock.Advance(30 * time.Minute)
	w.registerWith(t, pub.Key, api.DeviceInput{}).MustHaveError(t, wantErr{401, api.CodeUnauthorized, ""})
	w.registerWith(t, rep.Key, api.DeviceInput{}).MustStatus(t, 201)

	var list api.APIKeyList
	h.Do(request{Method: "GET", Path: "/api/v1/apps/" + w.app + "/keys", Token: w.token}).MustStatus(t, 200).MustDecode(t, &list)
	got := map[string]string{}
	for _, k := range list.Keys {
		state := k.Kind
		if k.Expired {
			state += ",expired"
		}
		if k.ReplacedBy != nil {
			state += ",replaced"
		}
		got[k.Name] = state
	}
	want := map[string]string{"k": "secret", "backend 2": "secret", "shipped": "publishable,expired,replaced", "shipped v2": "publishable"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed keys (-want +got):\n%s", diff)
	}
	// A name is unique per app.
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.app + "/keys", Token: w.token, Body: api.APIKeyInput{Name: "shipped"}}).
		MustHaveError(t, wantErr{409, api.CodeConflict, "name"})
}

// TestTicketFlow: a ticket registers one device, once, with the reference
// it is bound to; it expires and is deleted.
func TestTicketFlow(t *testing.T) {
	w := newCredWorld(t)
	h := w.h
	ctx := context.Background()
	ref := "user-17"
	rt := w.ticket(t, api.TicketInput{ExternalRef: &ref, TTLSeconds: 60})
	if !strings.HasPrefix(rt.Ticket, "tlt_") || len(rt.Ticket) != credentialLen || !rt.ExpiresAt.Equal(h.clock.Now().Add(time.Minute)) ||
		rt.ExternalRef == nil || *rt.ExternalRef != ref {
		t.Fatalf("ticket = %+v", rt)
	}
	// Another reference is refused and leaves the ticket usable.
	other := "user-18"
	w.registerWith(t, rt.Ticket, api.DeviceInput{ExternalRef: &other}).MustHaveError(t, wantErr{403, api.CodeForbidden, "external_ref"})
	// The ticket may do nothing else.
	for _, q := range []request{
		{Method: "GET", Path: "/api/v1/app"}, {Method: "GET", Path: "/api/v1/servers"}, {Method: "GET", Path: "/api/v1/devices"},
		{Method: "POST", Path: "/api/v1/registration-tickets", Body: api.TicketInput{}},
	} {
		q.Token = rt.Ticket
		h.Do(q).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})
	}
	var d api.DeviceCreated
	w.registerWith(t, rt.Ticket, api.DeviceInput{}).MustStatus(t, 201).MustDecode(t, &d)
	if d.ExternalRef == nil || *d.ExternalRef != ref || !strings.HasPrefix(d.DeviceToken, "tld_") {
		t.Errorf("device registered with the ticket = %+v", d)
	}
	w.registerWith(t, rt.Ticket, api.DeviceInput{}).MustHaveError(t, wantErr{401, api.CodeUnauthorized, ""})
	if _, err := h.store.AuthenticateTicket(ctx, hashAPIKey(rt.Ticket)); err == nil {
		t.Error("a used ticket is still stored")
	}

	// An unbound ticket takes the device's own reference; an expired one
	// is refused and deleted.
	free := w.ticket(t, api.TicketInput{})
	mine := "mine"
	var d2 api.DeviceCreated
	w.registerWith(t, free.Ticket, api.DeviceInput{ExternalRef: &mine}).MustStatus(t, 201).MustDecode(t, &d2)
	if d2.ExternalRef == nil || *d2.ExternalRef != mine {
		t.Errorf("external_ref with an unbound ticket = %v", d2.ExternalRef)
	}
	late := w.ticket(t, api.TicketInput{TTLSeconds: 10})
	h.clock.Advance(10 * time.Second)
	w.registerWith(t, late.Ticket, api.DeviceInput{}).MustHaveError(t, wantErr{401, api.CodeUnauthorized, ""})
	if _, err := h.store.AuthenticateTicket(ctx, hashAPIKey(late.Ticket)); err == nil {
		t.Error("an expired ticket that was presented is still stored")
	}
	// The sweep purges expired tickets nobody presented.
	w.ticket(t, api.TicketInput{TTLSeconds: 10})
	h.clock.Advance(11 * time.Second)
	h.srv.sweepCredentialsOnce(ctx)
	if n := mustCountTickets(t, h); n != 0 {
		t.Errorf("%d tickets after the sweep; want 0", n)
	}

	// A suspended owner's tickets register nothing.
	susp := w.ticket(t, api.TicketInput{})
	h.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID, Token: w.admin, Body: map[string]string{"status": "suspended"}}).MustStatus(t, 200)
	w.registerWith(t, susp.Ticket, api.DeviceInput{}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})
}

func mustCountTickets(t *testing.T, h *harness) int {
	t.Helper()
	ex, err := h.store.ExportOwner(context.Background(), ownerOfHarness(t, h))
	if err != nil {
		t.Fatal(err)
	}
	return len(ex["registration_tickets"])
}

// ownerOfHarness returns the one owner (not the operator) of h.
func ownerOfHarness(t *testing.T, h *harness) string {
	t.Helper()
	owners, err := h.store.ListOwners(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range owners {
		if o.Role == store.RoleOwner {
			return o.ID
		}
	}
	t.Fatal("no owner")
	return ""
}

// TestDeviceTokenFlow: a device manages itself with its token, and only
// itself; rotation replaces the token; the secret key resets it.
func TestDeviceTokenFlow(t *testing.T) {
	w := newCredWorld(t)
	h := w.h
	days := 30
	h.Do(request{Method: "PUT", Path: "/api/v1/apps/" + w.app, Token: w.token, Body: api.AppUpdate{RotationDays: &days}}).MustStatus(t, 200)
	d := w.register(t)
	other := w.register(t)
	tok := d.DeviceToken
	if !strings.HasPrefix(tok, "tld_") || len(tok) != credentialLen || tok == other.DeviceToken {
		t.Fatalf("device tokens %q, %q", tok, other.DeviceToken)
	}
	var got api.Device
	h.Do(request{Method: "GET", Path: "/api/v1/devices/" + d.ID, Token: tok}).MustStatus(t, 200).MustDecode(t, &got)
	if got.ID != d.ID || got.RotationDays == nil || *got.RotationDays != 30 {
		t.Errorf("own device with its token = %+v", got)
	}
	h.Do(request{Method: "GET", Path: "/api/v1/devices/" + d.ID + "/config?server=" + w.node.NodeID, Token: tok}).MustStatus(t, 200)
	h.Do(request{Method: "GET", Path: "/api/v1/servers", Token: tok}).MustStatus(t, 200)
	for _, path := range []string{"/api/v1/devices/" + other.ID, "/api/v1/devices/" + other.ID + "/config?server=" + w.node.NodeID} {
		h.Do(request{Method: "GET", Path: path, Token: tok}).MustHaveError(t, wantErr{404, api.CodeNotFound, ""})
	}
	h.Do(request{Method: "DELETE", Path: "/api/v1/devices/" + other.ID, Token: tok}).MustHaveError(t, wantErr{404, api.CodeNotFound, ""})
	h.Do(request{Method: "GET", Path: "/api/v1/devices", Token: tok}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})
	h.Do(request{Method: "GET", Path: "/api/v1/app", Token: tok}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})
	h.Do(request{Method: "POST", Path: "/api/v1/devices/" + d.ID + "/token", Token: tok}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})
	w.registerWith(t, tok, api.DeviceInput{}).MustHaveError(t, wantErr{403, api.CodeForbidden, ""})

	var rot api.DeviceCreated
	h.Do(request{Method: "POST", Path: "/api/v1/devices/" + d.ID + "/rotate", Token: tok, Body: api.RotateInput{PublicKey: newWGKey(t)}}).
		MustStatus(t, 200).MustDecode(t, &rot)
	if rot.DeviceToken == "" || rot.DeviceToken == tok {
		t.Fatalf("rotation answered token %q", rot.DeviceToken)
	}
	h.Do(request{Method: "GET", Path: "/api/v1/devices/" + d.ID, Token: tok}).MustHaveError(t, wantErr{401, api.CodeUnauthorized, ""})
	h.Do(request{Method: "GET", Path: "/api/v1/devices/" + d.ID, Token: rot.DeviceToken}).MustStatus(t, 200)

	// The owner's backend resets a lost token.
	var reset api.DeviceToken
	h.Do(request{Method: "POST", Path: "/api/v1/devices/" + d.ID + "/token", Token: w.key}).MustStatus(t, 200).MustDecode(t, &reset)
	h.Do(request{Method: "GET", Path: "/api/v1/devices/" + d.ID, Token: rot.DeviceToken}).MustHaveError(t, wantErr{401, api.CodeUnauthorized, ""})
	h.Do(request{Method: "DELETE", Path: "/api/v1/devices/" + d.ID, Token: reset.DeviceToken}).MustStatus(t, 204)
	h.Do(request{Method: "GET", Path: "/api/v1/devices/" + d.ID, Token: reset.DeviceToken}).MustHaveError(t, wantErr{401, api.CodeUnauthorized, ""})
	h.Do(request{Method: "POST", Path: "/api/v1/devices/" + d.ID + "/token", Token: w.key}).MustHaveError(t, wantErr{404, api.CodeNotFound, ""})
}

// TestRegistrationCap: publishable-key registrations stop at the app's
// hourly cap with 429 and Retry-After until the next hour; other
// credentials are not counted; the owner sees how many were refused.
func TestRegistrationCap(t *testing.T) {
	// 12:00:00 + 15 min: 45 minutes to the next hour.
	w := newCredWorld(t)
	h := w.h
	h.clock.Advance(15 * time.Minute)
	pub := w.createKey(t, api.APIKeyInput{Name: "shipped", Kind: api.KeyPublishable})
	w.setCap(t, 2)

	first := w.register(t) // a secret key is not capped
	w.registerWith(t, pub.Key, api.DeviceInput{}).MustStatus(t, 201)
	// A refused registration gives its slot back.
	w.registerWith(t, pub.Key, api.DeviceInput{PublicKey: first.PublicKey}).MustHaveError(t, wantErr{409, api.CodeConflict, ""})
	w.registerWith(t, pub.Key, api.DeviceInput{}).MustStatus(t, 201)
	for range 3 {
		r := w.registerWith(t, pub.Key, api.DeviceInput{})
		r.MustHaveError(t, wantErr{429, api.CodeRateLimited, ""})
		if ra := r.Header.Get("Retry-After"); ra != "2700" {
			t.Errorf("Retry-After = %q, want 2700 (the seconds to the next hour)", ra)
		}
	}
	// Secret keys and tickets are the owner's own: not capped.
	w.register(t)
	w.registerWith(t, w.ticket(t, api.TicketInput{}).Ticket, api.DeviceInput{}).MustStatus(t, 201)

	if a := w.getApp(t); a.RegistrationCap != 2 || a.RegistrationCapHits != 0 {
		t.Errorf("before the sweep: cap %d, hits %d; want 2, 0 (refusals are stored by the sweep)", a.RegistrationCap, a.RegistrationCapHits)
	}
	h.srv.sweepCredentialsOnce(context.Background())
	if a := w.getApp(t); a.RegistrationCapHits != 3 {
		t.Errorf("registration_cap_hits = %d, want 3", a.RegistrationCapHits)
	}

	h.clock.Advance(45 * time.Minute)
	w.registerWith(t, pub.Key, api.DeviceInput{}).MustStatus(t, 201)
	// No cap: no limit but the plan's.
	w.setCap(t, 0)
	for range 3 {
		w.registerWith(t, pub.Key, api.DeviceInput{}).MustStatus(t, 201)
	}
}

// TestRegCapWindows covers the counter itself: windows per app and hour,
// release, and the eviction of past hours.
func TestRegCapWindows(t *testing.T) {
	r := newRegCap()
	t0 := time.Date(2030, 1, 1, 10, 59, 0, 0, time.UTC)
	for i := range 2 {
		if ok, _ := r.reserve("a", 2, t0); !ok {
			t.Fatalf("reservation %d refused", i)
		}
	}
	ok, wait := r.reserve("a", 2, t0)
	if ok || wait != time.Minute {
		t.Errorf("third reservation = %v, %v; want refused for 1m", ok, wait)
	}
	if ok, _ := r.reserve("b", 2, t0); !ok {
		t.Error("another app's reservation refused")
	}
	r.release("a", t0)
	if ok, _ := r.reserve("a", 2, t0); !ok {
		t.Error("reservation after a release refused")
	}
	if ok, _ := r.reserve("a", 2, t0.Add(time.Minute)); !ok {
		t.Error("reservation in the next hour refused")
	}
	if diff := cmp.Diff(map[string]int64{"a": 1}, r.takeHits()); diff != "" {
		t.Errorf("hits (-want +got):\n%s", diff)
	}
	if r.takeHits() != nil {
		t.Error("hits not forgotten after takeHits")
	}
	r.putBackHits(map[string]int64{"a": 2})
	if diff := cmp.Diff(map[string]int64{"a": 2}, r.takeHits()); diff != "" {
		t.Errorf("hits put back (-want +got):\n%s", diff)
	}
}

// credState is what a refused credential request could have changed.
type credState struct {
	Keys    []store.APIKey
	App     store.App
	Tickets []map[string]any
	Devices []map[string]any
}

func (w *credWorld) snapshot(t *testing.T) credState {
	t.Helper()
	ctx := context.Background()
	keys, err := w.h.store.ListAPIKeys(ctx, w.owner.Owner.ID, w.app)
	if err != nil {
		t.Fatal(err)
	}
	app, err := w.h.store.GetApp(ctx, w.owner.Owner.ID, w.app)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := w.h.store.ExportOwner(ctx, w.owner.Owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	return credState{Keys: keys, App: app, Tickets: ex["registration_tickets"], Devices: ex["devices"]}
}

// TestCredentialBadInput refuses bad values of every new field, and
// malformed credentials, with a 4xx naming the field, and changes nothing.
func TestCredentialBadInput(t *testing.T) {
	w := newCredWorld(t)
	h := w.h
	keyA := w.createKey(t, api.APIKeyInput{Name: "replace me"})
	ticket := w.ticket(t, api.TicketInput{ExternalRef: new("bound")})
	dev := w.register(t)
	now := h.clock.Now().UTC()
	past, future, far := now.Add(-time.Second).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339), now.AddDate(2, 0, 0).Format(time.RFC3339)
	keys := "/api/v1/apps/" + w.app + "/keys"
	replace := keys + "/" + keyA.ID + "/replace"
	conflict := wantErr{409, api.CodeConflict, "name"}
	type tc struct {
		name         string
		method, path string
		cred         string // the bearer; the owner's token when empty
		body         string
		want         wantErr
		ct           string // Content-Type; application/json when empty
	}
	cases := []tc{
		{"key/unknown kind", "POST", keys, "", `{"name":"x","kind":"admin"}`, bad("kind"), ""},
		{"key/kind upper case", "POST", keys, "", `{"name":"x","kind":"Publishable"}`, bad("kind"), ""},
		{"key/kind is a number", "POST", keys, "", `{"name":"x","kind":1}`, bad("kind"), ""},
		{"key/kind is null and name missing", "POST", keys, "", `{"kind":null}`, bad("name"), ""},
		{"key/expiry in the past", "POST", keys, "", `{"name":"x","expires_at":"` + past + `"}`, bad("expires_at"), ""},
		{"key/expiry now", "POST", keys, "", `{"name":"x","expires_at":"` + now.Format(time.RFC3339) + `"}`, bad("expires_at"), ""},
		{"key/expiry not a time", "POST", keys, "", `{"name":"x","expires_at":"tomorrow"}`, bad(""), ""},
		{"key/expiry a number", "POST", keys, "", `{"name":"x","expires_at":1700000000}`, bad(""), ""},
		{"key/expiry without zone", "POST", keys, "", `{"name":"x","expires_at":"2031-01-01T00:00:00"}`, bad(""), ""},
		{"key/taken name", "POST", keys, "", `{"name":"replace me"}`, conflict, ""},
		{"key/bidi name", "POST", keys, "", "{\"name\":\"x\u202e\"}", bad("name"), ""},
		{"key/mass-assigned prefix", "POST", keys, "", `{"name":"x","prefix":"tlk_x"}`, bad("prefix"), ""},
		{"key/mass-assigned replaced_by", "POST", keys, "", `{"name":"x","replaced_by":"` + keyA.ID + `"}`, bad("replaced_by"), ""},
		{"replace/no grace", "POST", replace, "", `{"name":"new"}`, bad("grace_until"), ""},
		{"replace/grace in the past", "POST", replace, "", `{"name":"new","grace_until":"` + now.Add(-time.Hour).Format(time.RFC3339) + `"}`, bad("grace_until"), ""},
		{"replace/grace beyond 366 days", "POST", replace, "", `{"name":"new","grace_until":"` + far + `"}`, bad("grace_until"), ""},
		{"replace/grace not a time", "POST", replace, "", `{"name":"new","grace_until":"soon"}`, bad(""), ""},
		{"replace/no name", "POST", replace, "", `{"grace_until":"` + future + `"}`, bad("name"), ""},
		{"replace/taken name", "POST", replace, "", `{"name":"k","grace_until":"` + future + `"}`, conflict, ""},
		{"replace/expiry in the past", "POST", replace, "", `{"name":"new","grace_until":"` + future + `","expires_at":"` + past + `"}`, bad("expires_at"), ""},
		{"replace/kind is not taken", "POST", replace, "", `{"name":"new","grace_until":"` + future + `","kind":"secret"}`, bad("kind"), ""},
		{"replace/unknown key", "POST", keys + "/00000000-0000-4000-8000-000000000000/replace", "", `{"name":"new","grace_until":"` + future + `"}`, wantErr{404, api.CodeNotFound, ""}, ""},
		{"ticket/ttl too short", "POST", "/api/v1/registration-tickets", w.key, `{"ttl_seconds":9}`, bad("ttl_seconds"), ""},
		{"ticket/ttl too long", "POST", "/api/v1/registration-tickets", w.key, `{"ttl_seconds":601}`, bad("ttl_seconds"), ""},
		{"ticket/ttl negative", "POST", "/api/v1/registration-tickets", w.key, `{"ttl_seconds":-1}`, bad("ttl_seconds"), ""},
		{"ticket/ttl a string", "POST", "/api/v1/registration-tickets", w.key, `{"ttl_seconds":"600"}`, bad("ttl_seconds"), ""},
		{"ticket/ttl a float", "POST", "/api/v1/registration-tickets", w.key, `{"ttl_seconds":60.5}`, bad("ttl_seconds"), ""},
		{"ticket/empty external_ref", "POST", "/api/v1/registration-tickets", w.key, `{"external_ref":""}`, bad("external_ref"), ""},
		{"ticket/long external_ref", "POST", "/api/v1/registration-tickets", w.key, `{"external_ref":"` + strings.Repeat("r", 129) + `"}`, bad("external_ref"), ""},
		{"ticket/newline in external_ref", "POST", "/api/v1/registration-tickets", w.key, `{"external_ref":"a\nb"}`, bad("external_ref"), ""},
		{"ticket/mass-assigned app", "POST", "/api/v1/registration-tickets", w.key, `{"app_id":"` + w.app + `"}`, bad("app_id"), ""},
		{"ticket/mass-assigned expiry", "POST", "/api/v1/registration-tickets", w.key, `{"expires_at":"` + far + `"}`, bad("expires_at"), ""},
		{"register/ticket bound to another ref", "POST", "/api/v1/devices", ticket.Ticket, `{"public_key":"` + newWGKey(t) + `","external_ref":"other"}`, wantErr{403, api.CodeForbidden, "external_ref"}, ""},
		{"register/device_token mass-assigned", "POST", "/api/v1/devices", w.key, `{"public_key":"` + newWGKey(t) + `","device_token":"tld_x"}`, bad("device_token"), ""},
		{"app/negative cap", "PUT", "/api/v1/apps/" + w.app, "", `{"registration_cap":-1}`, bad("registration_cap"), ""},
		{"app/cap too big", "PUT", "/api/v1/apps/" + w.app, "", `{"registration_cap":1000001}`, bad("registration_cap"), ""},
		{"app/cap a string", "PUT", "/api/v1/apps/" + w.app, "", `{"registration_cap":"5"}`, bad("registration_cap"), ""},
		{"app/cap overflows", "PUT", "/api/v1/apps/" + w.app, "", `{"registration_cap":1e400}`, bad("registration_cap"), ""},
		{"app/hits are not set", "PUT", "/api/v1/apps/" + w.app, "", `{"registration_cap_hits":0}`, bad("registration_cap_hits"), ""},
	}
	// Malformed credentials are 401, whatever their prefix.
	for _, c := range []struct{ name, cred string }{
		{"unknown prefix", "tlx_" + keyA.Key[4:]},
		{"key one short", keyA.Key[:len(keyA.Key)-1]},
		{"key one long", keyA.Key + "A"},
		{"upper-case prefix", "TLK_" + keyA.Key[4:]},
		{"ticket as device token", "tld_" + ticket.Ticket[4:]},
		{"device token as ticket", "tlt_" + dev.DeviceToken[4:]},
		{"device token as publishable key", "tlp_" + dev.DeviceToken[4:]},
		{"key as device token", "tld_" + keyA.Key[4:]},
		{"prefix only", "tld_"},
		{"non-ASCII", "tld_" + strings.Repeat("é", 21) + "a"},
	} {
		cases = append(cases, tc{"bearer/" + c.name, "POST", "/api/v1/devices", c.cred, `{"public_key":"` + newWGKey(t) + `"}`, unauthorized, ""})
	}
	// The shared decoding failures of each new JSON route.
	for _, r := range []struct{ name, method, path, cred, valid string }{
		{"key", "POST", keys, "", `{"name":"decoded"}`},
		{"replace", "POST", replace, "", `{"name":"decoded","grace_until":"` + future + `"}`},
		{"ticket", "POST", "/api/v1/registration-tickets", w.key, `{"ttl_seconds":60}`},
		{"app", "PUT", "/api/v1/apps/" + w.app, "", `{"registration_cap":5}`},
	} {
		for _, d := range decodingCases(r.method, r.path, "", r.valid) {
			cases = append(cases, tc{r.name + "/" + d.name, d.method, d.path, r.cred, d.body, d.want, d.ct})
		}
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := w.snapshot(t)
			cred := c.cred
			if cred == "" {
				cred = w.token
			}
			h.Do(request{Method: c.method, Path: c.path, Token: cred, Body: c.body, ContentType: c.ct}).MustHaveError(t, c.want)
			if diff := cmp.Diff(before, w.snapshot(t)); diff != "" {
				t.Errorf("refused request changed the store (-before +after):\n%s", diff)
			}
		})
	}
}
