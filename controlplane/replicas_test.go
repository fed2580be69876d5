package controlplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/testpg"
	"github.com/traceless-vpn/traceless/store"
)

// TestReplicasShareChanges runs two control-plane replicas on one
// PostgreSQL database: a node polls replica A while devices are registered
// and deleted through replica B, and sees each change well before the
// gap fallback (gapGrace) would have forced a full snapshot.
func TestReplicasShareChanges(t *testing.T) {
	dsn := testpg.Database(t)
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	replica := func() (*Server, *httptest.Server) {
		st, err := store.Open(ctx, store.Config{Driver: store.DriverPostgres, DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		srv, err := New(Options{Store: st, SessionKey: key, Argon2: cheapArgon2, LongPoll: 5 * time.Second, KeyRate: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		return srv, ts
	}
	a, tsA := replica()
	_, tsB := replica()
	if _, err := a.Bootstrap(ctx, adminEmail, adminPassword, tsA.URL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // both listeners connected

	c := &http.Client{Timeout: 10 * time.Second}
	call := func(base, method, path, token string, in, out any) int {
		t.Helper()
		res, err := c.Do(jsonRequest(t, method, base+path, token, in))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if out != nil && res.StatusCode < 300 {
			json.NewDecoder(res.Body).Decode(out)
		}
		return res.StatusCode
	}
	var admin, owner api.AuthResponse
	call(tsA.URL, "POST", "/api/v1/auth/login", "", api.Credentials{Email: adminEmail, Password: adminPassword}, &admin)
	var pool api.Pool
	call(tsA.URL, "POST", "/api/v1/admin/pools", admin.Token, api.PoolInput{Name: "p", Region: "r", Country: "DE", City: "Berlin"}, &pool)
	pro, err := a.store.GetPlanBySlug(ctx, "pro")
	if err != nil {
		t.Fatal(err)
	}
	call(tsA.URL, "PUT", "/api/v1/admin/plans/"+pro.ID, admin.Token, api.PlanInput{Slug: "pro", Name: pro.Name, MaxApps: pro.MaxApps,
		MaxDevices: pro.MaxDevices, Currency: pro.Currency, PriceCents: pro.PriceCents, Pools: []string{pool.ID}}, nil)
	call(tsB.URL, "POST", "/api/v1/auth/signup", "", api.Credentials{Email: "replica@example.com", Password: testPassword}, &owner)
	call(tsB.URL, "PUT", "/api/v1/me/plan", owner.Token, api.PlanChange{Plan: "pro"}, nil)
	var app api.App
	call(tsB.URL, "POST", "/api/v1/apps", owner.Token, api.AppInput{Name: "a"}, &app)
	var k api.APIKeyCreated
	call(tsB.URL, "POST", "/api/v1/apps/"+app.ID+"/keys", owner.Token, api.APIKeyInput{Name: "k"}, &k)
	var et api.EnrollmentToken
	call(tsA.URL, "POST", "/api/v1/admin/pools/"+pool.ID+"/enrollment-tokens", admin.Token, nil, &et)
	var er api.EnrollResponse
	call(tsA.URL, "POST", "/agent/v1/enroll", "", api.EnrollRequest{Token: et.Token, Name: "n", PublicKey: newWGKey(t), Endpoint: "203.0.113.1:51820"}, &er)
	var nt api.NodeToken
	call(tsA.URL, "POST", "/agent/v1/token", er.Credential, nil, &nt)

	var snap api.PeersResponse
	call(tsA.URL, "GET", "/agent/v1/peers?since=0", nt.Token, nil, &snap)
	poll := func(since int64) (api.PeersResponse, time.Duration) {
		start := time.Now()
		var pr api.PeersResponse
		call(tsA.URL, "GET", fmt.Sprintf("/agent/v1/peers?since=%d", since), nt.Token, nil, &pr)
		return pr, time.Since(start)
	}
	done := make(chan struct{})
	var got api.PeersResponse
	var took time.Duration
	go func() { got, took = poll(snap.Revision); close(done) }()
	time.Sleep(100 * time.Millisecond)
	var d api.DeviceCreated
	if st := call(tsB.URL, "POST", "/api/v1/devices", k.Key, api.DeviceInput{PublicKey: newWGKey(t)}, &d); st != 201 {
		t.Fatalf("register on replica B: %d", st)
	}
	<-done
	if got.Full || len(got.Upserts) != 1 || got.Upserts[0].PublicKey != d.PublicKey {
		t.Fatalf("replica A answered %+v after %v; want the upsert as a delta", got, took)
	}
	if took > gapGrace {
		t.Errorf("replica A took %v to see replica B's write; want well under %v", took, gapGrace)
	}
	// A status report to replica A shows the node online on replica B.
	if st := call(tsA.URL, "POST", "/agent/v1/status", nt.Token, api.NodeStatus{AppliedRevision: got.Revision, InterfaceUp: true, Version: "t"}, nil); st != 200 {
		t.Fatalf("status on replica A: %d", st)
	}
	deadline := time.Now().Add(gapGrace)
	for {
		var nodes api.NodeList
		call(tsB.URL, "GET", "/api/v1/admin/nodes", admin.Token, nil, &nodes)
		if len(nodes.Nodes) == 1 && nodes.Nodes[0].Online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B does not show the node online after its report to replica A: %+v", nodes.Nodes)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if st := call(tsB.URL, "DELETE", "/api/v1/devices/"+d.ID, k.Key, nil, nil); st != 204 {
		t.Fatalf("delete on replica B: %d", st)
	}
	del, took := poll(got.Revision)
	if del.Full || len(del.Removes) != 1 || del.Removes[0] != d.PublicKey {
		t.Errorf("replica A answered %+v after %v; want the removal as a delta", del, took)
	}
}

func jsonRequest(tb testing.TB, method, url, token string, in any) *http.Request {
	tb.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	req, err := http.NewRequest(method, url, bytesReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// TestBootstrapReplicasTogether starts three replicas on one PostgreSQL
// database at the same moment with the same operator credentials, as
// README recommends (TRACELESS_ADMIN_EMAIL/PASSWORD on every replica):
// every one starts, exactly one operator exists, and it can sign in on
// each replica.
func TestBootstrapReplicasTogether(t *testing.T) {
	dsn := testpg.Database(t)
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	for round := range 3 {
		var srvs []*Server
		var urls []string
		for range 3 {
			st, err := store.Open(ctx, store.Config{Driver: store.DriverPostgres, DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			srv, err := New(Options{Store: st, SessionKey: key, Argon2: cheapArgon2, KeyRate: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			ts := httptest.NewServer(srv.Handler())
			t.Cleanup(ts.Close)
			srvs, urls = append(srvs, srv), append(urls, ts.URL)
		}
		errs := make(chan error, len(srvs))
		for i, srv := range srvs {
			go func() {
				_, err := srv.Bootstrap(ctx, adminEmail, adminPassword, urls[i])
				errs <- err
			}()
		}
		for range srvs {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: Bootstrap: %v", round, err)
			}
		}
		if n, err := srvs[0].store.CountAdmins(ctx); err != nil || n != 1 {
			t.Fatalf("round %d: %d operators, %v; want 1", round, n, err)
		}
		for _, u := range urls {
			res, err := http.DefaultClient.Do(jsonRequest(t, "POST", u+"/api/v1/auth/login", "", api.Credentials{Email: adminEmail, Password: adminPassword}))
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("round %d: operator login on %s: %d", round, u, res.StatusCode)
			}
		}
		// The next round starts from an empty database again.
		if err := srvs[0].store.DeleteOwner(ctx, mustOwnerID(t, srvs[0], adminEmail)); err != nil {
			t.Fatal(err)
		}
	}
}

func mustOwnerID(t *testing.T, s *Server, email string) string {
	t.Helper()
	o, err := s.store.GetOwnerByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return o.ID
}

// TestListenReconnectSkipsMissed: a change committed by another replica
// whose announcement this replica's LISTEN missed (it was away) is taken
// as lost as soon as LISTEN is back, not gapGrace later: the first change
// after a PostgreSQL restart or a broken LISTEN connection is not held
// back by the gap fallback.
func TestListenReconnectSkipsMissed(t *testing.T) {
	dsn := testpg.Database(t)
	ctx := context.Background()
	open := func() *store.Store {
		st, err := store.Open(ctx, store.Config{Driver: store.DriverPostgres, DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st := open()
	a, err := New(Options{Store: st, Argon2: cheapArgon2, KeyRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, err := a.Bootstrap(ctx, adminEmail, adminPassword, "http://127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	// Another replica's store, writing without announcing: its
	// announcements are the ones a broken LISTEN misses.
	other := open()
	o, err := other.CreateOwner(ctx, store.Owner{Email: "gap@example.com", PasswordHash: "$argon2id$x", Role: store.RoleOwner}, "")
	if err != nil {
		t.Fatal(err)
	}
	app, err := other.CreateApp(ctx, o.ID, "gap")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "LISTEN connected", func() bool { return a.listenWatch.up.Load() })
	waitFor(t, "the hub at the current revision", func() bool {
		rev, err := other.Revision(ctx)
		return err == nil && a.hub.current() == rev
	})

	d, err := other.RegisterDevice(ctx, app.ID, store.NewDevice{PublicKey: newWGKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := other.Revision(ctx)
	if err != nil || rev == 0 {
		t.Fatalf("revision %d, %v after %s", rev, err, d.ID)
	}
	committed := time.Now()
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missed revision skipped", func() bool { return a.hub.current() >= rev })
	if took := time.Since(committed); took >= gapGrace {
		t.Errorf("the hub reached the missed revision %v after its commit; the LISTEN reconnect should skip it at once, not after gapGrace (%v)", took, gapGrace)
	}
	if a.listenWatch.reconnects.Load() != 1 {
		t.Errorf("reconnects = %d, want 1", a.listenWatch.reconnects.Load())
	}
}

// TestPollAheadSkipsLostRevision: a node that polled a replica which then
// died comes to this one with a revision it saw there. A revision below it
// that this replica never heard of (the dead one committed it but did not
// live to announce it) is taken as lost at once: the node is not sent back
// to an older revision, and the next change reaches it as a delta without
// waiting gapGrace.
func TestPollAheadSkipsLostRevision(t *testing.T) {
	w := newSyncWorld(t)
	ctx := context.Background()
	rev0 := w.peers(t, w.nodeToken, 0).Revision
	apps, err := w.h.store.ListApps(ctx, w.owner.Owner.ID)
	if err != nil || len(apps) == 0 {
		t.Fatalf("apps: %v, %v", apps, err)
	}
	// A change committed without this replica hearing of it: the dead
	// replica's, which it did not live to announce.
	w.h.srv.unhook()
	if _, err := w.h.store.RegisterDevice(ctx, apps[0].ID, store.NewDevice{PublicKey: newWGKey(t)}); err != nil {
		t.Fatal(err)
	}
	w.h.srv.unhook = w.h.store.OnCommit(w.h.srv.committed)
	w.register(t) // announced, but stuck behind the lost revision
	rev2, err := w.h.store.Revision(ctx)
	if err != nil || rev2 < rev0+2 {
		t.Fatalf("revision %d, %v; want at least %d", rev2, err, rev0+2)
	}
	if cur := w.h.srv.hub.current(); cur != rev0 {
		t.Fatalf("the hub is at %d; the test needs it stuck at %d", cur, rev0)
	}

	// The node saw rev2 on the dead replica, with d.
	got := make(chan api.PeersResponse, 1)
	go func() {
		var pr api.PeersResponse
		res := w.h.Do(request{Method: "GET", Path: fmt.Sprintf("/agent/v1/peers?since=%d", rev2), Token: w.nodeToken})
		json.Unmarshal(res.Body, &pr)
		got <- pr
	}()
	waitFor(t, "the hub past the lost revision", func() bool { return w.h.srv.hub.current() >= rev2 })
	next := w.register(t)
	select {
	case pr := <-got:
		if pr.Full || pr.Revision <= rev2 || len(pr.Upserts) != 1 || pr.Upserts[0].PublicKey != next.PublicKey {
			t.Errorf("the node at %d got %+v; want the next device %s as a delta", rev2, pr, next.PublicKey)
		}
	case <-time.After(gapGrace):
		t.Errorf("no answer within gapGrace")
	}
}
