package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
	"github.com/traceless-vpn/traceless/store"
)

const (
	opEmail    = "op@example.com"
	opPassword = "operator password 1"
	password   = "correct horse battery"
)

// newServer starts the real control plane on a fresh SQLite database with
// an operator account, and returns its URL. Each opt may change the
// server's options.
func newServer(t *testing.T, opts ...func(*controlplane.Options)) string {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	o := controlplane.Options{Store: st, Argon2: controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1}}
	for _, opt := range opts {
		opt(&o)
	}
	srv, err := controlplane.New(o)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	if _, err := srv.Bootstrap(ctx, opEmail, opPassword, hs.URL); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	return hs.URL
}

func mustNew(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, opts...)
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	return c
}

// randomKey is a WireGuard-shaped public key: 32 random bytes in base64.
func randomKey(t *testing.T) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// wantCode fails unless err is an *client.Error with the status and code.
func wantCode(t *testing.T, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %d %s", status, code)
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *client.Error", err, err)
	}
	if ce.Status != status || ce.Code != code || !client.IsCode(err, code) {
		t.Fatalf("got %d %q (%v), want %d %q", ce.Status, ce.Code, err, status, code)
	}
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code || ae.Status != status {
		t.Fatalf("errors.As *api.Error: got %+v", ae)
	}
}

// wantKeyRegistered fails unless err is the 409 conflict for a public key
// that a device already has, saying so.
func wantKeyRegistered(t *testing.T, err error) {
	t.Helper()
	wantCode(t, err, http.StatusConflict, api.CodeConflict)
	var ce *client.Error
	if errors.As(err, &ce); ce.Message != "this public key is already registered" {
		t.Fatalf("conflict message %q does not say the key is already registered", ce.Message)
	}
}

// hasLine reports whether text has line as one of its lines.
func hasLine(text, line string) bool {
	for l := range strings.Lines(text) {
		if strings.TrimRight(l, "\n") == line {
			return true
		}
	}
	return false
}

// owner signs up a fresh owner and returns a client holding its session.
func owner(t *testing.T, url, email string) *client.Client {
	t.Helper()
	c := mustNew(t, url)
	if _, err := c.Signup(context.Background(), email, password); err != nil {
		t.Fatalf("signup %s: %v", email, err)
	}
	return c
}

func TestOwnerAndProvisioning(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)

	h, err := mustNew(t, url).Health(ctx)
	if err != nil || h.Status != "ok" {
		t.Fatalf("health: %+v, %v", h, err)
	}
	pm, err := mustNew(t, url).Privacy(ctx)
	if err != nil || len(pm.Tables) == 0 {
		t.Fatalf("privacy: %d tables, %v", len(pm.Tables), err)
	}

	c := mustNew(t, url)
	res, err := c.Signup(ctx, "Alice@Example.com", password)
	if err != nil {
		t.Fatalf("signup: %v", err)
	}
	if res.Token == "" || c.Token() != res.Token || res.Owner.Email != "alice@example.com" || res.Owner.Role != "owner" {
		t.Fatalf("signup: %+v", res)
	}

	// A second client logs in and keeps the token.
	c = mustNew(t, url)
	if _, err := c.Login(ctx, "alice@example.com", password); err != nil {
		t.Fatalf("login: %v", err)
	}
	if c.Token() == "" {
		t.Fatal("login did not keep the token")
	}
	me, err := c.Me(ctx)
	if err != nil || me.Email != "alice@example.com" || me.Plan != "free" || me.Status != "active" {
		t.Fatalf("me: %+v, %v", me, err)
	}

	plans, err := c.Plans(ctx)
	if err != nil || len(plans) < 2 {
		t.Fatalf("plans: %+v, %v", plans, err)
	}
	me, err = c.ChangePlan(ctx, "pro")
	if err != nil || me.Plan != "pro" {
		t.Fatalf("change plan: %+v, %v", me, err)
	}
	_, err = c.ChangePlan(ctx, "no-such-plan")
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	app, err := c.CreateApp(ctx, "my app")
	if err != nil || app.ID == "" || app.Name != "my app" {
		t.Fatalf("create app: %+v, %v", app, err)
	}
	app, err = c.RenameApp(ctx, app.ID, "renamed")
	if err != nil || app.Name != "renamed" {
		t.Fatalf("rename app: %+v, %v", app, err)
	}
	apps, err := c.Apps(ctx)
	if err != nil || len(apps) != 1 || apps[0].ID != app.ID || apps[0].Name != "renamed" {
		t.Fatalf("apps: %+v, %v", apps, err)
	}

	key, err := c.CreateAPIKey(ctx, app.ID, "backend")
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	if !strings.HasPrefix(key.Key, "tlk_") || !strings.HasPrefix(key.Key, key.Prefix) || len(key.Prefix) >= len(key.Key) {
		t.Fatalf("key: prefix %q, key of %d bytes", key.Prefix, len(key.Key))
	}
	keys, err := c.APIKeys(ctx, app.ID)
	if err != nil || len(keys) != 1 || keys[0].ID != key.ID || keys[0].Prefix != key.Prefix {
		t.Fatalf("keys: %+v, %v", keys, err)
	}

	p := mustNew(t, url, client.WithAPIKey(key.Key))
	servers, err := p.Servers(ctx)
	if err != nil || len(servers) != 0 {
		t.Fatalf("servers before any node: %+v, %v", servers, err)
	}

	pub := randomKey(t)
	ref := "user-42"
	d, err := p.RegisterDevice(ctx, api.DeviceInput{PublicKey: pub, ExternalRef: &ref})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if d.ID == "" || d.PublicKey != pub || d.IPv4 == "" || d.IPv6 == "" || d.ExternalRef == nil || *d.ExternalRef != ref {
		t.Fatalf("register: %+v", d)
	}
	_, err = p.RegisterDevice(ctx, api.DeviceInput{PublicKey: pub})
	wantKeyRegistered(t, err)
	_, err = p.RegisterDevice(ctx, api.DeviceInput{PublicKey: "not a key"})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	app, err = c.App(ctx, app.ID)
	if err != nil || app.DeviceCount != 1 {
		t.Fatalf("app: %+v, %v", app, err)
	}

	for range 4 {
		if _, err := p.RegisterDevice(ctx, api.DeviceInput{PublicKey: randomKey(t)}); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	page, err := p.Devices(ctx, client.ListOptions{Limit: 2})
	if err != nil || len(page.Devices) != 2 || page.NextCursor == "" {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	page2, err := p.Devices(ctx, client.ListOptions{Limit: 2, Cursor: page.NextCursor})
	if err != nil || len(page2.Devices) != 2 || page2.Devices[0].ID == page.Devices[0].ID {
		t.Fatalf("second page: %+v, %v", page2, err)
	}
	_, err = p.Devices(ctx, client.ListOptions{Cursor: "bogus"})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	seen := map[string]bool{}
	for dev, err := range p.AllDevices(ctx, 2) {
		if err != nil {
			t.Fatalf("all devices: %v", err)
		}
		if seen[dev.ID] {
			t.Fatalf("device %s seen twice", dev.ID)
		}
		seen[dev.ID] = true
	}
	if len(seen) != 5 || !seen[d.ID] {
		t.Fatalf("iterator saw %d devices, want 5", len(seen))
	}
	n := 0
	for range p.AllDevices(ctx, 2) {
		n++
		if n == 3 {
			break // stopping early must not panic
		}
	}

	got, err := p.Device(ctx, d.ID)
	if err != nil || got.ID != d.ID || got.PublicKey != pub {
		t.Fatalf("get device: %+v, %v", got, err)
	}

	other, err := p.RegisterDevice(ctx, api.DeviceInput{PublicKey: randomKey(t)})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	_, err = p.RotateDevice(ctx, d.ID, other.PublicKey)
	wantKeyRegistered(t, err)

	newPub := randomKey(t)
	rot, err := p.RotateDevice(ctx, d.ID, newPub)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if rot.ID != d.ID || rot.PublicKey != newPub || rot.IPv4 == d.IPv4 || rot.IPv6 == d.IPv6 {
		t.Fatalf("rotate: %+v (was %+v)", rot.Device, d.Device)
	}

	t.Run("config", func(t *testing.T) {
		// A dedicated pool of the owner (the pro plan allows own nodes)
		// with a node enrolled through the agent API, as traceless-agent
		// does: the device's config then has that node as its peer.
		pool, err := c.CreatePool(ctx, api.PoolInput{Name: "home", Region: "eu-central", Country: "DE", City: "Berlin"})
		if err != nil {
			t.Fatalf("create pool: %v", err)
		}
		tok, err := c.CreateEnrollmentToken(ctx, pool.ID)
		if err != nil {
			t.Fatalf("enrollment token: %v", err)
		}
		nodePub := randomKey(t)
		var node api.EnrollResponse
		agentCall(t, url, "/agent/v1/enroll", "", api.EnrollRequest{Token: tok.Token, Name: "home-1", PublicKey: nodePub,
			Endpoint: "192.0.2.10:51820"}, &node)

		servers, err := p.Servers(ctx)
		if err != nil || len(servers) != 1 || servers[0].ID != node.NodeID || servers[0].PublicKey != nodePub ||
			servers[0].Endpoint != "192.0.2.10:51820" {
			t.Fatalf("servers after enrolling %s: %+v, %v", node.NodeID, servers, err)
		}
		conf, err := p.DeviceConfig(ctx, d.ID, node.NodeID)
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		iface, peer, found := strings.Cut(conf, "[Peer]\n")
		if !found || !strings.Contains(iface, "[Interface]\n") {
			t.Fatalf("config has no [Interface] then [Peer]:\n%s", conf)
		}
		for _, line := range []string{
			"PrivateKey = <device private key: generated and kept on the device>",
			"Address = " + rot.IPv4 + "/32, " + rot.IPv6 + "/128",
		} {
			if !hasLine(iface, line) {
				t.Errorf("[Interface] lacks %q:\n%s", line, conf)
			}
		}
		for _, line := range []string{
			"PublicKey = " + nodePub,
			"Endpoint = 192.0.2.10:51820",
			"AllowedIPs = 0.0.0.0/0, ::/0",
		} {
			if !hasLine(peer, line) {
				t.Errorf("[Peer] lacks %q:\n%s", line, conf)
			}
		}
		if strings.Contains(conf, pub) {
			t.Errorf("config names the device's old key:\n%s", conf)
		}
		png, err := p.DeviceConfigQR(ctx, d.ID, node.NodeID)
		if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("qr: %d bytes, %v", len(png), err)
		}
	})
	_, err = p.DeviceConfig(ctx, d.ID, "00000000-0000-0000-0000-000000000000")
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	if err := p.DeleteDevice(ctx, d.ID); err != nil {
		t.Fatalf("delete device: %v", err)
	}
	_, err = p.Device(ctx, d.ID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)
	if !client.IsNotFound(err) {
		t.Fatal("IsNotFound is false")
	}
	err = p.DeleteDevice(ctx, d.ID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)

	// An owner token is no API key, and an API key is no owner token.
	_, err = mustNew(t, url, client.WithAPIKey(c.Token())).Servers(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	_, err = mustNew(t, url, client.WithToken(key.Key)).Me(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	if strings.Contains(err.Error(), key.Key) || strings.Contains(err.Error(), key.Key[4:]) {
		t.Fatalf("error names the key: %v", err)
	}

	if err := c.DeleteAPIKey(ctx, app.ID, key.ID); err != nil {
		t.Fatalf("revoke key: %v", err)
	}
	_, err = p.Devices(ctx, client.ListOptions{})
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)

	if err := c.DeleteApp(ctx, app.ID); err != nil {
		t.Fatalf("delete app: %v", err)
	}
	_, err = c.App(ctx, app.ID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)

	tok := c.Token()
	if err := c.Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if c.Token() != "" {
		t.Fatal("logout kept the token")
	}
	_, err = mustNew(t, url, client.WithToken(tok)).Me(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
}

func TestAdmin(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)

	op := mustNew(t, url)
	res, err := op.Login(ctx, opEmail, opPassword)
	if err != nil || res.Owner.Role != "admin" {
		t.Fatalf("operator login: %+v, %v", res.Owner, err)
	}

	plan, err := op.CreatePlan(ctx, api.PlanInput{Slug: "team", Name: "Team", MaxApps: 3, MaxDevices: 100, PriceCents: 900, Currency: "EUR"})
	if err != nil || plan.ID == "" || plan.Slug != "team" {
		t.Fatalf("create plan: %+v, %v", plan, err)
	}
	_, err = op.CreatePlan(ctx, api.PlanInput{Slug: "team", Name: "Team again", Currency: "EUR"})
	wantCode(t, err, http.StatusConflict, api.CodeConflict)
	_, err = op.CreatePlan(ctx, api.PlanInput{Slug: "Bad Slug", Name: "x", Currency: "EUR"})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Field != "slug" {
		t.Fatalf("field: %+v", ce)
	}

	plan, err = op.UpdatePlan(ctx, plan.ID, api.PlanInput{Slug: "team", Name: "Team", MaxApps: 4, MaxDevices: 100, PriceCents: 900, Currency: "EUR", Retired: true})
	if err != nil || plan.MaxApps != 4 || !plan.Retired {
		t.Fatalf("update plan: %+v, %v", plan, err)
	}
	all, err := op.AdminPlans(ctx)
	if err != nil || !containsPlan(all, "team") {
		t.Fatalf("admin plans lack the retired plan: %+v, %v", all, err)
	}
	public, err := op.Plans(ctx)
	if err != nil || containsPlan(public, "team") {
		t.Fatalf("public plans show the retired plan: %+v, %v", public, err)
	}
	if err := op.DeletePlan(ctx, plan.ID); err != nil {
		t.Fatalf("delete plan: %v", err)
	}
	err = op.DeletePlan(ctx, plan.ID)
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)

	var bob *client.Client
	for _, e := range []string{"bob@example.com", "carol@example.com", "dave@example.com"} {
		c := owner(t, url, e)
		if bob == nil {
			bob = c
		}
	}

	// An owner is not an operator.
	_, err = bob.AdminPlans(ctx)
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)
	_, err = bob.AdminOwners(ctx, client.ListOptions{})
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)

	page, err := op.AdminOwners(ctx, client.ListOptions{Limit: 2})
	if err != nil || len(page.Owners) != 2 || page.NextCursor == "" {
		t.Fatalf("owners page: %+v, %v", page, err)
	}
	emails := map[string]string{}
	for o, err := range op.AllOwners(ctx, 2) {
		if err != nil {
			t.Fatalf("all owners: %v", err)
		}
		emails[o.Email] = o.ID
	}
	if len(emails) != 4 || emails["bob@example.com"] == "" || emails[opEmail] == "" {
		t.Fatalf("owners: %v", emails)
	}
	_, err = op.AdminOwners(ctx, client.ListOptions{Limit: 501})
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)

	bobID := emails["bob@example.com"]
	o, err := op.UpdateOwner(ctx, bobID, api.OwnerUpdate{LegalHold: client.SetLegalHold("case 7")})
	if err != nil || o.LegalHold == nil || *o.LegalHold != "case 7" {
		t.Fatalf("set hold: %+v, %v", o, err)
	}
	plan2 := "pro"
	o, err = op.UpdateOwner(ctx, bobID, api.OwnerUpdate{Plan: &plan2})
	if err != nil || o.Plan != "pro" || o.LegalHold == nil {
		t.Fatalf("plan change kept the hold? %+v, %v", o, err)
	}
	o, err = op.UpdateOwner(ctx, bobID, api.OwnerUpdate{LegalHold: client.ReleaseLegalHold()})
	if err != nil || o.LegalHold != nil {
		t.Fatalf("release hold: %+v, %v", o, err)
	}
	suspended := "suspended"
	if _, err := op.UpdateOwner(ctx, bobID, api.OwnerUpdate{Status: &suspended}); err != nil {
		t.Fatalf("suspend: %v", err)
	}
	_, err = bob.Me(ctx)
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)
	_, err = op.UpdateOwner(ctx, "00000000-0000-0000-0000-000000000000", api.OwnerUpdate{Status: &suspended})
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)
}

func containsPlan(plans []api.Plan, slug string) bool {
	for _, p := range plans {
		if p.Slug == slug {
			return true
		}
	}
	return false
}

func TestErrorCodes(t *testing.T) {
	ctx := context.Background()
	url := newServer(t)
	c := owner(t, url, "erin@example.com")

	_, err := mustNew(t, url).Login(ctx, "erin@example.com", "wrong password 123")
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	_, err = mustNew(t, url).Login(ctx, "nobody@example.com", "wrong password 123")
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	if client.IsRetryable(err) {
		t.Fatal("401 is retryable")
	}

	_, err = mustNew(t, url).Me(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	_, err = mustNew(t, url, client.WithToken("not-a-token")).Me(ctx)
	wantCode(t, err, http.StatusUnauthorized, api.CodeUnauthorized)
	if strings.Contains(err.Error(), "not-a-token") {
		t.Fatalf("error names the token: %v", err)
	}

	_, err = c.AdminPlans(ctx)
	wantCode(t, err, http.StatusForbidden, api.CodeForbidden)

	_, err = c.App(ctx, "00000000-0000-0000-0000-000000000000")
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)
	_, err = c.App(ctx, "../../admin/plans")
	wantCode(t, err, http.StatusNotFound, api.CodeNotFound)

	_, err = mustNew(t, url).Signup(ctx, "erin@example.com", password)
	wantCode(t, err, http.StatusConflict, api.CodeConflict)

	_, err = mustNew(t, url).Signup(ctx, "not an email", password)
	wantCode(t, err, http.StatusBadRequest, api.CodeInvalidRequest)
	var ce *client.Error
	errors.As(err, &ce)
	if ce.Field != "email" || ce.Method != http.MethodPost || ce.Path != "/api/v1/auth/signup" {
		t.Fatalf("error: %+v", ce)
	}
	if !strings.Contains(ce.Error(), "invalid_request") {
		t.Fatalf("Error(): %q", ce.Error())
	}

	// The free plan allows one app.
	if _, err := c.CreateApp(ctx, "one"); err != nil {
		t.Fatalf("create app: %v", err)
	}
	_, err = c.CreateApp(ctx, "two")
	wantCode(t, err, http.StatusForbidden, api.CodePlanLimit)
}

// fake is an httptest server answering with the statuses in order (the
// last one repeats) and counting calls.
func fake(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1))
		st := statuses[min(n, len(statuses))-1]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		if st >= 400 {
			io.WriteString(w, `{"error":{"code":"internal","message":"try later"}}`)
			return
		}
		io.WriteString(w, `{"status":"ok","plans":[{"slug":"free"}],"id":"x"}`)
	}))
	t.Cleanup(hs.Close)
	return hs, &calls
}

var fastBackoff = client.WithBackoff(time.Millisecond, 5*time.Millisecond)

func TestRetryIdempotent(t *testing.T) {
	hs, calls := fake(t, 503, 503, 200)
	c := mustNew(t, hs.URL, fastBackoff)
	plans, err := c.Plans(context.Background())
	if err != nil || len(plans) != 1 {
		t.Fatalf("plans: %+v, %v", plans, err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

func TestRetryPut(t *testing.T) {
	hs, calls := fake(t, 502, 504, 200)
	c := mustNew(t, hs.URL, fastBackoff, client.WithToken("t"))
	if _, err := c.RenameApp(context.Background(), "a", "b"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

func TestNoRetryPost(t *testing.T) {
	hs, calls := fake(t, 503, 200)
	c := mustNew(t, hs.URL, fastBackoff, client.WithAPIKey("tlk_x"))
	_, err := c.RegisterDevice(context.Background(), api.DeviceInput{PublicKey: "k"})
	wantCode(t, err, http.StatusServiceUnavailable, api.CodeInternal)
	if client.IsRetryable(err) {
		t.Fatal("a failed POST says it is retryable")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestNoRetryClientError(t *testing.T) {
	hs, calls := fake(t, 400, 200)
	c := mustNew(t, hs.URL, fastBackoff)
	if _, err := c.Plans(context.Background()); err == nil {
		t.Fatal("no error")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestRetriesBounded(t *testing.T) {
	hs, calls := fake(t, 503)
	c := mustNew(t, hs.URL, fastBackoff, client.WithRetries(2))
	_, err := c.Plans(context.Background())
	if !client.IsRetryable(err) || client.StatusOf(err) != 503 {
		t.Fatalf("err: %v", err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}

	hs, calls = fake(t, 503)
	c = mustNew(t, hs.URL, client.WithRetries(0))
	c.Plans(context.Background())
	if n := calls.Load(); n != 1 {
		t.Fatalf("WithRetries(0): %d calls, want 1", n)
	}
}

func TestRetryAfter(t *testing.T) {
	var calls atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"code":"rate_limited","message":"slow down"}}`)
			return
		}
		io.WriteString(w, `{"plans":[]}`)
	}))
	defer hs.Close()
	c := mustNew(t, hs.URL, fastBackoff)
	start := time.Now()
	if _, err := c.Plans(context.Background()); err != nil {
		t.Fatalf("plans: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("retried after %v, before Retry-After", d)
	}

	// A POST is not retried even on 429, but the error says it may be.
	calls.Store(0)
	_, err := c.CreateApp(context.Background(), "x")
	wantCode(t, err, http.StatusTooManyRequests, api.CodeRateLimited)
	var ce *client.Error
	errors.As(err, &ce)
	if !ce.Retryable() || ce.RetryAfter != time.Second || calls.Load() != 1 {
		t.Fatalf("429 on POST: retryable %v, after %v, %d calls", ce.Retryable(), ce.RetryAfter, calls.Load())
	}
}

func TestContextCancel(t *testing.T) {
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(release)

	c := mustNew(t, hs.URL)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Plans(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if client.IsRetryable(err) {
		t.Fatal("a cancelled call is retryable")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}

	// An already cancelled context sends nothing.
	if _, err := c.Plans(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}

	// Cancelling during the backoff wait ends the call.
	hs503, _ := fake(t, 503)
	c = mustNew(t, hs503.URL, client.WithBackoff(time.Hour, time.Hour))
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Plans(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(release)

	c := mustNew(t, hs.URL, client.WithTimeout(50*time.Millisecond), client.WithRetries(1), fastBackoff)
	_, err := c.Plans(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !client.IsRetryable(err) {
		t.Fatalf("err %v (retryable %v)", err, client.IsRetryable(err))
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2", n)
	}
}

func TestNetworkError(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	c := mustNew(t, url, client.WithRetries(1), fastBackoff, client.WithToken("secret-token"))
	_, err := c.Me(context.Background())
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 0 || ce.Code != "" || !ce.Retryable() {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("error names the token: %v", err)
	}
	_, err = c.CreateApp(context.Background(), "x")
	if client.IsRetryable(err) {
		t.Fatalf("POST network error is retryable: %v", err)
	}
}

func TestHeaders(t *testing.T) {
	var got http.Header
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		io.WriteString(w, `{}`)
	}))
	defer hs.Close()

	c := mustNew(t, hs.URL, client.WithToken("owner-token"), client.WithAPIKey("tlk_key"))
	c.Me(context.Background())
	if got.Get("Authorization") != "Bearer owner-token" || got.Get("User-Agent") != "traceless-go/"+client.Version {
		t.Fatalf("owner call headers: %v", got)
	}
	c.Servers(context.Background())
	if got.Get("Authorization") != "Bearer tlk_key" {
		t.Fatalf("key call headers: %v", got)
	}
	c.Plans(context.Background())
	if got.Get("Authorization") != "" {
		t.Fatalf("public call sent credentials: %v", got)
	}
	c = mustNew(t, hs.URL, client.WithUserAgent("app/1"))
	c.Plans(context.Background())
	if got.Get("User-Agent") != "app/1" {
		t.Fatalf("user agent: %q", got.Get("User-Agent"))
	}
}

func TestBaseURLPrefix(t *testing.T) {
	var path string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path = r.URL.EscapedPath()
		io.WriteString(w, `{}`)
	}))
	defer hs.Close()
	c := mustNew(t, hs.URL+"/traceless/", client.WithAPIKey("tlk_x"))
	c.Device(context.Background(), "a/b c")
	if path != "/traceless/api/v1/devices/a%2Fb%20c" {
		t.Fatalf("path %q", path)
	}
}

func TestResponseTooLarge(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"plans":[`))
		w.Write([]byte(strings.Repeat(" ", client.MaxResponseBytes)))
		w.Write([]byte(`]}`))
	}))
	defer hs.Close()
	_, err := mustNew(t, hs.URL).Plans(context.Background())
	if !errors.Is(err, client.ErrResponseTooLarge) {
		t.Fatalf("err %v", err)
	}
}

func TestNonJSONError(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>\x1b[31mbad gateway</html>")
	}))
	defer hs.Close()
	_, err := mustNew(t, hs.URL, client.WithRetries(0)).Plans(context.Background())
	wantCode(t, err, http.StatusBadGateway, api.CodeInternal)
	if strings.Contains(err.Error(), "\x1b") || strings.Contains(err.Error(), "html") {
		t.Fatalf("error repeats the body: %q", err)
	}
}

func TestDeviceConfigFormats(t *testing.T) {
	png := "\x89PNG\r\n\x1a\nrest"
	var query string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		if r.URL.Query().Get("format") == "qr" {
			w.Header().Set("Content-Type", "image/png")
			io.WriteString(w, png)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "[Interface]\nPrivateKey = <placeholder>\n")
	}))
	defer hs.Close()
	c := mustNew(t, hs.URL, client.WithAPIKey("tlk_x"))
	conf, err := c.DeviceConfig(context.Background(), "d1", "n1")
	if err != nil || !strings.HasPrefix(conf, "[Interface]") || query != "server=n1" {
		t.Fatalf("config %q, %v, query %q", conf, err, query)
	}
	b, err := c.DeviceConfigQR(context.Background(), "d1", "n1")
	if err != nil || string(b) != png || query != "format=qr&server=n1" {
		t.Fatalf("qr %q, %v, query %q", b, err, query)
	}
}

func TestNew(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "http://user:pw@host", "http://host/?q=1", "://", "http://u:pw@[::1"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("New(%q): error names the password: %v", u, err)
		}
	}
	c, err := client.New("https://vpn.example.com/")
	if err != nil || c.BaseURL() != "https://vpn.example.com" {
		t.Fatalf("New: %v, %v", c, err)
	}
}
