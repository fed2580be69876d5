package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// hookReceiver is a webhook receiver on 127.0.0.1 that records every
// delivery and can fail a number of attempts first.
type hookReceiver struct {
	tb  testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	failFor    int // answer failStatus to this many more attempts
	failStatus int
	attempts   []time.Time
	got        []hookDelivery
}

type hookDelivery struct {
	Event     api.AlertEvent
	Kind, Sig string
	Key       string // the Idempotency-Key header
	Body      []byte
}

func newHookReceiver(tb testing.TB) *hookReceiver {
	r := &hookReceiver{tb: tb, failStatus: http.StatusServiceUnavailable}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts = append(r.attempts, time.Now())
		if r.failFor > 0 {
			r.failFor--
			w.WriteHeader(r.failStatus)
			return
		}
		var ev api.AlertEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			tb.Errorf("webhook body is not an AlertEvent: %v\n%s", err, body)
		}
		r.got = append(r.got, hookDelivery{Event: ev, Kind: req.Header.Get(api.AlertEventHeader), Sig: req.Header.Get(api.AlertSignatureHeader),
			Key: req.Header.Get(api.AlertIdempotencyHeader), Body: body})
		w.WriteHeader(http.StatusNoContent)
	}))
	tb.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) URL(path string) string { return r.srv.URL + path }

func (r *hookReceiver) fail(n, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failFor, r.failStatus = n, status
}

func (r *hookReceiver) deliveries() []hookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *hookReceiver) attemptTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.attempts)
}

// waitN waits until n events arrived and returns them.
func (r *hookReceiver) waitN(n int) []hookDelivery {
	r.tb.Helper()
	waitFor(r.tb, "webhook deliveries", func() bool { return len(r.deliveries()) >= n })
	got := r.deliveries()
	if len(got) != n {
		r.tb.Fatalf("got %d deliveries, want %d: %v", len(got), n, kindsOf(got))
	}
	return got
}

// waitFor polls cond for up to 10 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func kindsOf(ds []hookDelivery) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.Event.Kind)
	}
	return out
}

// alertWorld is a sync world (a shared pool granted to pro, an owner on
// pro with an app, one node) with fast alert delivery. The watcher's own
// ticker is slowed down: tests call check after moving the clock.
type alertWorld struct {
	*syncWorld
}

func fastAlerts(o *Options) {
	o.NodeTokenTTL = 30 * 24 * time.Hour
	o.SessionTTL = 30 * 24 * time.Hour
	o.Alerts.Every = time.Hour
	o.Alerts.RetryBase = 10 * time.Millisecond
	o.Alerts.RetryMax = 80 * time.Millisecond
	o.Alerts.RetryFor = time.Minute
	o.Alerts.Timeout = 5 * time.Second
	o.Alerts.AllowPrivateTargets = true
}

func newAlertWorld(t *testing.T, mods ...func(*Options)) *alertWorld {
	t.Helper()
	return &alertWorld{syncWorld: newSyncWorld(t, append([]func(*Options){fastAlerts}, mods...)...)}
}

// putAlerts changes an owner's alert settings.
func (w *alertWorld) putAlerts(t *testing.T, token string, in api.AlertSettingsInput) api.AlertSettings {
	t.Helper()
	var out api.AlertSettings
	w.h.Do(request{Method: "PUT", Path: "/api/v1/alerts/settings", Token: token, Body: in}).MustStatus(t, http.StatusOK).MustDecode(t, &out)
	return out
}

// hook points the owner's webhook at r and returns the secret.
func (w *alertWorld) hook(t *testing.T, token string, r *hookReceiver) string {
	t.Helper()
	out := w.putAlerts(t, token, api.AlertSettingsInput{WebhookURL: new(r.URL("/hooks/traceless"))})
	if !strings.HasPrefix(out.WebhookSecret, webhookSecretPrefix) {
		t.Fatalf("first webhook: secret %q", out.WebhookSecret)
	}
	return out.WebhookSecret
}

// healthy is the status of a node in good order that applied the current
// revision.
func (w *alertWorld) healthy() api.NodeStatus {
	return api.NodeStatus{AppliedRevision: w.h.srv.hub.current(), PeerCount: 3, InterfaceUp: true, Version: "1.2.3", Posture: api.Posture{
		ConntrackAccountingOff: true, ConntrackTimestampsOff: true, NoLogRules: true, SwapOff: true,
		NotDumpable: true, CoreSizeZero: true, NoStateOnDisk: true}}
}

// report sends a node's status as its agent would.
func (w *alertWorld) report(t *testing.T, nodeToken string, st api.NodeStatus) {
	t.Helper()
	w.h.Do(request{Method: "POST", Path: "/agent/v1/status", Token: nodeToken, Body: st}).MustStatus(t, http.StatusOK)
}

// check runs one evaluation of the watcher.
func (w *alertWorld) check(t *testing.T) {
	t.Helper()
	if err := w.h.srv.alerts.Check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
}

func TestAlertSettingsAPI(t *testing.T) {
	w := newAlertWorld(t)
	tok := w.owner.Token
	var got api.AlertSettings
	w.h.Do(request{Method: "GET", Path: "/api/v1/alerts/settings", Token: tok}).MustStatus(t, 200).MustDecode(t, &got)
	want := api.AlertSettings{Events: api.AlertKinds, RetentionDays: 30, Delivery: []api.AlertDelivery{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("default settings (-want +got):\n%s", diff)
	}

	r := newHookReceiver(t)
	url := r.URL("/hooks/traceless?k=v")
	set := w.putAlerts(t, tok, api.AlertSettingsInput{WebhookURL: &url, Events: &[]string{api.AlertPoolDown, api.AlertNodeOffline}})
	secret := set.WebhookSecret
	if !strings.HasPrefix(secret, webhookSecretPrefix) || len(secret) < 40 {
		t.Fatalf("secret = %q", secret)
	}
	want = api.AlertSettings{WebhookURL: url, Events: []string{api.AlertNodeOffline, api.AlertPoolDown}, RetentionDays: 30,
		Delivery: []api.AlertDelivery{{Channel: "webhook", State: api.DeliveryIdle}}}
	w.h.Do(request{Method: "GET", Path: "/api/v1/alerts/settings", Token: tok}).MustStatus(t, 200).MustDecode(t, &got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after PUT, GET (-want +got; never the secret):\n%s", diff)
	}
	// Changing something else keeps the secret and does not show it.
	if again := w.putAlerts(t, tok, api.AlertSettingsInput{History: new(true), RetentionDays: new(7)}); again.WebhookSecret != "" || !again.History || again.RetentionDays != 7 {
		t.Errorf("second PUT = %+v", again)
	}
	if st, _ := w.h.store.GetAlertSettings(context.Background(), w.owner.Owner.ID); st.WebhookSecret != secret {
		t.Errorf("the secret changed without rotate_secret")
	}
	rotated := w.putAlerts(t, tok, api.AlertSettingsInput{RotateSecret: true})
	if rotated.WebhookSecret == "" || rotated.WebhookSecret == secret {
		t.Errorf("rotate_secret gave %q", rotated.WebhookSecret)
	}
	// Removing the webhook removes the secret; a new webhook gets a new one.
	w.putAlerts(t, tok, api.AlertSettingsInput{WebhookURL: new("")})
	if st, _ := w.h.store.GetAlertSettings(context.Background(), w.owner.Owner.ID); st.WebhookSecret != "" || st.WebhookURL != "" {
		t.Errorf("after removing the webhook: %+v", st)
	}
	if w.hook(t, tok, r) == rotated.WebhookSecret {
		t.Error("a new webhook reused the old secret")
	}

	// Private targets, refused without the operator's setting:
	// TestAlertWebhookPrivateTargets (this world allows them).
	for name, tc := range map[string]struct {
		body  any
		field string
	}{
		"http to a public host":    {map[string]any{"webhook_url": "http://hooks.example.com/x"}, "webhook_url"},
		"link-local address":       {map[string]any{"webhook_url": "https://[fe80::1]/x"}, "webhook_url"},
		"credentials":              {map[string]any{"webhook_url": "https://user:pw@hooks.example.com/x"}, "webhook_url"},
		"not a URL":                {map[string]any{"webhook_url": "hooks.example.com"}, "webhook_url"},
		"other scheme":             {map[string]any{"webhook_url": "ftp://hooks.example.com/x"}, "webhook_url"},
		"longer than 2 KiB":        {map[string]any{"webhook_url": "https://hooks.example.com/" + strings.Repeat("a", 2048)}, "webhook_url"},
		"space":                    {map[string]any{"webhook_url": "https://hooks.example.com/a b"}, "webhook_url"},
		"email without SMTP":       {map[string]any{"email": "ops@example.com"}, "email"},
		"unknown kind":             {map[string]any{"events": []string{"node_offline", "user_connected"}}, "events"},
		"repeated kind":            {map[string]any{"events": []string{"node_offline", "node_offline"}}, "events"},
		"retention 0":              {map[string]any{"retention_days": 0}, "retention_days"},
		"retention 366":            {map[string]any{"retention_days": 366}, "retention_days"},
		"unknown field":            {map[string]any{"webhook": "https://hooks.example.com/"}, "webhook"},
		"rotate without a webhook": {map[string]any{"webhook_url": "", "rotate_secret": true}, "rotate_secret"},
	} {
		t.Run(name, func(t *testing.T) {
			res := w.h.Do(request{Method: "PUT", Path: "/api/v1/alerts/settings", Token: tok, Body: tc.body})
			res.MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: tc.field})
		})
	}
	// An https webhook to a public name is accepted (nothing is sent).
	w.putAlerts(t, tok, api.AlertSettingsInput{WebhookURL: new("https://hooks.example.com/traceless")})
}

// TestAlertWebhookPrivateTargets: loopback and private webhook targets
// (over http:// too) are refused unless the operator allows private
// targets; link-local addresses, other schemes and http:// to public
// hosts are refused either way.
func TestAlertWebhookPrivateTargets(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow=%v", allow), func(t *testing.T) {
			w := newAlertWorld(t, func(o *Options) { o.Alerts.AllowPrivateTargets = allow })
			for u, private := range map[string]bool{
				"http://127.0.0.1:9/x":        true,
				"https://127.0.0.1/x":         true,
				"http://localhost:8080/hook":  true,
				"https://localhost/x":         true,
				"https://[::1]/x":             true,
				"http://10.1.2.3:8080/x":      true,
				"https://192.168.1.20/x":      true,
				"http://172.16.0.5/x":         true,
				"https://100.64.0.9/x":        true,
				"http://[fd00::1]:8080/x":     true,
				"https://hooks.example.com/x": false,
			} {
				res := w.h.Do(request{Method: "PUT", Path: "/api/v1/alerts/settings", Token: w.owner.Token, Body: api.AlertSettingsInput{WebhookURL: &u}})
				if !private || allow {
					res.MustStatus(t, http.StatusOK)
				} else {
					res.MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "webhook_url"})
				}
			}
			for _, u := range []string{"https://169.254.169.254/latest/meta-data", "http://[fe80::1]/x", "https://0.0.0.0/x",
				"http://224.0.0.1/x", "http://hooks.example.com/x", "ftp://10.1.2.3/x"} {
				w.h.Do(request{Method: "PUT", Path: "/api/v1/alerts/settings", Token: w.owner.Token, Body: api.AlertSettingsInput{WebhookURL: &u}}).
					MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "webhook_url"})
			}
		})
	}
}

// eventKeys are the JSON keys of an event and of its pool and node: the
// whole of what an alert can say.
var eventKeys = map[string][]string{
	"event": {"detail", "id", "kind", "node", "occurred_at", "pool"},
	"pool":  {"dedicated", "id", "name", "nodes", "nodes_online", "region"},
	"node":  {"applied_revision", "current_revision", "id", "interface_up", "name", "online", "peer_count", "posture", "version"},
}

func checkEventKeys(t *testing.T, body []byte) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	if diff := cmp.Diff(eventKeys["event"], keys(m)); diff != "" {
		t.Errorf("event keys (-want +got):\n%s", diff)
	}
	for _, part := range []string{"pool", "node"} {
		var sub map[string]json.RawMessage
		if string(m[part]) == "null" {
			continue
		}
		if err := json.Unmarshal(m[part], &sub); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(eventKeys[part], keys(sub)); diff != "" {
			t.Errorf("%s keys (-want +got):\n%s", part, diff)
		}
	}
}

// TestAlertWatcherTransitions drives one node of a shared pool through
// every transition with the fake clock and checks the events, in order.
func TestAlertWatcherTransitions(t *testing.T) {
	w := newAlertWorld(t)
	r := newHookReceiver(t)
	secret := w.hook(t, w.owner.Token, r)
	node := w.nodeToken

	w.report(t, node, w.healthy())
	w.check(t) // the first look is a baseline: no event
	if n := len(r.deliveries()); n != 0 {
		t.Fatalf("%d events from the baseline", n)
	}

	var want []string
	step := func(name string, kinds ...string) []hookDelivery {
		t.Helper()
		w.check(t)
		want = append(want, kinds...)
		got := r.waitN(len(want))
		if diff := cmp.Diff(want, kindsOf(got)); diff != "" {
			t.Fatalf("%s: events (-want +got):\n%s", name, diff)
		}
		return got[len(got)-len(kinds):]
	}

	w.h.clock.Advance(onlineWindow + time.Second)
	got := step("offline", api.AlertNodeOffline, api.AlertPoolDown)
	off := got[0].Event
	if off.Node == nil || off.Node.ID != w.node.NodeID || off.Node.Name != "node-1" || off.Node.Online ||
		off.Pool.ID != w.pool.ID || off.Pool.Name != "Frankfurt" || off.Pool.Dedicated || off.Pool.Nodes != 1 || off.Pool.NodesOnline != 0 {
		t.Errorf("node_offline event = %+v / %+v", off, off.Node)
	}
	if off.Node.PeerCount != nil || off.Node.AppliedRevision != nil || off.Node.CurrentRevision != nil {
		t.Errorf("a shared node's event carries aggregate counts: %+v", off.Node)
	}
	if !off.OccurredAt.Equal(w.h.clock.Now()) {
		t.Errorf("occurred_at = %v, want the fake clock's %v", off.OccurredAt, w.h.clock.Now())
	}
	if got[1].Event.Node != nil || got[1].Event.Pool.ID != w.pool.ID {
		t.Errorf("pool_down event = %+v", got[1].Event)
	}

	w.report(t, node, w.healthy())
	step("online", api.AlertNodeOnline, api.AlertPoolUp)

	bad := w.healthy()
	bad.Posture.SwapOff, bad.Posture.NoLogRules = false, false
	w.report(t, node, bad)
	got = step("posture regression", api.AlertPostureRegressed)
	if d := got[0].Event.Detail; d != "failing: no_log_rules, swap_off" {
		t.Errorf("regression detail = %q", d)
	}
	w.check(t) // the same report again: nothing new
	bad.Posture.NoLogRules = true
	w.report(t, node, bad)
	got = step("partial recovery", api.AlertPostureRecovered)
	if d := got[0].Event.Detail; d != "passing again: no_log_rules" {
		t.Errorf("recovery detail = %q", d)
	}
	w.report(t, node, w.healthy())
	step("recovery", api.AlertPostureRecovered)

	// Sync lag: a change the node has not applied for longer than SyncLag.
	behind := w.healthy()
	d := w.register(t)
	w.report(t, node, behind)
	w.check(t) // the watcher sees the new revision
	w.h.clock.Advance(30 * time.Second)
	w.report(t, node, behind)
	w.check(t) // behind, but not for long enough
	w.h.clock.Advance(31 * time.Second)
	w.report(t, node, behind)
	step("sync lag", api.AlertSyncLag)
	w.report(t, node, w.healthy())
	step("caught up", api.AlertSyncRecovered)

	for _, dl := range r.deliveries() {
		if err := api.VerifyAlert(secret, dl.Sig, dl.Body, w.h.clock.Now(), 5*time.Minute); err != nil {
			t.Errorf("%s: signature: %v", dl.Event.Kind, err)
		}
		if dl.Kind != dl.Event.Kind {
			t.Errorf("X-Traceless-Event %q for a %s event", dl.Kind, dl.Event.Kind)
		}
		checkEventKeys(t, dl.Body)
		if strings.Contains(string(dl.Body), d.PublicKey) || strings.Contains(string(dl.Body), d.IPv4) {
			t.Errorf("an alert mentions a device: %s", dl.Body)
		}
	}

	// A disabled node is not watched; a node that never reports is
	// offline once it had time to.
	second, _ := w.enroll(t, w.pool.ID, "node-2")
	w.h.Do(request{Method: "PUT", Path: "/api/v1/admin/nodes/" + w.node.NodeID, Token: w.admin, Body: api.NodeUpdate{Enabled: new(false)}}).MustStatus(t, 200)
	w.check(t)
	w.h.clock.Advance(onlineWindow)
	got = step("silent new node", api.AlertNodeOffline, api.AlertPoolDown)
	if got[0].Event.Node.ID != second.NodeID || got[0].Event.Node.Posture != nil {
		t.Errorf("offline event for the silent node = %+v", got[0].Event.Node)
	}
}

// TestAlertIsolation: each owner hears about the shared pools their plan
// grants and their own dedicated pools — never another owner's.
func TestAlertIsolation(t *testing.T) {
	w := newAlertWorld(t)
	a := w.owner
	b := w.h.MustOwner()
	w.h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: b.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, 200)
	c := w.h.MustOwner() // on the free plan, which grants no pool here

	ownPool := func(tok string) api.Pool {
		var p api.Pool
		w.h.Do(request{Method: "POST", Path: "/api/v1/pools", Token: tok, Body: api.PoolInput{Name: "home", Region: "home", Country: "NL", City: "Delft"}}).
			MustStatus(t, 201).MustDecode(t, &p)
		return p
	}
	poolA, poolB := ownPool(a.Token), ownPool(b.Token)
	nodeA, tokA := w.enroll(t, poolA.ID, "a-node")
	nodeB, tokB := w.enroll(t, poolB.ID, "b-node")

	ra, rb, rc := newHookReceiver(t), newHookReceiver(t), newHookReceiver(t)
	w.hook(t, a.Token, ra)
	w.hook(t, b.Token, rb)
	w.hook(t, c.Token, rc)

	tokens := []string{w.nodeToken, tokA, tokB}
	for _, tok := range tokens {
		w.report(t, tok, w.healthy())
	}
	w.check(t)
	w.h.clock.Advance(onlineWindow + time.Second)
	w.check(t)

	nodesOf := func(ds []hookDelivery) []string {
		var out []string
		for _, d := range ds {
			if d.Event.Node != nil {
				out = append(out, d.Event.Node.ID)
			}
		}
		sort.Strings(out)
		return out
	}
	sorted := func(s ...string) []string { sort.Strings(s); return s }
	gotA, gotB := ra.waitN(4), rb.waitN(4)
	if diff := cmp.Diff(sorted(w.node.NodeID, nodeA.NodeID), nodesOf(gotA)); diff != "" {
		t.Errorf("owner A's node events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sorted(w.node.NodeID, nodeB.NodeID), nodesOf(gotB)); diff != "" {
		t.Errorf("owner B's node events (-want +got):\n%s", diff)
	}
	for _, d := range gotA {
		if n := d.Event.Node; n != nil && n.ID == nodeA.NodeID {
			if !d.Event.Pool.Dedicated || n.PeerCount == nil || n.AppliedRevision == nil || n.CurrentRevision == nil {
				t.Errorf("A's own node event lacks its aggregates: %+v %+v", d.Event.Pool, n)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	if got := rc.deliveries(); len(got) != 0 {
		t.Errorf("owner C (no pool granted) got %v", kindsOf(got))
	}

	// Once C's plan grants the shared pool, C hears about it, and only it.
	w.h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: c.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, 200)
	for _, tok := range tokens {
		w.report(t, tok, w.healthy())
	}
	w.check(t)
	gotC := rc.waitN(2)
	if diff := cmp.Diff([]string{api.AlertNodeOnline, api.AlertPoolUp}, kindsOf(gotC)); diff != "" {
		t.Errorf("owner C's events (-want +got):\n%s", diff)
	}
	for _, d := range gotC {
		if d.Event.Pool.ID != w.pool.ID {
			t.Errorf("owner C got an event about pool %s", d.Event.Pool.ID)
		}
	}
	ra.waitN(8)
	rb.waitN(8)
}

func historyPage(t *testing.T, w *alertWorld, token, query string) api.AlertHistory {
	t.Helper()
	var h api.AlertHistory
	w.h.Do(request{Method: "GET", Path: "/api/v1/alerts/history" + query, Token: token}).MustStatus(t, 200).MustDecode(t, &h)
	return h
}

func (w *alertWorld) historyRows(t *testing.T) int64 {
	t.Helper()
	rows, err := w.h.store.ListAlertHistory(context.Background(), w.owner.Owner.ID, store.HistoryCursor{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(rows))
}

// TestAlertHistoryOptIn: nothing is stored without the opt-in; with it,
// the owner's pools' changes are, with the retention chosen; the retention
// job deletes what expired (fake clock); opting out deletes everything.
func TestAlertHistoryOptIn(t *testing.T) {
	w := newAlertWorld(t)
	tok := w.owner.Token
	r := newHookReceiver(t)
	w.hook(t, tok, r)
	goOffline := func() {
		w.report(t, w.nodeToken, w.healthy())
		w.check(t)
		w.h.clock.Advance(onlineWindow + time.Second)
		w.check(t)
	}

	goOffline()
	if h := historyPage(t, w, tok, ""); h.History || len(h.Entries) != 0 || w.historyRows(t) != 0 {
		t.Fatalf("history without the opt-in: %+v", h)
	}

	w.putAlerts(t, tok, api.AlertSettingsInput{History: new(true), RetentionDays: new(1)})
	var set api.AlertSettings
	w.h.Do(request{Method: "GET", Path: "/api/v1/alerts/settings", Token: tok}).MustStatus(t, 200).MustDecode(t, &set)
	if !set.History || set.RetentionDays != 1 {
		t.Errorf("opt-in not visible in the settings: %+v", set)
	}
	first := w.h.clock.Now()
	w.report(t, w.nodeToken, w.healthy())
	w.check(t) // node_online, pool_up
	w.h.clock.Advance(12 * time.Hour)
	w.check(t) // node_offline, pool_down, 12 h later
	r.waitN(6)

	h := historyPage(t, w, tok, "?limit=3")
	if !h.History || len(h.Entries) != 3 || h.NextCursor == "" {
		t.Fatalf("first page = %+v", h)
	}
	rest := historyPage(t, w, tok, "?limit=3&cursor="+h.NextCursor)
	if len(rest.Entries) != 1 || rest.NextCursor != "" {
		t.Fatalf("second page = %+v", rest)
	}
	all := append(h.Entries, rest.Entries...)
	var kinds []string
	for i, e := range all {
		kinds = append(kinds, e.Kind)
		if e.PoolID != w.pool.ID || e.PoolName != "Frankfurt" {
			t.Errorf("entry %d: pool %s %q", i, e.PoolID, e.PoolName)
		}
		if wantExp := e.OccurredAt.Add(24 * time.Hour); !e.ExpiresAt.Equal(wantExp) {
			t.Errorf("entry %d expires %v, want %v", i, e.ExpiresAt, wantExp)
		}
		if i > 0 && e.OccurredAt.After(all[i-1].OccurredAt) {
			t.Errorf("history not newest first: %v after %v", e.OccurredAt, all[i-1].OccurredAt)
		}
	}
	sort.Strings(kinds)
	if diff := cmp.Diff([]string{api.AlertNodeOffline, api.AlertNodeOnline, api.AlertPoolDown, api.AlertPoolUp}, kinds); diff != "" {
		t.Errorf("history kinds (-want +got):\n%s", diff)
	}
	if !all[3].OccurredAt.Equal(first) {
		t.Errorf("oldest entry at %v, want %v", all[3].OccurredAt, first)
	}
	w.h.Do(request{Method: "GET", Path: "/api/v1/alerts/history?cursor=nonsense", Token: tok}).
		MustHaveError(t, wantErr{Status: 400, Code: api.CodeInvalidRequest, Field: "cursor"})

	// The retention job, on the fake clock: a day after the first pair,
	// they go and the later pair stays.
	w.h.clock.Advance(12 * time.Hour)
	w.h.srv.alerts.Purge(context.Background())
	h = historyPage(t, w, tok, "")
	kinds = nil
	for _, e := range h.Entries {
		kinds = append(kinds, e.Kind)
	}
	sort.Strings(kinds)
	if diff := cmp.Diff([]string{api.AlertNodeOffline, api.AlertPoolDown}, kinds); diff != "" {
		t.Fatalf("after the retention job, kept (-want +got):\n%s", diff)
	}
	w.h.clock.Advance(12 * time.Hour)
	w.h.srv.alerts.Purge(context.Background())
	if n := w.historyRows(t); n != 0 {
		t.Errorf("%d rows past their retention", n)
	}

	// DELETE empties it and keeps the opt-in; opting out deletes at once.
	w.report(t, w.nodeToken, w.healthy())
	w.check(t)
	if w.historyRows(t) != 2 {
		t.Fatalf("history rows = %d, want 2", w.historyRows(t))
	}
	w.h.Do(request{Method: "DELETE", Path: "/api/v1/alerts/history", Token: tok}).MustStatus(t, 204)
	if h := historyPage(t, w, tok, ""); !h.History || len(h.Entries) != 0 {
		t.Errorf("after DELETE: %+v", h)
	}
	w.h.clock.Advance(onlineWindow + time.Second)
	w.check(t)
	if w.historyRows(t) != 2 {
		t.Fatalf("history rows = %d, want 2", w.historyRows(t))
	}
	w.putAlerts(t, tok, api.AlertSettingsInput{History: new(false)})
	if h := historyPage(t, w, tok, ""); h.History || len(h.Entries) != 0 || w.historyRows(t) != 0 {
		t.Errorf("after opting out: %+v, %d rows", h, w.historyRows(t))
	}
}

// TestAlertHistoryFollowsEvents: an owner who subscribes to node_offline
// and node_online gets only those, by webhook and in the opt-in history,
// although the node going offline also takes its pool down.
func TestAlertHistoryFollowsEvents(t *testing.T) {
	w := newAlertWorld(t)
	tok := w.owner.Token
	r := newHookReceiver(t)
	w.hook(t, tok, r)
	w.putAlerts(t, tok, api.AlertSettingsInput{Events: &[]string{api.AlertNodeOffline, api.AlertNodeOnline}, History: new(true)})
	w.report(t, w.nodeToken, w.healthy())
	w.check(t)
	w.h.clock.Advance(onlineWindow + time.Second)
	w.check(t) // node_offline and pool_down
	w.report(t, w.nodeToken, w.healthy())
	w.check(t) // node_online and pool_up
	got := kindsOf(r.waitN(2))
	h := historyPage(t, w, tok, "")
	var kinds []string
	for _, e := range h.Entries {
		kinds = append(kinds, e.Kind)
	}
	want := []string{api.AlertNodeOffline, api.AlertNodeOnline}
	sort.Strings(got)
	sort.Strings(kinds)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delivered kinds (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("history kinds (-want +got):\n%s", diff)
	}
}

// TestAlertRetentionTicker checks that the retention job runs on its own.
func TestAlertRetentionTicker(t *testing.T) {
	w := newAlertWorld(t, func(o *Options) { o.Alerts.PurgeEvery = 10 * time.Millisecond })
	w.putAlerts(t, w.owner.Token, api.AlertSettingsInput{History: new(true), RetentionDays: new(2)})
	ctx := context.Background()
	entry := func(at time.Time) []store.AlertHistory {
		return []store.AlertHistory{{Kind: api.AlertPoolDown, PoolID: w.pool.ID, PoolName: "Frankfurt", OccurredAt: at}}
	}
	now := w.h.clock.Now()
	for _, at := range []time.Time{now, now.Add(36 * time.Hour)} {
		if n, err := w.h.store.AddAlertHistory(ctx, w.owner.Owner.ID, entry(at)); err != nil || n != 1 {
			t.Fatalf("AddAlertHistory = %d, %v", n, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := w.historyRows(t); n != 2 {
		t.Fatalf("%d rows before anything expired", n)
	}
	w.h.clock.Advance(48 * time.Hour)
	waitFor(t, "the retention job", func() bool { return w.historyRows(t) == 1 })
	time.Sleep(50 * time.Millisecond)
	if n := w.historyRows(t); n != 1 {
		t.Errorf("%d rows; the later entry should stay", n)
	}
}

// TestAlertsGoWithTheAccount: deleting the account deletes its alert
// settings and history.
func TestAlertsGoWithTheAccount(t *testing.T) {
	w := newAlertWorld(t)
	w.putAlerts(t, w.owner.Token, api.AlertSettingsInput{WebhookURL: new("https://hooks.example.com/x"), History: new(true)})
	if _, err := w.h.store.AddAlertHistory(context.Background(), w.owner.Owner.ID,
		[]store.AlertHistory{{Kind: api.AlertPoolDown, PoolID: w.pool.ID, PoolName: "Frankfurt", OccurredAt: w.h.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	var ex api.Export
	w.h.Do(request{Method: "GET", Path: "/api/v1/me/export", Token: w.owner.Token}).MustStatus(t, 200).MustDecode(t, &ex)
	if len(ex.Tables["alert_settings"]) != 1 || len(ex.Tables["alert_history"]) != 1 {
		t.Errorf("export lacks the alert tables: %v", ex.Tables)
	}
	w.h.Do(request{Method: "DELETE", Path: "/api/v1/me", Token: w.owner.Token}).MustStatus(t, 204)
	if _, err := w.h.store.GetAlertSettings(context.Background(), w.owner.Owner.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("settings after deleting the account: %v", err)
	}
	if n := w.historyRows(t); n != 0 {
		t.Errorf("%d history rows after deleting the account", n)
	}
}

// TestAlertWatcherTicker: the watcher runs on its own ticker.
func TestAlertWatcherTicker(t *testing.T) {
	w := newAlertWorld(t, func(o *Options) { o.Alerts.Every = 10 * time.Millisecond })
	r := newHookReceiver(t)
	w.hook(t, w.owner.Token, r)
	w.report(t, w.nodeToken, w.healthy())
	time.Sleep(50 * time.Millisecond) // a baseline
	w.h.clock.Advance(onlineWindow + time.Second)
	if got := kindsOf(r.waitN(2)); !cmp.Equal(got, []string{api.AlertNodeOffline, api.AlertPoolDown}) {
		t.Errorf("events = %v", got)
	}
}
