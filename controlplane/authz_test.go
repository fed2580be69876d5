package controlplane

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The authorization matrix: every registered route, called with every kind
// of credential, must answer exactly as its class says. A route added to
// the server without a row here fails TestAuthzMatrixCoversRoutes.

// authClass is who may call a route.
type authClass int

const (
	classPublic    authClass = iota // anyone; credentials are ignored
	classOwner                      // an owner's sign-in token
	classAdmin                      // an operator's sign-in token
	classApp                        // a provisioning credential of the kinds in route.perm
	classNodeCred                   // a node credential
	classNode                       // a node token
	classPage                       // a dashboard page of an owner (session cookie)
	classAdminPage                  // a dashboard page of an operator (session cookie)
)

// credential kinds, the matrix's columns.
const (
	credNone       = "none"
	credGarbage    = "garbage bearer"
	credOwnerA     = "owner A"
	credOwnerB     = "owner B"
	credAdmin      = "operator"
	credKeyA       = "key of app A"
	credKeyB       = "key of app B"
	credRevokedKey = "revoked key"
	credExpired    = "expired session of A"
	credOldEpoch   = "session of A after logout"
	credSuspended  = "suspended owner C"
	credNodeToken  = "node token"
	credNodeCred   = "node credential"
	credExpNode    = "expired node token"
	// The credentials that can ship inside an app (credentials.go).
	credPubA          = "publishable key of app A"
	credExpiredKey    = "expired key of app A"
	credGraceKey      = "replaced key of app A in its grace period"
	credDevOwn        = "device token of A's device"
	credDevOther      = "device token of another device of app A"
	credDevB          = "device token of a device of app B"
	credTicketA       = "fresh ticket of app A"
	credTicketUsed    = "used ticket of app A"
	credTicketExpired = "expired ticket of app A"
	credTicketB       = "ticket of owner B's app"
)

// allCreds in the order the matrix tries them among equal outcomes: the
// device's own token acts on A's device before A's keys rotate or delete
// it.
var allCreds = []string{credNone, credGarbage, credRevokedKey, credExpired, credOldEpoch, credSuspended, credExpNode,
	credExpiredKey, credTicketUsed, credTicketExpired,
	credNodeCred, credNodeToken, credKeyB, credOwnerB, credAdmin, credDevB, credDevOther, credTicketB,
	credDevOwn, credPubA, credTicketA, credGraceKey, credKeyA, credOwnerA}

// authzWorld holds two owners' resources and one of every credential.
type authzWorld struct {
	*syncWorld
	creds   map[string]string
	appA    string
	devA    api.DeviceCreated
	keyA    string // key ID
	plan    string // a throwaway plan's ID
	ownPool string // owner A's dedicated pool
	ownNode string // a node in it
	identA  string // one of owner A's two linked sign-in identities
	seq     int
}

func newAuthzWorld(t *testing.T) *authzWorld {
	t.Helper()
	sw := newSyncWorld(t, func(o *Options) { o.LongPoll = 50 * time.Millisecond }, ssoAuthzOptions(t))
	h := sw.h
	w := &authzWorld{syncWorld: sw, creds: map[string]string{}}
	var apps api.AppList
	h.Do(request{Method: "GET", Path: "/api/v1/apps", Token: sw.owner.Token}).MustStatus(t, 200).MustDecode(t, &apps)
	w.appA = apps.Apps[0].ID
	var keys api.APIKeyList
	h.Do(request{Method: "GET", Path: "/api/v1/apps/" + w.appA + "/keys", Token: sw.owner.Token}).MustStatus(t, 200).MustDecode(t, &keys)
	w.keyA = keys.Keys[0].ID
	w.devA = sw.register(t)

	b := h.MustOwner()
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: b.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, 200)
	var appB api.App
	h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: b.Token, Body: api.AppInput{Name: "b"}}).MustStatus(t, 201).MustDecode(t, &appB)
	var keyB, revoked api.APIKeyCreated
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + appB.ID + "/keys", Token: b.Token, Body: api.APIKeyInput{Name: "b"}}).MustStatus(t, 201).MustDecode(t, &keyB)
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + appB.ID + "/keys", Token: b.Token, Body: api.APIKeyInput{Name: "r"}}).MustStatus(t, 201).MustDecode(t, &revoked)
	h.Do(request{Method: "DELETE", Path: "/api/v1/apps/" + appB.ID + "/keys/" + revoked.ID, Token: b.Token}).MustStatus(t, 204)

	c := h.MustOwner()
	h.Do(request{Method: "PUT", Path: "/api/v1/admin/owners/" + c.Owner.ID, Token: sw.admin, Body: map[string]string{"status": "suspended"}}).MustStatus(t, 200)

	// A token of A issued a day ago has expired; one from before a logout
	// carries an old epoch.
	past := *h.srv.sessions
	past.now = func() time.Time { return h.clock.Now().Add(-24 * time.Hour) }
	expired, _, err := past.issue(sw.owner.Owner.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	stale := h.MustLogin(sw.owner.Owner.Email, ownerPasswordFor(t, h, sw.owner.Owner.Email))
	if err := h.store.BumpTokenEpoch(context.Background(), sw.owner.Owner.ID); err != nil {
		t.Fatal(err)
	}
	fresh := h.MustLogin(sw.owner.Owner.Email, ownerPasswordFor(t, h, sw.owner.Owner.Email))
	// Before the clock moves: a key that expires in a minute, a ticket
	// that expires in two and a ticket already spent.
	soon := h.clock.Now().Add(time.Minute)
	var expKey api.APIKeyCreated
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.appA + "/keys", Token: fresh.Token,
		Body: api.APIKeyInput{Name: "short-lived", ExpiresAt: &soon}}).MustStatus(t, 201).MustDecode(t, &expKey)
	expTicket := w.mustTicket(t, sw.key, api.TicketInput{TTLSeconds: 120})
	usedTicket := w.mustTicket(t, sw.key, api.TicketInput{})
	h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: usedTicket, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).MustStatus(t, 201)
	h.clock.Advance(11 * time.Minute) // the node token from newSyncWorld expires (10 min)
	expNode := sw.nodeToken
	var nt api.NodeToken
	h.Do(request{Method: "POST", Path: "/agent/v1/token", Token: sw.node.Credential}).MustStatus(t, 200).MustDecode(t, &nt)
	fresh = h.MustLogin(sw.owner.Owner.Email, ownerPasswordFor(t, h, sw.owner.Owner.Email))
	admin := h.MustLogin(adminEmail, adminPassword)
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: admin.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, 200)

	p, err := h.store.CreatePlan(context.Background(), store.PlanWithPools{Plan: store.Plan{Slug: "spare", Name: "Spare", MaxApps: 1, MaxDevices: 1, Currency: "EUR"}})
	if err != nil {
		t.Fatal(err)
	}
	w.plan = p.ID
	var own api.Pool
	h.Do(request{Method: "POST", Path: "/api/v1/pools", Token: fresh.Token, Body: api.PoolInput{Name: "mine", Region: "home", Country: "NL", City: "Delft"}}).
		MustStatus(t, 201).MustDecode(t, &own)
	w.ownPool = own.ID
	ownNode, _ := sw.enroll(t, own.ID, "own-node")
	w.ownNode = ownNode.NodeID

	// A's publishable key; a key of A replaced an hour before its grace
	// ends; a second device of A, a device of B and their tokens; fresh
	// tickets of A and B.
	var pub, graced api.APIKeyCreated
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.appA + "/keys", Token: fresh.Token,
		Body: api.APIKeyInput{Name: "shipped", Kind: api.KeyPublishable}}).MustStatus(t, 201).MustDecode(t, &pub)
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.appA + "/keys", Token: fresh.Token,
		Body: api.APIKeyInput{Name: "old backend"}}).MustStatus(t, 201).MustDecode(t, &graced)
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + w.appA + "/keys/" + graced.ID + "/replace", Token: fresh.Token,
		Body: api.KeyReplaceInput{Name: "new backend", GraceUntil: h.clock.Now().Add(time.Hour)}}).MustStatus(t, 201)
	devOther := sw.register(t)
	var devB api.DeviceCreated
	h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: keyB.Key, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).
		MustStatus(t, 201).MustDecode(t, &devB)

	w.creds = map[string]string{
		credNone: "", credGarbage: "not-a-token", credOwnerA: fresh.Token, credOwnerB: b.Token, credAdmin: admin.Token,
		credKeyA: sw.key, credKeyB: keyB.Key, credRevokedKey: revoked.Key, credExpired: expired, credOldEpoch: stale.Token,
		credSuspended: c.Token, credNodeToken: nt.Token, credNodeCred: sw.node.Credential, credExpNode: expNode,
		credPubA: pub.Key, credExpiredKey: expKey.Key, credGraceKey: graced.Key,
		credDevOwn: w.devA.DeviceToken, credDevOther: devOther.DeviceToken, credDevB: devB.DeviceToken,
		credTicketA: w.mustTicket(t, sw.key, api.TicketInput{}), credTicketUsed: usedTicket, credTicketExpired: expTicket,
		credTicketB: w.mustTicket(t, keyB.Key, api.TicketInput{}),
	}
	w.identA = ssoAuthzIdentity(t, w)
	return w
}

// mustTicket mints a registration ticket with a secret key.
func (w *authzWorld) mustTicket(t *testing.T, key string, in api.TicketInput) string {
	t.Helper()
	var rt api.RegistrationTicket
	w.h.Do(request{Method: "POST", Path: "/api/v1/registration-tickets", Token: key, Body: in}).MustStatus(t, 201).MustDecode(t, &rt)
	return rt.Ticket
}

// mailedToken creates an account and stores a link token of kind for it,
// as the mail queue would, and returns the token.
func (w *authzWorld) mailedToken(kind string) string {
	w.seq++
	o, err := w.h.srv.createAccount(context.Background(), fmt.Sprintf("mailed%d@example.com", w.seq), testPassword, store.RoleOwner)
	if err != nil {
		w.h.tb.Fatal(err)
	}
	tok := randomSecret("")
	now := w.h.clock.Now()
	if err := w.h.store.CreateOwnerToken(context.Background(), o.ID, kind, hashAPIKey(tok), now.Add(time.Hour), now); err != nil {
		w.h.tb.Fatal(err)
	}
	return tok
}

// pendingCode starts (again) owner A's two-factor enrolment and returns a
// code of the new secret for the current time step.
func (w *authzWorld) pendingCode() string {
	ctx := context.Background()
	if err := w.h.store.DisableTOTP(ctx, w.owner.Owner.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		w.h.tb.Fatal(err)
	}
	o := w.h.MustGetOwner(w.owner.Owner.ID)
	e, err := w.h.srv.startTOTP(ctx, o)
	if err != nil {
		w.h.tb.Fatal(err)
	}
	code, err := totpCode(e.Secret, totpStep(w.h.clock.Now()))
	if err != nil {
		w.h.tb.Fatal(err)
	}
	return code
}

// enabledCode turns owner A's two-factor on (afresh) and returns a code
// that the confirmation has not spent: one of the next time step.
func (w *authzWorld) enabledCode() string {
	ctx := context.Background()
	if err := w.h.store.DisableTOTP(ctx, w.owner.Owner.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		w.h.tb.Fatal(err)
	}
	o := w.h.MustGetOwner(w.owner.Owner.ID)
	e, err := w.h.srv.startTOTP(ctx, o)
	if err != nil {
		w.h.tb.Fatal(err)
	}
	step := totpStep(w.h.clock.Now())
	if err := w.h.store.EnableTOTP(ctx, o.ID, step-1, nil); err != nil {
		w.h.tb.Fatal(err)
	}
	code, err := totpCode(e.Secret, step)
	if err != nil {
		w.h.tb.Fatal(err)
	}
	return code
}

// ownerPasswordFor returns the password MustOwner gave the account.
func ownerPasswordFor(t *testing.T, h *harness, email string) string {
	t.Helper()
	return testPassword
}

// route is one row: how to call the route on owner A's resources, its
// class, whether its path names A's resources (so other owners get 404),
// and the status of a successful call.
type route struct {
	class   authClass
	scoped  bool
	ok      int
	request func(w *authzWorld) request
	// fixed, when set, is the status every credential gets (routes whose
	// answer does not depend on the caller).
	fixed int
	// page marks a dashboard route: the credential travels in the session
	// cookie instead of a bearer header, and a POST carries the form token
	// that matches it (dashboard_session.go).
	page bool
	// override, when set, replaces the class's expectation for some
	// credentials.
	override map[string]int
	// perm, for classApp, is the set of provisioning credentials the
	// route admits.
	perm credKind
	// after, when set, runs after each successful call (to put back what
	// the call removed).
	after func(w *authzWorld)
}

func authzRoutes() map[string]route {
	get := func(path string) func(*authzWorld) request {
		return func(*authzWorld) request { return request{Method: "GET", Path: path} }
	}
	rows := map[string]route{
		"GET /healthz":  {class: classPublic, ok: 200, request: get("/healthz")},
		"HEAD /healthz": {class: classPublic, ok: 200, request: func(*authzWorld) request { return request{Method: "HEAD", Path: "/healthz"} }},
		"GET /readyz":   {class: classPublic, ok: 200, request: get("/readyz")},
		"HEAD /readyz":  {class: classPublic, ok: 200, request: func(*authzWorld) request { return request{Method: "HEAD", Path: "/readyz"} }},
		"GET /metrics":  {class: classPublic, ok: 200, request: get("/metrics")},
		"GET /setup":    {class: classPublic, fixed: 410, request: get("/setup?token=x")},
		"POST /setup": {class: classPublic, fixed: 410, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/setup", Body: "token=x&email=a%40b.cd&password=y", ContentType: "application/x-www-form-urlencoded"}
		}},
		"GET /static/*":            {class: classPublic, ok: 200, request: get("/static/style.css")},
		"GET /api/v1/privacy":      {class: classPublic, ok: 200, request: get("/api/v1/privacy")},
		"GET /api/v1/openapi.json": {class: classPublic, ok: 200, request: get("/api/v1/openapi.json")},
		"GET /api/v1/plans":        {class: classPublic, ok: 200, request: get("/api/v1/plans")},
		"GET /api/v1/policy":       {class: classPublic, ok: 200, request: get("/api/v1/policy")},
		"PUT /api/v1/me/policy": {class: classOwner, ok: 200, request: func(*authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/me/policy", Body: api.PolicyAccept{Version: "1"}}
		}},
		"GET /api/v1/app": {class: classApp, perm: permAppRead, ok: 200, request: get("/api/v1/app")},
		"POST /api/v1/setup": {class: classPublic, fixed: 403, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/setup", Body: api.Setup{Token: "x", Email: "a@b.cd", Password: "long enough pass"}}
		}},
		"POST /api/v1/auth/signup": {class: classPublic, ok: 201, request: func(w *authzWorld) request {
			w.seq++
			return request{Method: "POST", Path: "/api/v1/auth/signup", Body: api.Credentials{Email: fmt.Sprintf("authz%d@example.com", w.seq), Password: "a fine signup pass"}}
		}},
		"POST /api/v1/auth/login": {class: classPublic, ok: 200, request: func(w *authzWorld) request {
			// One account per cell: the per-email login limit is not under test.
			w.seq++
			email := fmt.Sprintf("login%d@example.com", w.seq)
			if _, err := w.h.srv.createAccount(context.Background(), email, testPassword, store.RoleOwner); err != nil {
				w.h.tb.Fatal(err)
			}
			return request{Method: "POST", Path: "/api/v1/auth/login", Body: api.Credentials{Email: email, Password: testPassword}}
		}},
		// Sign-in by mail (email.go). The matrix's server sends no mail;
		// each link cell gets an account and a link of its own.
		"POST /api/v1/auth/password-reset": {class: classPublic, fixed: 409, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/auth/password-reset", Body: api.PasswordResetRequest{Email: "someone@example.com"}}
		}},
		"POST /api/v1/auth/password-reset/confirm": {class: classPublic, ok: 204, request: func(w *authzWorld) request {
			tok := w.mailedToken(store.TokenResetPassword)
			return request{Method: "POST", Path: "/api/v1/auth/password-reset/confirm", Body: api.PasswordResetConfirm{Token: tok, NewPassword: "a brand new passphrase"}}
		}},
		"POST /api/v1/auth/verify-email": {class: classPublic, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/auth/verify-email", Body: api.EmailVerification{Token: w.mailedToken(store.TokenVerifyEmail)}}
		}},
		// The operator's password is another one (403 on current_password).
		"PUT /api/v1/me/password": {class: classOwner, ok: 200, override: map[string]int{credAdmin: 403}, request: func(*authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/me/password", Body: api.PasswordChange{CurrentPassword: testPassword, NewPassword: "a brand new passphrase"}}
		}},
		// Without mail, a signed-in owner learns that no link can be sent.
		"POST /api/v1/me/verify-email": {class: classOwner, ok: 409, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/me/verify-email"}
		}},
		// Two-factor (totp.go). Every account may enrol; confirming and
		// turning off need a state the row sets up for owner A only.
		"POST /api/v1/me/2fa": {class: classOwner, ok: 200, request: func(*authzWorld) request { return request{Method: "POST", Path: "/api/v1/me/2fa"} }},
		"POST /api/v1/me/2fa/confirm": {class: classOwner, ok: 200, override: map[string]int{credOwnerB: 409, credAdmin: 409}, request: func(w *authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/me/2fa/confirm", Body: api.TOTPCode{Code: w.pendingCode()}}
		}},
		"DELETE /api/v1/me/2fa": {class: classOwner, ok: 204, override: map[string]int{credOwnerB: 409, credAdmin: 409}, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/me/2fa", Body: api.TOTPDisable{Password: testPassword, Code: w.enabledCode()}}
		}},
		"POST /api/v1/auth/logout": {class: classOwner, ok: 204, request: func(*authzWorld) request { return request{Method: "POST", Path: "/api/v1/auth/logout"} }},
		"GET /api/v1/me":           {class: classOwner, ok: 200, request: get("/api/v1/me")},
		"GET /api/v1/me/export":    {class: classOwner, ok: 200, request: get("/api/v1/me/export")},
		"DELETE /api/v1/me":        {class: classOwner, ok: 204, request: func(*authzWorld) request { return request{Method: "DELETE", Path: "/api/v1/me"} }},
		"PUT /api/v1/me/plan": {class: classOwner, ok: 200, request: func(*authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/me/plan", Body: api.PlanChange{Plan: "pro"}}
		}},
		"POST /api/v1/apps": {class: classOwner, ok: 201, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/apps", Body: api.AppInput{Name: "another"}}
		}},
		"GET /api/v1/apps":         {class: classOwner, ok: 200, request: get("/api/v1/apps")},
		"GET /api/v1/apps/:app_id": {class: classOwner, scoped: true, ok: 200, request: func(w *authzWorld) request { return request{Method: "GET", Path: "/api/v1/apps/" + w.appA} }},
		"PUT /api/v1/apps/:app_id": {class: classOwner, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/apps/" + w.appA, Body: api.AppInput{Name: "renamed"}}
		}},
		"DELETE /api/v1/apps/:app_id": {class: classOwner, scoped: true, ok: 204, request: func(w *authzWorld) request { return request{Method: "DELETE", Path: "/api/v1/apps/" + w.appA} }},
		"POST /api/v1/apps/:app_id/keys": {class: classOwner, scoped: true, ok: 201, request: func(w *authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/apps/" + w.appA + "/keys", Body: api.APIKeyInput{Name: "k2"}}
		}},
		"GET /api/v1/apps/:app_id/keys": {class: classOwner, scoped: true, ok: 200, request: func(w *authzWorld) request { return request{Method: "GET", Path: "/api/v1/apps/" + w.appA + "/keys"} }},
		"DELETE /api/v1/apps/:app_id/keys/:key_id": {class: classOwner, scoped: true, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/apps/" + w.appA + "/keys/" + w.keyA}
		}},
		"GET /api/v1/pools": {class: classOwner, ok: 200, request: get("/api/v1/pools")},
		"POST /api/v1/pools": {class: classOwner, ok: 201, request: func(w *authzWorld) request {
			w.seq++
			return request{Method: "POST", Path: "/api/v1/pools", Body: api.PoolInput{Name: fmt.Sprintf("own %d", w.seq), Region: "home", Country: "NL", City: "Delft"}}
		}},
		"DELETE /api/v1/pools/:pool_id": {class: classOwner, scoped: true, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/pools/" + w.ownPool}
		}},
		"POST /api/v1/pools/:pool_id/enrollment-tokens": {class: classOwner, scoped: true, ok: 201, request: func(w *authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/pools/" + w.ownPool + "/enrollment-tokens"}
		}},
		"GET /api/v1/nodes": {class: classOwner, ok: 200, request: get("/api/v1/nodes")},
		"DELETE /api/v1/nodes/:node_id": {class: classOwner, scoped: true, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/nodes/" + w.ownNode}
		}},
		// Alerts (alerts.go): every owner has settings of their own.
		"GET /api/v1/alerts/settings": {class: classOwner, ok: 200, request: get("/api/v1/alerts/settings")},
		"PUT /api/v1/alerts/settings": {class: classOwner, ok: 200, request: func(*authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/alerts/settings", Body: api.AlertSettingsInput{History: new(true), RetentionDays: new(7)}}
		}},
		"POST /api/v1/alerts/test":      {class: classOwner, ok: 202, request: func(*authzWorld) request { return request{Method: "POST", Path: "/api/v1/alerts/test"} }},
		"GET /api/v1/alerts/history":    {class: classOwner, ok: 200, request: get("/api/v1/alerts/history")},
		"DELETE /api/v1/alerts/history": {class: classOwner, ok: 204, request: func(*authzWorld) request { return request{Method: "DELETE", Path: "/api/v1/alerts/history"} }},
		"DELETE /api/v1/admin/pools/:pool_id": {class: classAdmin, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/admin/pools/" + w.ownPool}
		}},
		"GET /api/v1/servers": {class: classApp, perm: permServers, ok: 200, request: get("/api/v1/servers")},
		"POST /api/v1/registration-tickets": {class: classApp, perm: permSecret, ok: 201, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/registration-tickets", Body: api.TicketInput{}}
		}},
		"POST /api/v1/devices/:device_id/token": {class: classApp, perm: permSecret, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/devices/" + w.devA.ID + "/token"}
		}},
		"POST /api/v1/apps/:app_id/keys/:key_id/replace": {class: classOwner, scoped: true, ok: 201, request: func(w *authzWorld) request {
			w.seq++
			return request{Method: "POST", Path: "/api/v1/apps/" + w.appA + "/keys/" + w.keyA + "/replace",
				Body: api.KeyReplaceInput{Name: fmt.Sprintf("replacement %d", w.seq), GraceUntil: w.h.clock.Now().Add(time.Hour)}}
		}},
		"POST /api/v1/devices": {class: classApp, perm: permRegister, ok: 201, request: func(w *authzWorld) request {
			var b [32]byte
			for i := range b {
				b[i] = byte(w.seq + i + 1)
			}
			w.seq++
			return request{Method: "POST", Path: "/api/v1/devices", Body: api.DeviceInput{PublicKey: newWGKeyFrom(b)}}
		}},
		"GET /api/v1/devices":            {class: classApp, perm: permSecret, ok: 200, request: get("/api/v1/devices")},
		"GET /api/v1/devices/:device_id": {class: classApp, perm: permOwnDevice, scoped: true, ok: 200, request: func(w *authzWorld) request { return request{Method: "GET", Path: "/api/v1/devices/" + w.devA.ID} }},
		// Each successful delete removes A's device; the next credential
		// gets a new one to delete.
		"DELETE /api/v1/devices/:device_id": {class: classApp, perm: permOwnDevice, scoped: true, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/devices/" + w.devA.ID}
		}, after: func(w *authzWorld) { w.devA = w.register(w.h.tb.(*testing.T)) }},
		"POST /api/v1/devices/:device_id/rotate": {class: classApp, perm: permOwnDevice, scoped: true, ok: 200, request: func(w *authzWorld) request {
			var b [32]byte
			b[0], b[1] = 0xee, byte(w.seq+1)
			w.seq++
			return request{Method: "POST", Path: "/api/v1/devices/" + w.devA.ID + "/rotate", Body: api.RotateInput{PublicKey: newWGKeyFrom(b)}}
		}},
		"GET /api/v1/devices/:device_id/config": {class: classApp, perm: permOwnDevice, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/api/v1/devices/" + w.devA.ID + "/config?server=" + w.node.NodeID}
		}},
		"POST /agent/v1/enroll": {class: classPublic, ok: 201, request: func(w *authzWorld) request {
			tok := randomSecret(enrollTokenPrefix)
			if err := w.h.store.CreateEnrollmentToken(context.Background(), w.pool.ID, hashAPIKey(tok), w.h.clock.Now().Add(time.Hour), w.h.clock.Now()); err != nil {
				w.h.tb.Fatal(err)
			}
			var b [32]byte
			b[0], b[1] = 0xaa, byte(w.seq+1)
			w.seq++
			return request{Method: "POST", Path: "/agent/v1/enroll", Body: api.EnrollRequest{Token: tok, Name: "n", PublicKey: newWGKeyFrom(b), Endpoint: "203.0.113.50:51820"}}
		}},
		"POST /agent/v1/token": {class: classNodeCred, ok: 200, request: func(*authzWorld) request { return request{Method: "POST", Path: "/agent/v1/token"} }},
		"GET /agent/v1/peers":  {class: classNode, ok: 200, request: get("/agent/v1/peers?since=0")},
		"POST /agent/v1/status": {class: classNode, ok: 200, request: func(*authzWorld) request {
			return request{Method: "POST", Path: "/agent/v1/status", Body: api.NodeStatus{Version: "t"}}
		}},
		"GET /api/v1/admin/plans": {class: classAdmin, ok: 200, request: get("/api/v1/admin/plans")},
		"POST /api/v1/admin/plans": {class: classAdmin, ok: 201, request: func(w *authzWorld) request {
			w.seq++
			return request{Method: "POST", Path: "/api/v1/admin/plans", Body: api.PlanInput{Slug: fmt.Sprintf("p%d", w.seq), Name: "P", Currency: "EUR"}}
		}},
		"PUT /api/v1/admin/plans/:plan_id": {class: classAdmin, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/admin/plans/" + w.plan, Body: api.PlanInput{Slug: "spare", Name: "Spare 2", Currency: "EUR"}}
		}},
		"DELETE /api/v1/admin/plans/:plan_id": {class: classAdmin, ok: 204, request: func(w *authzWorld) request { return request{Method: "DELETE", Path: "/api/v1/admin/plans/" + w.plan} }},
		"GET /api/v1/admin/pools":             {class: classAdmin, ok: 200, request: get("/api/v1/admin/pools")},
		"POST /api/v1/admin/pools": {class: classAdmin, ok: 201, request: func(w *authzWorld) request {
			w.seq++
			return request{Method: "POST", Path: "/api/v1/admin/pools", Body: api.PoolInput{Name: fmt.Sprintf("pool %d", w.seq), Region: "r", Country: "FR", City: "Paris"}}
		}},
		"POST /api/v1/admin/pools/:pool_id/enrollment-tokens": {class: classAdmin, ok: 201, request: func(w *authzWorld) request {
			return request{Method: "POST", Path: "/api/v1/admin/pools/" + w.pool.ID + "/enrollment-tokens"}
		}},
		"GET /api/v1/admin/nodes": {class: classAdmin, ok: 200, request: get("/api/v1/admin/nodes")},
		"PUT /api/v1/admin/nodes/:node_id": {class: classAdmin, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/admin/nodes/" + w.node.NodeID, Body: api.NodeUpdate{Enabled: new(bool)}}
		}},
		"DELETE /api/v1/admin/nodes/:node_id": {class: classAdmin, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/admin/nodes/" + w.node.NodeID}
		}},
		"GET /api/v1/admin/owners": {class: classAdmin, ok: 200, request: get("/api/v1/admin/owners")},
		"DELETE /api/v1/admin/owners/:owner_id": {class: classAdmin, ok: 204, request: func(w *authzWorld) request {
			return request{Method: "DELETE", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID}
		}},
		"PUT /api/v1/admin/owners/:owner_id": {class: classAdmin, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "PUT", Path: "/api/v1/admin/owners/" + w.owner.Owner.ID, Body: map[string]string{"status": "active"}}
		}},
		// The dashboard (dashboard.go). Anonymous visitors of a signed-in
		// page are redirected to /login (303); successful posts redirect too.
		"GET /":         {class: classPublic, page: true, fixed: 303, request: get("/")},
		"GET /login":    {class: classPublic, page: true, ok: 200, request: get("/login")},
		"GET /signup":   {class: classPublic, page: true, ok: 200, request: get("/signup")},
		"GET /privacy":  {class: classPublic, page: true, ok: 200, request: get("/privacy")},
		"GET /api/docs": {class: classPublic, page: true, ok: 200, request: get("/api/docs")},
		"POST /login": {class: classPublic, page: true, ok: 303, request: func(w *authzWorld) request {
			w.seq++
			email := fmt.Sprintf("pagelogin%d@example.com", w.seq)
			if _, err := w.h.srv.createAccount(context.Background(), email, testPassword, store.RoleOwner); err != nil {
				w.h.tb.Fatal(err)
			}
			return form("/login", url.Values{"email": {email}, "password": {testPassword}})
		}},
		"POST /signup": {class: classPublic, page: true, ok: 303, request: func(w *authzWorld) request {
			w.seq++
			return form("/signup", url.Values{"email": {fmt.Sprintf("pagesignup%d@example.com", w.seq)}, "password": {"a fine signup pass"}})
		}},
		"POST /logout":      {class: classPage, page: true, ok: 303, request: func(*authzWorld) request { return form("/logout", nil) }},
		"GET /apps":         {class: classPage, page: true, ok: 200, request: get("/apps")},
		"POST /apps":        {class: classPage, page: true, ok: 303, request: func(*authzWorld) request { return form("/apps", url.Values{"name": {"another"}}) }},
		"GET /apps/:app_id": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request { return request{Method: "GET", Path: "/apps/" + w.appA} }},
		"POST /apps/:app_id/rename": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request {
			return form("/apps/"+w.appA+"/rename", url.Values{"name": {"renamed"}})
		}},
		"GET /apps/:app_id/delete":  {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request { return request{Method: "GET", Path: "/apps/" + w.appA + "/delete"} }},
		"POST /apps/:app_id/delete": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request { return form("/apps/"+w.appA+"/delete", nil) }},
		"POST /apps/:app_id/keys": {class: classPage, page: true, scoped: true, ok: 201, request: func(w *authzWorld) request {
			return form("/apps/"+w.appA+"/keys", url.Values{"name": {"k2"}})
		}},
		"GET /apps/:app_id/keys/:key_id/revoke": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/apps/" + w.appA + "/keys/" + w.keyA + "/revoke"}
		}},
		"POST /apps/:app_id/keys/:key_id/revoke": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request {
			return form("/apps/"+w.appA+"/keys/"+w.keyA+"/revoke", nil)
		}},
		"GET /apps/:app_id/devices": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request { return request{Method: "GET", Path: "/apps/" + w.appA + "/devices"} }},
		"GET /apps/:app_id/devices/:device_id": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/apps/" + w.appA + "/devices/" + w.devA.ID}
		}},
		"GET /apps/:app_id/devices/:device_id/config": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/apps/" + w.appA + "/devices/" + w.devA.ID + "/config?server=" + w.node.NodeID}
		}},
		"GET /servers": {class: classPage, page: true, ok: 200, request: get("/servers")},
		"GET /plan":    {class: classPage, page: true, ok: 200, request: get("/plan")},
		"POST /plan":   {class: classPage, page: true, ok: 303, request: func(*authzWorld) request { return form("/plan", url.Values{"plan": {"business"}}) }},
		"GET /account": {class: classPage, page: true, ok: 200, request: get("/account")},
		"GET /policy":  {class: classPage, page: true, ok: 200, request: get("/policy")},
		"POST /policy": {class: classPage, page: true, ok: 303, request: func(*authzWorld) request { return form("/policy", url.Values{"version": {"1"}}) }},
		// Sign-in security pages (dashboard_security.go). The operator's
		// password is another one; without mail, no link is sent (409).
		"GET /account/security": {class: classPage, page: true, ok: 200, request: get("/account/security")},
		"POST /account/password": {class: classPage, page: true, ok: 303, override: map[string]int{credAdmin: 403}, request: func(*authzWorld) request {
			return form("/account/password", url.Values{"current_password": {testPassword}, "new_password": {"a brand new passphrase"}})
		}},
		"POST /account/verify-email": {class: classPage, page: true, ok: 409, request: func(*authzWorld) request { return form("/account/verify-email", nil) }},
		"GET /forgot-password":       {class: classPublic, page: true, ok: 200, request: get("/forgot-password")},
		"POST /forgot-password": {class: classPublic, page: true, fixed: 409, request: func(*authzWorld) request {
			return form("/forgot-password", url.Values{"email": {"someone@example.com"}})
		}},
		"GET /reset-password": {class: classPublic, page: true, ok: 200, request: get("/reset-password?token=x")},
		"POST /reset-password": {class: classPublic, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/reset-password", url.Values{"token": {w.mailedToken(store.TokenResetPassword)}, "new_password": {"a brand new passphrase"}})
		}},
		"GET /verify-email": {class: classPublic, page: true, ok: 200, request: get("/verify-email?token=x")},
		"POST /verify-email": {class: classPublic, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/verify-email", url.Values{"token": {w.mailedToken(store.TokenVerifyEmail)}})
		}},
		"POST /account/2fa": {class: classPage, page: true, ok: 303, request: func(*authzWorld) request { return form("/account/2fa", nil) }},
		"GET /account/2fa/qr": {class: classPage, page: true, ok: 200, override: map[string]int{credOwnerB: 409, credAdmin: 409}, request: func(w *authzWorld) request {
			w.pendingCode()
			return request{Method: "GET", Path: "/account/2fa/qr"}
		}},
		"POST /account/2fa/confirm": {class: classPage, page: true, ok: 200, override: map[string]int{credOwnerB: 409, credAdmin: 409}, request: func(w *authzWorld) request {
			return form("/account/2fa/confirm", url.Values{"code": {w.pendingCode()}})
		}},
		"POST /account/2fa/disable": {class: classPage, page: true, ok: 303, override: map[string]int{credOwnerB: 409, credAdmin: 409}, request: func(w *authzWorld) request {
			return form("/account/2fa/disable", url.Values{"password": {testPassword}, "code": {w.enabledCode()}})
		}},
		// The second sign-in step: the pending cookie, not a session,
		// names the account; without one, back to /login.
		"GET /login/code": {class: classPublic, page: true, fixed: 303, request: get("/login/code")},
		"POST /login/code": {class: classPublic, page: true, fixed: 303, request: func(*authzWorld) request {
			return form("/login/code", url.Values{"code": {"123456"}})
		}},
		"GET /account/export": {class: classPage, page: true, ok: 200, request: get("/account/export")},
		"GET /account/delete": {class: classPage, page: true, ok: 200, request: get("/account/delete")},
		// The confirmation is A's email, so others' accounts stay (400).
		"POST /account/delete": {class: classPage, page: true, ok: 303, override: map[string]int{credOwnerB: 400, credAdmin: 400}, request: func(w *authzWorld) request {
			return form("/account/delete", url.Values{"confirm": {w.owner.Owner.Email}})
		}},
		"GET /apps/:app_id/devices/:device_id/delete": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/apps/" + w.appA + "/devices/" + w.devA.ID + "/delete"}
		}},
		"POST /apps/:app_id/devices/:device_id/delete": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request {
			return form("/apps/"+w.appA+"/devices/"+w.devA.ID+"/delete", nil)
		}},
		"POST /apps/:app_id/rotation": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request {
			return form("/apps/"+w.appA+"/rotation", url.Values{"rotation_days": {"30"}})
		}},
		// Credentials on the app page (dashboard_keys.go).
		"GET /apps/:app_id/keys/:key_id/replace": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/apps/" + w.appA + "/keys/" + w.keyA + "/replace"}
		}},
		"POST /apps/:app_id/keys/:key_id/replace": {class: classPage, page: true, scoped: true, ok: 201, request: func(w *authzWorld) request {
			return form("/apps/"+w.appA+"/keys/"+w.keyA+"/replace", url.Values{"name": {"replacement"},
				"grace_until": {w.h.clock.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04")}})
		}},
		"POST /apps/:app_id/tickets": {class: classPage, page: true, scoped: true, ok: 201, request: func(w *authzWorld) request {
			return form("/apps/"+w.appA+"/tickets", url.Values{"reference": {"user-1"}})
		}},
		"POST /apps/:app_id/registration-cap": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request {
			return form("/apps/"+w.appA+"/registration-cap", url.Values{"registration_cap": {"100"}})
		}},
		// An owner's own servers: A's dedicated pool and node.
		"GET /pools": {class: classPage, page: true, ok: 200, request: get("/pools")},
		"POST /pools": {class: classPage, page: true, ok: 303, request: func(w *authzWorld) request {
			w.seq++
			return form("/pools", url.Values{"name": {fmt.Sprintf("own page %d", w.seq)}, "region": {"home"}, "country": {"NL"}, "city": {"Delft"}})
		}},
		"GET /pools/:pool_id/delete": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/pools/" + w.ownPool + "/delete"}
		}},
		"POST /pools/:pool_id/delete": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request {
			return form("/pools/"+w.ownPool+"/delete", nil)
		}},
		"POST /pools/:pool_id/enrollment-tokens": {class: classPage, page: true, scoped: true, ok: 201, request: func(w *authzWorld) request {
			return form("/pools/"+w.ownPool+"/enrollment-tokens", nil)
		}},
		"GET /nodes/:node_id/delete": {class: classPage, page: true, scoped: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/nodes/" + w.ownNode + "/delete"}
		}},
		"POST /nodes/:node_id/delete": {class: classPage, page: true, scoped: true, ok: 303, request: func(w *authzWorld) request {
			return form("/nodes/"+w.ownNode+"/delete", nil)
		}},
		// Alerts: every account has settings of its own.
		"GET /alerts": {class: classPage, page: true, ok: 200, request: get("/alerts")},
		"POST /alerts": {class: classPage, page: true, ok: 303, request: func(*authzWorld) request {
			return form("/alerts", url.Values{"webhook_url": {""}, "events": {"node_offline", "pool_down"}, "history": {"on"}, "retention_days": {"7"}})
		}},
		// Only A has a webhook to sign for; the new secret is the answer.
		"POST /alerts/secret": {class: classPage, page: true, ok: 200, override: map[string]int{credOwnerB: 400, credAdmin: 400}, request: func(w *authzWorld) request {
			if err := w.h.store.PutAlertSettings(context.Background(), store.AlertSettings{OwnerID: w.owner.Owner.ID,
				WebhookURL: "https://hooks.example.com/t", WebhookSecret: "tlw_old", Events: "node_offline", RetentionDays: 30}); err != nil {
				w.h.tb.Fatal(err)
			}
			return form("/alerts/secret", nil)
		}},
		"POST /alerts/test":           {class: classPage, page: true, ok: 303, request: func(*authzWorld) request { return form("/alerts/test", nil) }},
		"GET /alerts/history":         {class: classPage, page: true, ok: 200, request: get("/alerts/history")},
		"GET /alerts/history/delete":  {class: classPage, page: true, ok: 200, request: get("/alerts/history/delete")},
		"POST /alerts/history/delete": {class: classPage, page: true, ok: 303, request: func(*authzWorld) request { return form("/alerts/history/delete", nil) }},
		"GET /admin/plans/:plan_id/delete": {class: classAdminPage, page: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/admin/plans/" + w.plan + "/delete"}
		}},
		"POST /admin/plans/:plan_id/delete": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/plans/"+w.plan+"/delete", nil)
		}},
		"GET /admin/pools/:pool_id/delete": {class: classAdminPage, page: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/admin/pools/" + w.ownPool + "/delete"}
		}},
		"POST /admin/pools/:pool_id/delete": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/pools/"+w.ownPool+"/delete", nil)
		}},
		"POST /admin/nodes/:node_id/enabled": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/nodes/"+w.node.NodeID+"/enabled", url.Values{"enabled": {"false"}})
		}},
		"GET /admin/nodes/:node_id/delete": {class: classAdminPage, page: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/admin/nodes/" + w.node.NodeID + "/delete"}
		}},
		"POST /admin/nodes/:node_id/delete": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/nodes/"+w.node.NodeID+"/delete", nil)
		}},
		"GET /admin/owners/:owner_id/delete": {class: classAdminPage, page: true, ok: 200, request: func(w *authzWorld) request {
			return request{Method: "GET", Path: "/admin/owners/" + w.owner.Owner.ID + "/delete"}
		}},
		"POST /admin/owners/:owner_id/delete": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/owners/"+w.owner.Owner.ID+"/delete", nil)
		}},
		"GET /admin":       {class: classAdminPage, page: true, ok: 200, request: get("/admin")},
		"GET /admin/plans": {class: classAdminPage, page: true, ok: 200, request: get("/admin/plans")},
		"POST /admin/plans": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			w.seq++
			return form("/admin/plans", url.Values{"slug": {fmt.Sprintf("pg%d", w.seq)}, "name": {"P"}, "max_apps": {"1"}, "max_devices": {"1"}, "max_own_nodes": {"0"}, "price": {"0"}, "currency": {"EUR"}})
		}},
		"GET /admin/plans/:plan_id": {class: classAdminPage, page: true, ok: 200, request: func(w *authzWorld) request { return request{Method: "GET", Path: "/admin/plans/" + w.plan} }},
		"POST /admin/plans/:plan_id": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/plans/"+w.plan, url.Values{"slug": {"spare"}, "name": {"Spare 2"}, "max_apps": {"1"}, "max_devices": {"1"}, "max_own_nodes": {"0"}, "price": {"0"}, "currency": {"EUR"}})
		}},
		"POST /admin/plans/:plan_id/retire": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/plans/"+w.plan+"/retire", url.Values{"retired": {"true"}})
		}},
		"GET /admin/pools": {class: classAdminPage, page: true, ok: 200, request: get("/admin/pools")},
		"POST /admin/pools": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			w.seq++
			return form("/admin/pools", url.Values{"name": {fmt.Sprintf("page pool %d", w.seq)}, "region": {"r"}, "country": {"FR"}, "city": {"Paris"}})
		}},
		"POST /admin/pools/:pool_id/enrollment-tokens": {class: classAdminPage, page: true, ok: 201, request: func(w *authzWorld) request {
			return form("/admin/pools/"+w.pool.ID+"/enrollment-tokens", nil)
		}},
		"GET /admin/nodes":            {class: classAdminPage, page: true, ok: 200, request: get("/admin/nodes")},
		"GET /admin/owners":           {class: classAdminPage, page: true, ok: 200, request: get("/admin/owners")},
		"GET /admin/owners/:owner_id": {class: classAdminPage, page: true, ok: 200, request: func(w *authzWorld) request { return request{Method: "GET", Path: "/admin/owners/" + w.owner.Owner.ID} }},
		"POST /admin/owners/:owner_id": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/owners/"+w.owner.Owner.ID, url.Values{"status": {"active"}, "plan": {"business"}})
		}},
		"POST /admin/owners/:owner_id/legal-hold": {class: classAdminPage, page: true, ok: 303, request: func(w *authzWorld) request {
			return form("/admin/owners/"+w.owner.Owner.ID+"/legal-hold", url.Values{"action": {"set"}, "reason": {"audit"}})
		}},
	}
	for k, r := range ssoAuthzRoutes() {
		rows[k] = r
	}
	for k, r := range billingAuthzRoutes() {
		rows[k] = r
	}
	return rows
}

// form is a dashboard form post (the matrix adds the CSRF token).
func form(path string, v url.Values) request {
	return request{Method: "POST", Path: path, Body: v.Encode(), ContentType: "application/x-www-form-urlencoded"}
}

func newWGKeyFrom(b [32]byte) string { return base64.StdEncoding.EncodeToString(b[:]) }

// expect is the status route r must answer to credential cred.
func (r route) expect(cred string) int {
	if r.fixed != 0 {
		return r.fixed
	}
	if st, ok := r.override[cred]; ok {
		return st
	}
	switch r.class {
	case classPublic:
		return r.ok
	case classOwner:
		switch cred {
		case credOwnerA:
			return r.ok
		case credOwnerB, credAdmin:
			if r.scoped {
				return 404
			}
			return r.ok
		case credSuspended:
			return 403
		}
	case classAdmin:
		switch cred {
		case credAdmin:
			return r.ok
		case credOwnerA, credOwnerB:
			return 403
		case credSuspended:
			return 403
		}
	case classApp:
		return r.expectApp(cred)
	case classNodeCred:
		if cred == credNodeCred {
			return r.ok
		}
	case classNode:
		if cred == credNodeToken {
			return r.ok
		}
	case classPage, classAdminPage:
		// Pages redirect visitors without a valid session to /login.
		switch cred {
		case credOwnerA:
			if r.class == classAdminPage {
				return 403
			}
			return r.ok
		case credOwnerB, credAdmin:
			if r.class == classAdminPage {
				if cred == credAdmin {
					return r.ok
				}
				return 403
			}
			if r.scoped {
				return 404
			}
			return r.ok
		case credSuspended:
			return 403
		}
		return 303
	}
	return 401
}

// expectApp is the status of a provisioning route for cred: a credential
// of a kind the route does not admit is 403; one that does is confined to
// its app (another app's resources are 404) and a device token to its
// own device; unknown, revoked, expired and spent credentials are 401.
func (r route) expectApp(cred string) int {
	kind := map[string]credKind{
		credKeyA: credSecret, credGraceKey: credSecret, credKeyB: credSecret, credPubA: credPublishable,
		credDevOwn: credDevice, credDevOther: credDevice, credDevB: credDevice, credTicketA: credTicket, credTicketB: credTicket,
	}[cred]
	// Whose resources the credential may touch on a scoped route.
	foreign := cred == credKeyB || cred == credDevOther || cred == credDevB || cred == credTicketB
	switch {
	case kind == 0:
		return 401
	case r.perm&kind == 0:
		return 403
	case r.scoped && foreign:
		return 404
	}
	return r.ok
}

// pageCSRFCookie is the anonymous form cookie the matrix sends with page
// requests.
const pageCSRFCookie = "matrixmatrixmatrixmatrixmatrixmatrixmatrix0"

// asPage moves the credential of q into the dashboard's session cookie and,
// for a POST, adds the form token that the credential's session (or, for a
// credential that is no session, the anonymous cookie) expects.
func (w *authzWorld) asPage(q request, cred string) request {
	tok := q.Token
	q.Token = ""
	q.Header = map[string]string{"Cookie": csrfCookie + "=" + pageCSRFCookie}
	if tok != "" {
		q.Header["Cookie"] += "; " + sessionCookie + "=" + tok
	}
	if q.Method != "POST" {
		return q
	}
	binding := "a:" + pageCSRFCookie
	switch cred {
	case credOwnerA, credOwnerB, credAdmin, credSuspended:
		binding = "s:" + tok
	}
	body, _ := q.Body.(string)
	if body != "" {
		body += "&"
	}
	q.Body = body + csrfField + "=" + w.h.srv.csrfToken(binding)
	q.ContentType = "application/x-www-form-urlencoded"
	return q
}

// TestAuthzMatrix calls every route with every credential on a fresh
// installation per route. Successful calls run last so that a delete does
// not turn the other cells into 404s.
func TestAuthzMatrix(t *testing.T) {
	for name, r := range authzRoutes() {
		t.Run(name, func(t *testing.T) {
			w := newAuthzWorld(t)
			creds := append([]string(nil), allCreds...)
			sort.SliceStable(creds, func(i, j int) bool {
				return r.expect(creds[i]) >= 400 && r.expect(creds[j]) < 400
			})
			for _, cred := range creds {
				q := r.request(w)
				q.Token = w.creds[cred]
				if r.page {
					q = w.asPage(q, cred)
				}
				res := w.h.Serve(q) // a fresh client address, so rate limits stay out of it
				if want := r.expect(cred); res.Status != want {
					t.Errorf("%s with %s: status %d, want %d; body %.200s", name, cred, res.Status, want, res.Body)
					continue
				}
				if res.Status < 400 && r.after != nil {
					r.after(w)
				}
				if res.Status >= 400 && q.Method != "HEAD" && !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
					e := res.MustError(t)
					if e.Code == "" {
						t.Errorf("%s with %s: error without a code", name, cred)
					}
				}
			}
		})
	}
}

// TestAuthzMatrixCoversRoutes fails when a registered route has no row.
func TestAuthzMatrixCoversRoutes(t *testing.T) {
	h := newHarness(t)
	rows := authzRoutes()
	seen := map[string]bool{}
	for _, r := range h.srv.echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		key := r.Method + " " + r.Path
		seen[key] = true
		if _, ok := rows[key]; !ok {
			t.Errorf("route %s has no row in the authorization matrix (authzRoutes in authz_test.go)", key)
		}
	}
	for key := range rows {
		if !seen[key] {
			t.Errorf("matrix row %s names no registered route", key)
		}
	}
}
