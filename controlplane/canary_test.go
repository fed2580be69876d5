package controlplane

// The privacy proof across every route: a full flow, served in process so
// that the client address is a canary, sends canary addresses, forwarded
// headers, a user agent, a device key, credentials and IDs; afterwards
// none of them may be found where they do not belong — the log, /metrics,
// the SQLite file and its WAL, and any response.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// The client-side canaries: what a client's connection and headers say
// about the person behind it. They must never be logged, stored, counted
// or sent back.
const (
	cnRemote    = "203.0.113.77:4242"
	cnRemoteIP  = "203.0.113.77"
	cnForwarded = "198.51.100.23"
	cnUA        = "CanaryAgent/9.9 (canary-ua-7f3a)"
)

// cnClient are the substrings of the client canaries that are searched for.
var cnClient = []string{cnRemoteIP, cnForwarded, cnUA, "CanaryAgent", "canary-ua-7f3a"}

// Canary account and infrastructure values.
const (
	cnOwnerEmail  = "canary-owner-7f3a@example.org"
	cnOwner2Email = "canary-owner2-7f3a@example.org"
	cnAdminEmail  = "canary-admin-7f3a@example.org"
	cnOwnerPass   = "Canary owner pass 7f3a!"
	cnOwner2Pass  = "Canary second pass 7f3a!"
	cnAdminPass   = "Canary admin pass 7f3a!"
	cnBadSetup    = "canary-wrong-setup-token-7f3a"
	cnNodeHost    = "canary-node-5c1e.example.net"
	cnNodeEP      = cnNodeHost + ":51820"
	cnHomeHost    = "canary-home-9d2b.example.net"
	cnHomeEP      = cnHomeHost + ":51821"
	cnExternalRef = "canary-ref-7f3a"
)

// cnKey is a fixed WireGuard public key derived from a label.
func cnKey(label string) string {
	b := sha256.Sum256([]byte("traceless canary " + label))
	return base64.StdEncoding.EncodeToString(b[:])
}

// otherLogLines are the log lines besides the one per request that the
// flow may produce, with the attributes they may have besides time, level
// and msg.
var otherLogLines = map[string][]string{
	"node enrolled":                     nil,
	"checkpoint after account deletion": {logError},
}

// canaryRun drives requests with the canary headers and records what was
// called, sent and answered.
type canaryRun struct {
	t         *testing.T
	h         *harness
	secrets   []string          // must not appear in the log or /metrics
	called    map[string]bool   // "METHOD /route" from the request log
	paths     map[string]string // request paths holding IDs -> route
	responses int
}

// secret adds values that must appear in no log line and no metric.
func (c *canaryRun) secret(vs ...string) {
	c.t.Helper()
	for _, v := range vs {
		if len(v) < 6 {
			c.t.Fatalf("canary %q is too short to search for", v)
		}
		c.secrets = append(c.secrets, v)
	}
}

// do sends q with the client canaries. route is "METHOD /pattern"; status
// is the status wanted, or 0 for any status below 500.
func (c *canaryRun) do(q request, route string, status int) response {
	c.t.Helper()
	q.RemoteAddr = cnRemote
	hdr := map[string]string{"X-Forwarded-For": cnForwarded, "X-Real-IP": cnForwarded, "User-Agent": cnUA}
	for k, v := range q.Header {
		hdr[k] = v
	}
	q.Header = hdr
	off := c.h.logs.Len()
	r := c.h.Serve(q)
	c.responses++
	if status != 0 && r.Status != status || status == 0 && r.Status >= 500 {
		c.t.Fatalf("%s %s: status %d, want %d; body %.300s", q.Method, q.Path, r.Status, status, r.Body)
	}
	var req []map[string]any
	for _, l := range MustParseLogLines(c.t, c.h.logs.Since(off)) {
		msg, _ := l[logMsgKey].(string)
		if msg == "request" {
			req = append(req, l)
			continue
		}
		attrs, ok := otherLogLines[msg]
		if !ok {
			c.t.Errorf("%s %s logged an unexpected line: %v", q.Method, q.Path, l)
			continue
		}
		allowed := append([]string{logLevelKey, logMsgKey, logTimeKey}, attrs...)
		for _, k := range logKeys(l) {
			if !slices.Contains(allowed, k) {
				c.t.Errorf("%s %s: a %q line has the attribute %q (allowed: %v)", q.Method, q.Path, msg, k, allowed)
			}
		}
	}
	if len(req) != 1 {
		c.t.Fatalf("%s %s logged %d request lines, want 1:\n%s", q.Method, q.Path, len(req), c.h.logs.Since(off))
	}
	l := req[0]
	if diff := cmp.Diff(requestLogKeys, logKeys(l)); diff != "" {
		c.t.Errorf("%s %s: request log keys (-want +got):\n%s", q.Method, q.Path, diff)
	}
	got := fmt.Sprintf("%v %v", l[logMethod], l[logRoute])
	if got != route {
		c.t.Errorf("%s %s was logged as %s, want %s", q.Method, q.Path, got, route)
	}
	if l[logStatus] != float64(r.Status) {
		c.t.Errorf("%s %s: logged status %v, answered %d", q.Method, q.Path, l[logStatus], r.Status)
	}
	c.called[got] = true
	if p, _, _ := strings.Cut(q.Path, "?"); p != strings.SplitN(route, " ", 2)[1] {
		c.paths[p] = route
	}
	// (d) No response carries the client's address or user agent back.
	for _, cn := range cnClient {
		if bytes.Contains(r.Body, []byte(cn)) {
			c.t.Errorf("%s %s: the response body holds %q", q.Method, q.Path, cn)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, cn) || strings.Contains(k, cn) {
					c.t.Errorf("%s %s: response header %s: %s holds %q", q.Method, q.Path, k, v, cn)
				}
			}
		}
	}
	return r
}

// mustFiles returns the raw bytes of the database, its WAL and its shared
// memory index (a missing file is empty).
func mustFiles(tb testing.TB, dbPath string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, f := range []string{dbPath, dbPath + "-wal", dbPath + "-shm"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			tb.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// mustNotHold fails for every value found in any of the files.
func mustNotHold(tb testing.TB, files map[string][]byte, when string, values ...string) {
	tb.Helper()
	for f, b := range files {
		for _, v := range values {
			if bytes.Contains(b, []byte(v)) {
				tb.Errorf("%s: %s holds %q", when, f, v)
			}
		}
	}
}

// mustCheckpoint checkpoints the WAL, retrying while a reader is busy.
func mustCheckpoint(tb testing.TB, h *harness) {
	tb.Helper()
	var err error
	for range 50 {
		if err = h.store.Checkpoint(context.Background()); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("checkpoint: %v", err)
}

func TestCanaryEveryRoute(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
	}{
		{name: "direct"},
		{name: "behind a trusted proxy", trusted: "203.0.113.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var nets []*net.IPNet
			if tc.trusted != "" {
				_, n, err := net.ParseCIDR(tc.trusted)
				if err != nil {
					t.Fatal(err)
				}
				nets = append(nets, n)
			}
			h := newHarness(t, func(o *Options) { o.TrustedProxies = nets; o.LongPoll = 100 * time.Millisecond })
			testCanaryEveryRoute(t, h)
		})
	}
}

func testCanaryEveryRoute(t *testing.T, h *harness) {
	c := &canaryRun{t: t, h: h, called: map[string]bool{}, paths: map[string]string{}}
	c.secret(cnClient...)
	c.secret("203.0.113.", "198.51.100.")
	c.secret(cnOwnerEmail, cnOwner2Email, cnAdminEmail, cnOwnerPass, cnOwner2Pass, cnAdminPass, cnBadSetup,
		cnNodeHost, cnHomeHost, cnExternalRef, h.SetupToken())
	devKey1, devKey2, nodeKey, homeNodeKey := cnKey("device one"), cnKey("device two"), cnKey("node"), cnKey("home node")
	devKey3 := cnKey("device three")
	c.secret(devKey1, devKey2, devKey3, nodeKey, homeNodeKey)
	get := func(path, token string) request { return request{Method: http.MethodGet, Path: path, Token: token} }
	post := func(path, token string, body any) request {
		return request{Method: http.MethodPost, Path: path, Token: token, Body: body}
	}
	put := func(path, token string, body any) request {
		return request{Method: http.MethodPut, Path: path, Token: token, Body: body}
	}
	del := func(path, token string) request { return request{Method: http.MethodDelete, Path: path, Token: token} }

	// Public routes.
	c.do(get("/healthz", ""), "GET /healthz", http.StatusOK)
	c.do(request{Method: http.MethodHead, Path: "/healthz"}, "HEAD /healthz", http.StatusOK)
	c.do(get("/api/v1/plans", ""), "GET /api/v1/plans", http.StatusOK)
	c.do(get("/api/v1/privacy", ""), "GET /api/v1/privacy", http.StatusOK)
	c.do(get("/api/v1/openapi.json", ""), "GET /api/v1/openapi.json", http.StatusOK)
	c.do(get("/static/style.css", ""), "GET /static/*", http.StatusOK)

	// The operator through the setup page; the JSON setup refuses a wrong
	// token and the page is gone afterwards.
	c.do(get("/setup?token="+url.QueryEscape(h.SetupToken()), ""), "GET /setup", http.StatusOK)
	c.do(post("/api/v1/setup", "", api.Setup{Token: cnBadSetup, Email: cnAdminEmail, Password: cnAdminPass}), "POST /api/v1/setup", http.StatusForbidden)
	form := url.Values{"token": {h.SetupToken()}, "email": {cnAdminEmail}, "password": {cnAdminPass}}.Encode()
	c.do(request{Method: http.MethodPost, Path: "/setup", Body: form, ContentType: "application/x-www-form-urlencoded"}, "POST /setup", http.StatusCreated)
	c.do(get("/setup", ""), "GET /setup", http.StatusGone)
	var admin api.AuthResponse
	r := c.do(post("/api/v1/auth/login", "", api.Credentials{Email: cnAdminEmail, Password: cnAdminPass}), "POST /api/v1/auth/login", http.StatusOK)
	r.MustDecode(t, &admin)
	adminCookie := r.SessionCookie()
	c.secret(admin.Token, admin.Owner.ID)

	// The owner.
	var owner api.AuthResponse
	c.do(post("/api/v1/auth/signup", "", api.Credentials{Email: cnOwnerEmail, Password: cnOwnerPass}), "POST /api/v1/auth/signup", http.StatusCreated).MustDecode(t, &owner)
	c.secret(owner.Token, owner.Owner.ID)
	var login api.AuthResponse
	r = c.do(post("/api/v1/auth/login", "", api.Credentials{Email: cnOwnerEmail, Password: cnOwnerPass}), "POST /api/v1/auth/login", http.StatusOK)
	r.MustDecode(t, &login)
	ownerCookie := r.SessionCookie()
	c.secret(login.Token)
	if ownerCookie == nil || adminCookie == nil {
		t.Fatal("login set no session cookie")
	}
	c.do(get("/api/v1/me", owner.Token), "GET /api/v1/me", http.StatusOK)
	c.do(put("/api/v1/me/plan", owner.Token, api.PlanChange{Plan: "pro"}), "PUT /api/v1/me/plan", http.StatusOK)
	c.do(get("/api/v1/me/export", owner.Token), "GET /api/v1/me/export", http.StatusOK)

	// Infrastructure: a pool granted by "pro", a throwaway plan, a node.
	var pool api.Pool
	c.do(post("/api/v1/admin/pools", admin.Token, api.PoolInput{Name: "Canary pool", Region: "eu", Country: "DE", City: "Berlin"}),
		"POST /api/v1/admin/pools", http.StatusCreated).MustDecode(t, &pool)
	c.do(get("/api/v1/admin/pools", admin.Token), "GET /api/v1/admin/pools", http.StatusOK)
	var plans api.PlanList
	c.do(get("/api/v1/admin/plans", admin.Token), "GET /api/v1/admin/plans", http.StatusOK).MustDecode(t, &plans)
	var pro api.Plan
	for _, p := range plans.Plans {
		if p.Slug == "pro" {
			pro = p
		}
	}
	c.secret(pro.ID)
	c.do(put("/api/v1/admin/plans/"+pro.ID, admin.Token, api.PlanInput{Slug: pro.Slug, Name: pro.Name, MaxApps: pro.MaxApps, MaxDevices: pro.MaxDevices,
		MaxOwnNodes: pro.MaxOwnNodes, PriceCents: pro.PriceCents, Currency: pro.Currency, Pools: append(pro.Pools, pool.ID)}),
		"PUT /api/v1/admin/plans/:plan_id", http.StatusOK)
	var spare api.Plan
	c.do(post("/api/v1/admin/plans", admin.Token, api.PlanInput{Slug: "canary-spare", Name: "Spare", MaxApps: 1, MaxDevices: 1, Currency: "EUR"}),
		"POST /api/v1/admin/plans", http.StatusCreated).MustDecode(t, &spare)
	c.secret(spare.ID)
	var et api.EnrollmentToken
	c.do(post("/api/v1/admin/pools/"+pool.ID+"/enrollment-tokens", admin.Token, nil),
		"POST /api/v1/admin/pools/:pool_id/enrollment-tokens", http.StatusCreated).MustDecode(t, &et)
	c.secret(et.Token)
	var node api.EnrollResponse
	c.do(post("/agent/v1/enroll", "", api.EnrollRequest{Token: et.Token, Name: "canary node", PublicKey: nodeKey, Endpoint: cnNodeEP}),
		"POST /agent/v1/enroll", http.StatusCreated).MustDecode(t, &node)
	c.secret(node.NodeID, node.Credential)
	var nt api.NodeToken
	c.do(post("/agent/v1/token", node.Credential, nil), "POST /agent/v1/token", http.StatusOK).MustDecode(t, &nt)
	c.secret(nt.Token)
	var first api.PeersResponse
	c.do(get("/agent/v1/peers?since=0", nt.Token), "GET /agent/v1/peers", http.StatusOK).MustDecode(t, &first)

	// Apps and keys.
	var app api.App
	c.do(post("/api/v1/apps", owner.Token, api.AppInput{Name: "Canary app"}), "POST /api/v1/apps", http.StatusCreated).MustDecode(t, &app)
	c.secret(app.ID)
	c.do(get("/api/v1/apps", owner.Token), "GET /api/v1/apps", http.StatusOK)
	c.do(get("/api/v1/apps/"+app.ID, owner.Token), "GET /api/v1/apps/:app_id", http.StatusOK)
	c.do(put("/api/v1/apps/"+app.ID, owner.Token, api.AppInput{Name: "Canary app 2"}), "PUT /api/v1/apps/:app_id", http.StatusOK)
	var key, spareKey api.APIKeyCreated
	c.do(post("/api/v1/apps/"+app.ID+"/keys", owner.Token, api.APIKeyInput{Name: "main"}), "POST /api/v1/apps/:app_id/keys", http.StatusCreated).MustDecode(t, &key)
	c.do(post("/api/v1/apps/"+app.ID+"/keys", owner.Token, api.APIKeyInput{Name: "spare"}), "POST /api/v1/apps/:app_id/keys", http.StatusCreated).MustDecode(t, &spareKey)
	c.secret(key.Key, key.ID, key.Prefix, spareKey.Key, spareKey.ID, hashAPIKey(key.Key))
	c.do(get("/api/v1/apps/"+app.ID+"/keys", owner.Token), "GET /api/v1/apps/:app_id/keys", http.StatusOK)
	c.do(del("/api/v1/apps/"+app.ID+"/keys/"+spareKey.ID, owner.Token), "DELETE /api/v1/apps/:app_id/keys/:key_id", http.StatusNoContent)

	// Provisioning.
	c.do(get("/api/v1/servers", key.Key), "GET /api/v1/servers", http.StatusOK)
	ref := cnExternalRef
	var dev api.DeviceCreated
	c.do(post("/api/v1/devices", key.Key, api.DeviceInput{PublicKey: devKey1, ExternalRef: &ref}), "POST /api/v1/devices", http.StatusCreated).MustDecode(t, &dev)
	c.secret(dev.ID, dev.IPv4, dev.IPv6)
	c.do(get("/api/v1/devices", key.Key), "GET /api/v1/devices", http.StatusOK)
	c.do(get("/api/v1/devices/"+dev.ID, key.Key), "GET /api/v1/devices/:device_id", http.StatusOK)
	conf := c.do(get("/api/v1/devices/"+dev.ID+"/config?server="+node.NodeID, key.Key), "GET /api/v1/devices/:device_id/config", http.StatusOK)
	if !bytes.Contains(conf.Body, []byte(cnNodeEP)) || !bytes.Contains(conf.Body, []byte(dev.IPv4)) {
		t.Errorf("config lacks the node's endpoint or the device's address:\n%s", conf.Body)
	}
	c.do(get("/api/v1/devices/"+dev.ID+"/config?server="+node.NodeID+"&format=qr", key.Key), "GET /api/v1/devices/:device_id/config", http.StatusOK)
	var rot api.DeviceCreated
	c.do(post("/api/v1/devices/"+dev.ID+"/rotate", key.Key, api.RotateInput{PublicKey: devKey2}), "POST /api/v1/devices/:device_id/rotate", http.StatusOK).MustDecode(t, &rot)
	c.secret(rot.IPv4, rot.IPv6, rot.DeviceToken)

	// The credentials that ship inside an app: a publishable key, a key
	// replaced with a grace period, a ticket bound to a reference, the
	// device token it yields and a reset of it. None may reach the log,
	// the metrics or, as itself, the database.
	var pub api.APIKeyCreated
	c.do(post("/api/v1/apps/"+app.ID+"/keys", owner.Token, api.APIKeyInput{Name: "shipped", Kind: api.KeyPublishable}),
		"POST /api/v1/apps/:app_id/keys", http.StatusCreated).MustDecode(t, &pub)
	var pub2 api.KeyReplaced
	c.do(post("/api/v1/apps/"+app.ID+"/keys/"+pub.ID+"/replace", owner.Token, api.KeyReplaceInput{Name: "shipped 2", GraceUntil: h.clock.Now().Add(time.Hour)}),
		"POST /api/v1/apps/:app_id/keys/:key_id/replace", http.StatusCreated).MustDecode(t, &pub2)
	c.secret(pub.Key, pub.ID, pub2.Key, pub2.ID)
	c.do(get("/api/v1/app", pub.Key), "GET /api/v1/app", http.StatusOK)
	c.do(get("/api/v1/devices", pub2.Key), "GET /api/v1/devices", http.StatusForbidden)
	ticketRef := cnExternalRef + "-ticket"
	var tk api.RegistrationTicket
	c.do(post("/api/v1/registration-tickets", key.Key, api.TicketInput{ExternalRef: &ticketRef}),
		"POST /api/v1/registration-tickets", http.StatusCreated).MustDecode(t, &tk)
	c.secret(tk.Ticket, hashAPIKey(tk.Ticket))
	var tdev api.DeviceCreated
	c.do(post("/api/v1/devices", tk.Ticket, api.DeviceInput{PublicKey: devKey3}), "POST /api/v1/devices", http.StatusCreated).MustDecode(t, &tdev)
	c.secret(tdev.ID, tdev.IPv4, tdev.IPv6, tdev.DeviceToken, hashAPIKey(tdev.DeviceToken))
	if tdev.ExternalRef == nil || *tdev.ExternalRef != ticketRef {
		t.Errorf("device registered with a bound ticket has external_ref %v, want %q", tdev.ExternalRef, ticketRef)
	}
	c.do(post("/api/v1/devices", tk.Ticket, api.DeviceInput{PublicKey: cnKey("ticket again")}), "POST /api/v1/devices", http.StatusUnauthorized)
	c.do(get("/api/v1/devices/"+tdev.ID, tdev.DeviceToken), "GET /api/v1/devices/:device_id", http.StatusOK)
	c.do(get("/api/v1/devices/"+tdev.ID+"/config?server="+node.NodeID, tdev.DeviceToken), "GET /api/v1/devices/:device_id/config", http.StatusOK)
	c.do(get("/api/v1/devices/"+rot.ID, tdev.DeviceToken), "GET /api/v1/devices/:device_id", http.StatusNotFound)
	var reset api.DeviceToken
	c.do(post("/api/v1/devices/"+tdev.ID+"/token", key.Key, nil), "POST /api/v1/devices/:device_id/token", http.StatusOK).MustDecode(t, &reset)
	c.secret(reset.DeviceToken, hashAPIKey(reset.DeviceToken))
	c.do(del("/api/v1/devices/"+tdev.ID, tdev.DeviceToken), "DELETE /api/v1/devices/:device_id", http.StatusUnauthorized)
	c.do(del("/api/v1/devices/"+tdev.ID, reset.DeviceToken), "DELETE /api/v1/devices/:device_id", http.StatusNoContent)

	// The node: a delta, a binary snapshot, a status report.
	var delta api.PeersResponse
	c.do(get(fmt.Sprintf("/agent/v1/peers?since=%d", first.Revision), nt.Token), "GET /agent/v1/peers", http.StatusOK).MustDecode(t, &delta)
	if got := keysOf(delta.Upserts); len(got) != 1 || got[0] != devKey2 {
		t.Errorf("delta upserts %v, want %s", keysOf(delta.Upserts), devKey2)
	}
	bin := c.do(request{Method: http.MethodGet, Path: "/agent/v1/peers?since=0", Token: nt.Token, Header: map[string]string{"Accept": api.SnapshotMediaType}},
		"GET /agent/v1/peers", http.StatusOK)
	if ct := bin.Header.Get("Content-Type"); ct != api.SnapshotMediaType {
		t.Errorf("binary snapshot Content-Type = %q", ct)
	}
	var ph api.PeerSetHash
	ph.Toggle(api.DevicePeer(rot.PublicKey, rot.IPv4, rot.IPv6))
	c.do(post("/agent/v1/status", nt.Token, api.NodeStatus{AppliedRevision: delta.Revision, PeerSetHash: ph.String(), PeerCount: 1, InterfaceUp: true, Version: "canary"}),
		"POST /agent/v1/status", http.StatusOK)

	// A dedicated pool of the owner's own, with its own node.
	c.do(get("/api/v1/pools", login.Token), "GET /api/v1/pools", http.StatusOK)
	var home api.Pool
	c.do(post("/api/v1/pools", login.Token, api.PoolInput{Name: "Canary home", Region: "home", Country: "NL", City: "Delft"}),
		"POST /api/v1/pools", http.StatusCreated).MustDecode(t, &home)
	c.secret(home.ID)
	var homeToken api.EnrollmentToken
	c.do(post("/api/v1/pools/"+home.ID+"/enrollment-tokens", login.Token, nil), "POST /api/v1/pools/:pool_id/enrollment-tokens", http.StatusCreated).MustDecode(t, &homeToken)
	c.secret(homeToken.Token)
	var homeNode api.EnrollResponse
	c.do(post("/agent/v1/enroll", "", api.EnrollRequest{Token: homeToken.Token, Name: "canary home node", PublicKey: homeNodeKey, Endpoint: cnHomeEP}),
		"POST /agent/v1/enroll", http.StatusCreated).MustDecode(t, &homeNode)
	c.secret(homeNode.NodeID, homeNode.Credential)
	c.do(get("/api/v1/nodes", login.Token), "GET /api/v1/nodes", http.StatusOK)
	c.do(del("/api/v1/nodes/"+homeNode.NodeID, login.Token), "DELETE /api/v1/nodes/:node_id", http.StatusNoContent)
	c.do(del("/api/v1/pools/"+home.ID, login.Token), "DELETE /api/v1/pools/:pool_id", http.StatusNoContent)

	// (c), the control: while the device exists its key and addresses are
	// in the database or its WAL, so the byte search below can find them.
	files := mustFiles(t, h.dbPath)
	all := bytes.Join([][]byte{files[h.dbPath], files[h.dbPath+"-wal"]}, nil)
	for _, v := range []string{devKey2, rot.IPv4, cnExternalRef, cnOwnerEmail} {
		if !bytes.Contains(all, []byte(v)) {
			t.Errorf("control: the database and WAL do not hold %q; the byte search cannot be trusted", v)
		}
	}
	mustNotHold(t, files, "with the device registered", cnClient...)
	// Credentials are stored as hashes only.
	mustNotHold(t, files, "with app credentials issued", pub.Key, pub2.Key, key.Key, tk.Ticket, tdev.DeviceToken, reset.DeviceToken, rot.DeviceToken)

	// Operator reads and updates.
	c.do(get("/api/v1/admin/nodes", admin.Token), "GET /api/v1/admin/nodes", http.StatusOK)
	c.do(put("/api/v1/admin/nodes/"+node.NodeID, admin.Token, map[string]bool{"enabled": true}), "PUT /api/v1/admin/nodes/:node_id", http.StatusOK)
	c.do(get("/api/v1/admin/owners", admin.Token), "GET /api/v1/admin/owners", http.StatusOK)
	c.do(put("/api/v1/admin/owners/"+owner.Owner.ID, admin.Token, map[string]string{"status": "active"}), "PUT /api/v1/admin/owners/:owner_id", http.StatusOK)

	// Every other registered route (the dashboard's pages, and any route
	// added later) is called too, signed in where it needs it, with the
	// path's parameters filled with the flow's real IDs.
	tail := map[string]bool{
		"DELETE /api/v1/devices/:device_id": true, "DELETE /api/v1/apps/:app_id": true, "POST /api/v1/auth/logout": true,
		"DELETE /api/v1/me": true, "DELETE /api/v1/admin/owners/:owner_id": true, "DELETE /api/v1/admin/nodes/:node_id": true,
		"DELETE /api/v1/admin/plans/:plan_id": true, "DELETE /api/v1/admin/pools/:pool_id": true, "GET /metrics": true,
	}
	params := map[string]string{"app_id": app.ID, "key_id": key.ID, "device_id": dev.ID, "node_id": node.NodeID,
		"owner_id": owner.Owner.ID, "plan_id": pro.ID, "pool_id": pool.ID}
	var swept []string
	for _, rt := range registeredRoutes(h) {
		if c.called[rt] || tail[rt] {
			continue
		}
		method, pattern, _ := strings.Cut(rt, " ")
		path := fillRoute(pattern, params)
		// The credentials to try, in order, until one is not refused as
		// unauthenticated.
		var creds []request
		switch {
		case strings.HasPrefix(path, "/api/v1/admin/"):
			creds = []request{{Token: admin.Token}}
		case strings.HasPrefix(path, "/agent/"):
			creds = []request{{Token: nt.Token}, {Token: node.Credential}}
		case strings.HasPrefix(path, "/api/"):
			creds = []request{{Token: login.Token}, {Token: key.Key}}
		case strings.HasPrefix(path, "/admin"):
			creds = []request{{Cookie: adminCookie}}
		default:
			creds = []request{{Cookie: ownerCookie}}
		}
		for _, cred := range creds {
			q := request{Method: method, Path: path, Token: cred.Token, Cookie: cred.Cookie}
			if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
				if strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/agent/") {
					q.Body = "{}"
				} else {
					q.Body, q.ContentType = "", "application/x-www-form-urlencoded"
				}
			}
			r := c.do(q, rt, 0)
			swept = append(swept, fmt.Sprintf("%s=%d", rt, r.Status))
			if r.Status != http.StatusUnauthorized {
				break
			}
		}
	}
	t.Logf("called by the sweep: %v", swept)

	// The destructive tail: a device, an app, another owner (by the
	// operator), the node, the spare plan, a logout, and the owner's own
	// account.
	c.do(del("/api/v1/devices/"+dev.ID, key.Key), "DELETE /api/v1/devices/:device_id", http.StatusNoContent)
	var relogin api.AuthResponse
	c.do(post("/api/v1/auth/login", "", api.Credentials{Email: cnOwnerEmail, Password: cnOwnerPass}), "POST /api/v1/auth/login", http.StatusOK).MustDecode(t, &relogin)
	c.secret(relogin.Token)
	c.do(del("/api/v1/apps/"+app.ID, relogin.Token), "DELETE /api/v1/apps/:app_id", http.StatusNoContent)
	var owner2 api.AuthResponse
	c.do(post("/api/v1/auth/signup", "", api.Credentials{Email: cnOwner2Email, Password: cnOwner2Pass}), "POST /api/v1/auth/signup", http.StatusCreated).MustDecode(t, &owner2)
	c.secret(owner2.Token, owner2.Owner.ID)
	c.do(del("/api/v1/admin/owners/"+owner2.Owner.ID, admin.Token), "DELETE /api/v1/admin/owners/:owner_id", http.StatusNoContent)
	c.do(del("/api/v1/admin/nodes/"+node.NodeID, admin.Token), "DELETE /api/v1/admin/nodes/:node_id", http.StatusNoContent)
	c.do(del("/api/v1/admin/plans/"+spare.ID, admin.Token), "DELETE /api/v1/admin/plans/:plan_id", http.StatusNoContent)
	c.do(del("/api/v1/admin/pools/"+pool.ID, admin.Token), "DELETE /api/v1/admin/pools/:pool_id", http.StatusNoContent)
	c.do(post("/api/v1/auth/logout", relogin.Token, nil), "POST /api/v1/auth/logout", http.StatusNoContent)
	var last api.AuthResponse
	c.do(post("/api/v1/auth/login", "", api.Credentials{Email: cnOwnerEmail, Password: cnOwnerPass}), "POST /api/v1/auth/login", http.StatusOK).MustDecode(t, &last)
	c.secret(last.Token)
	c.do(del("/api/v1/me", last.Token), "DELETE /api/v1/me", http.StatusNoContent)
	metrics := c.do(get("/metrics", ""), "GET /metrics", http.StatusOK)

	// Every registered route was called.
	for _, rt := range registeredRoutes(h) {
		if !c.called[rt] {
			t.Errorf("route %s was not called by the canary flow", rt)
		}
	}
	for p := range c.paths {
		c.secret(p)
	}

	// (a) The log and (b) /metrics hold none of the canaries.
	logs := strings.ToLower(h.logs.String())
	body := strings.ToLower(string(metrics.Body))
	for _, cn := range c.secrets {
		if strings.Contains(logs, strings.ToLower(cn)) {
			t.Errorf("the log holds %q", cn)
		}
		if strings.Contains(body, strings.ToLower(cn)) {
			t.Errorf("/metrics holds %q", cn)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", h.logs.String())
	}

	// (c) The database file and its WAL never held the client's address or
	// user agent, nor any secret in the clear; after a checkpoint they no
	// longer hold the deleted device's keys and addresses or the deleted
	// accounts' emails.
	never := append(append([]string(nil), cnClient...), cnOwnerPass, cnOwner2Pass, cnAdminPass, cnBadSetup, h.SetupToken(),
		key.Key, spareKey.Key, node.Credential, homeNode.Credential, et.Token, homeToken.Token, nt.Token, admin.Token, owner.Token, login.Token, relogin.Token, last.Token, owner2.Token)
	mustNotHold(t, mustFiles(t, h.dbPath), "before the checkpoint", never...)
	mustCheckpoint(t, h)
	files = mustFiles(t, h.dbPath)
	if n := len(files[h.dbPath+"-wal"]); n != 0 {
		t.Errorf("the WAL holds %d bytes after a truncating checkpoint", n)
	}
	mustNotHold(t, files, "after the checkpoint", never...)
	mustNotHold(t, files, "after the deletions and the checkpoint", devKey1, devKey2, dev.IPv4, dev.IPv6, rot.IPv4, rot.IPv6,
		cnExternalRef, cnOwnerEmail, cnOwner2Email, hashAPIKey(key.Key), devKey3, tdev.IPv4, hashAPIKey(reset.DeviceToken), hashAPIKey(pub.Key))
	if !bytes.Contains(files[h.dbPath], []byte(cnAdminEmail)) {
		t.Error("control: the operator's email, which is still stored, is not found in the database file")
	}
	t.Logf("%d requests over %d routes", c.responses, len(c.called))
}

// registeredRoutes lists "METHOD /pattern" for every route a request can
// reach.
func registeredRoutes(h *harness) []string {
	var out []string
	for _, r := range h.srv.Routes() {
		if strings.HasPrefix(r, echo.RouteNotFound+" ") {
			continue
		}
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// fillRoute replaces a route pattern's parameters with values.
func fillRoute(pattern string, params map[string]string) string {
	parts := strings.Split(pattern, "/")
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, ":"):
			v, ok := params[p[1:]]
			if !ok {
				v = "canary-param-" + p[1:]
			}
			parts[i] = v
		case p == "*":
			parts[i] = "style.css"
		}
	}
	return strings.Join(parts, "/")
}
