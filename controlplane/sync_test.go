package controlplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func newWGKey(tb testing.TB) string {
	tb.Helper()
	var b [32]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// syncWorld is an installation with one shared pool granted by "pro", an
// owner on "pro" with an app and key, and an enrolled node.
type syncWorld struct {
	h         *harness
	admin     string
	owner     api.AuthResponse
	key       string
	pool      api.Pool
	node      api.EnrollResponse
	nodeToken string
}

func newSyncWorld(t *testing.T, mods ...func(*Options)) *syncWorld {
	t.Helper()
	mods = append([]func(*Options){func(o *Options) { o.LongPoll = 2 * time.Second; o.KeyRate = -1 }}, mods...)
	h := newHarness(t, mods...)
	t.Cleanup(func() { h.srv.Close() })
	w := &syncWorld{h: h, admin: h.MustAdmin().Token}
	h.Do(request{Method: "POST", Path: "/api/v1/admin/pools", Token: w.admin,
		Body: api.PoolInput{Name: "Frankfurt", Region: "eu-central", Country: "DE", City: "Frankfurt"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &w.pool)
	w.grantPool(t, "pro", w.pool.ID)
	w.owner = h.MustOwner()
	h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: w.owner.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, http.StatusOK)
	var app api.App
	h.Do(request{Method: "POST", Path: "/api/v1/apps", Token: w.owner.Token, Body: api.AppInput{Name: "vpn"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &app)
	var key api.APIKeyCreated
	h.Do(request{Method: "POST", Path: "/api/v1/apps/" + app.ID + "/keys", Token: w.owner.Token, Body: api.APIKeyInput{Name: "k"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &key)
	w.key = key.Key
	w.node, w.nodeToken = w.enroll(t, w.pool.ID, "node-1")
	return w
}

func (w *syncWorld) grantPool(t *testing.T, slug, poolID string) {
	t.Helper()
	p, err := w.h.store.GetPlanBySlug(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	in := api.PlanInput{Slug: p.Slug, Name: p.Name, MaxApps: p.MaxApps, MaxDevices: p.MaxDevices, MaxOwnNodes: p.MaxOwnNodes,
		PriceCents: p.PriceCents, Currency: p.Currency, Pools: append(p.PoolIDs, poolID)}
	w.h.Do(request{Method: "PUT", Path: "/api/v1/admin/plans/" + p.ID, Token: w.admin, Body: in}).MustStatus(t, http.StatusOK)
}

// enroll enrolls a node into pool and returns it with a node token.
func (w *syncWorld) enroll(t *testing.T, poolID, name string) (api.EnrollResponse, string) {
	t.Helper()
	var et api.EnrollmentToken
	w.h.Do(request{Method: "POST", Path: "/api/v1/admin/pools/" + poolID + "/enrollment-tokens", Token: w.admin}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &et)
	var er api.EnrollResponse
	w.h.Do(request{Method: "POST", Path: "/agent/v1/enroll",
		Body: api.EnrollRequest{Token: et.Token, Name: name, PublicKey: newWGKey(t), Endpoint: "203.0.113.10:51820"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &er)
	var nt api.NodeToken
	w.h.Do(request{Method: "POST", Path: "/agent/v1/token", Token: er.Credential}).MustStatus(t, http.StatusOK).MustDecode(t, &nt)
	return er, nt.Token
}

func (w *syncWorld) register(t *testing.T) api.DeviceCreated {
	t.Helper()
	var d api.DeviceCreated
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices", Token: w.key, Body: api.DeviceInput{PublicKey: newWGKey(t)}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &d)
	return d
}

func (w *syncWorld) peers(t *testing.T, token string, since int64) api.PeersResponse {
	t.Helper()
	var pr api.PeersResponse
	w.h.Do(request{Method: "GET", Path: fmt.Sprintf("/agent/v1/peers?since=%d", since), Token: token}).
		MustStatus(t, http.StatusOK).MustDecode(t, &pr)
	return pr
}

func keysOf(ps []api.Peer) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.PublicKey)
	}
	sort.Strings(out)
	return out
}

func TestSyncFlow(t *testing.T) {
	w := newSyncWorld(t)
	full := w.peers(t, w.nodeToken, 0)
	if !full.Full || len(full.Upserts) != 0 {
		t.Fatalf("first sync = %+v; want an empty full snapshot", full)
	}
	if want := "10.64.0.1/10"; w.node.Tunnel.IPv4 != want {
		t.Errorf("tunnel ipv4 = %q, want %q", w.node.Tunnel.IPv4, want)
	}

	// A registration wakes a waiting long poll.
	got := make(chan api.PeersResponse, 1)
	go func() {
		var pr api.PeersResponse
		res, err := http.DefaultClient.Do(mustReq(t, "GET", fmt.Sprintf("%s/agent/v1/peers?since=%d", w.h.ts.URL, full.Revision), w.nodeToken))
		if err == nil {
			json.NewDecoder(res.Body).Decode(&pr)
			res.Body.Close()
		}
		got <- pr
	}()
	time.Sleep(100 * time.Millisecond)
	d := w.register(t)
	var delta api.PeersResponse
	select {
	case delta = <-got:
	case <-time.After(time.Second):
		t.Fatal("long poll did not return within a second of the registration")
	}
	want := api.DevicePeer(d.PublicKey, d.IPv4, d.IPv6)
	if delta.Full || len(delta.Upserts) != 1 || !cmp.Equal(delta.Upserts[0], want) {
		t.Fatalf("delta = %+v; want upsert %+v", delta, want)
	}
	if len(d.Servers) != 1 || d.Servers[0].ID != w.node.NodeID || d.Servers[0].Online {
		t.Errorf("servers in the registration = %+v; want the node, offline (no status yet)", d.Servers)
	}

	// Rotation removes the old key and upserts the new one in one delta.
	var rot api.DeviceCreated
	w.h.Do(request{Method: "POST", Path: "/api/v1/devices/" + d.ID + "/rotate", Token: w.key, Body: api.RotateInput{PublicKey: newWGKey(t)}}).
		MustStatus(t, http.StatusOK).MustDecode(t, &rot)
	r := w.peers(t, w.nodeToken, delta.Revision)
	if diff := cmp.Diff([]string{d.PublicKey}, r.Removes); diff != "" {
		t.Errorf("rotation removes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{rot.PublicKey}, keysOf(r.Upserts)); diff != "" {
		t.Errorf("rotation upserts (-want +got):\n%s", diff)
	}

	// Status: the right hash is accepted, a wrong one asks for a resync,
	// and the node shows online.
	var h api.PeerSetHash
	h.Toggle(api.DevicePeer(rot.PublicKey, rot.IPv4, rot.IPv6))
	var sr api.StatusResponse
	w.h.Do(request{Method: "POST", Path: "/agent/v1/status", Token: w.nodeToken,
		Body: api.NodeStatus{AppliedRevision: r.Revision, PeerSetHash: h.String(), PeerCount: 1, InterfaceUp: true, Version: "t"}}).
		MustStatus(t, http.StatusOK).MustDecode(t, &sr)
	if sr.Resync {
		t.Error("status with the right hash: resync = true")
	}
	w.h.Do(request{Method: "POST", Path: "/agent/v1/status", Token: w.nodeToken,
		Body: api.NodeStatus{AppliedRevision: r.Revision, PeerSetHash: api.PeerSetHash{}.String(), PeerCount: 0}}).
		MustStatus(t, http.StatusOK).MustDecode(t, &sr)
	if !sr.Resync {
		t.Error("status with a wrong hash: resync = false")
	}
	var sl api.ServerList
	w.h.Do(request{Method: "GET", Path: "/api/v1/servers", Token: w.key}).MustStatus(t, http.StatusOK).MustDecode(t, &sl)
	if len(sl.Servers) != 1 || !sl.Servers[0].Online {
		t.Errorf("servers after a status report = %+v; want the node online", sl.Servers)
	}
	w.h.clock.Advance(2 * onlineWindow)
	w.h.Do(request{Method: "GET", Path: "/api/v1/servers", Token: w.key}).MustStatus(t, http.StatusOK).MustDecode(t, &sl)
	if sl.Servers[0].Online {
		t.Error("node still online after the online window passed without a report")
	}

	// The binary snapshot holds the same set as the JSON one.
	bin := w.h.Do(request{Method: "GET", Path: "/agent/v1/peers?since=0", Token: w.nodeToken, Header: map[string]string{"Accept": api.SnapshotMediaType}})
	bin.MustStatus(t, http.StatusOK)
	hdr, err := api.ReadSnapshotHeader(bytes.NewReader(bin.Body))
	if err != nil || hdr.Count != 1 || len(bin.Body) != 24+api.PeerRecordSize {
		t.Fatalf("binary snapshot header %+v, %d bytes, err %v", hdr, len(bin.Body), err)
	}
	p, err := api.ParsePeerRecord(bin.Body[24:])
	if err != nil || !cmp.Equal(p, api.DevicePeer(rot.PublicKey, rot.IPv4, rot.IPv6)) {
		t.Errorf("binary record = %+v, %v", p, err)
	}

	// Disabling the node empties its set; enabling restores it.
	w.h.Do(request{Method: "PUT", Path: "/api/v1/admin/nodes/" + w.node.NodeID, Token: w.admin, Body: map[string]bool{"enabled": false}}).MustStatus(t, http.StatusOK)
	off := w.peers(t, w.nodeToken, r.Revision)
	if !off.Full || len(off.Upserts) != 0 {
		t.Errorf("after disable = %+v; want an empty full snapshot", off)
	}
	w.h.Do(request{Method: "PUT", Path: "/api/v1/admin/nodes/" + w.node.NodeID, Token: w.admin, Body: map[string]bool{"enabled": true}}).MustStatus(t, http.StatusOK)
	on := w.peers(t, w.nodeToken, off.Revision)
	if !on.Full || len(on.Upserts) != 1 {
		t.Errorf("after enable = %+v; want a full snapshot with the device", on)
	}

	// Deletion reaches the node as a removal.
	w.h.Do(request{Method: "DELETE", Path: "/api/v1/devices/" + d.ID, Token: w.key}).MustStatus(t, http.StatusNoContent)
	del := w.peers(t, w.nodeToken, on.Revision)
	if diff := cmp.Diff([]string{rot.PublicKey}, del.Removes); diff != "" || del.Full {
		t.Errorf("delete removes (-want +got):\n%s (full=%v)", diff, del.Full)
	}

	// A removed node's credential stops working.
	w.h.Do(request{Method: "DELETE", Path: "/api/v1/admin/nodes/" + w.node.NodeID, Token: w.admin}).MustStatus(t, http.StatusNoContent)
	w.h.Do(request{Method: "POST", Path: "/agent/v1/token", Token: w.node.Credential}).MustStatus(t, http.StatusUnauthorized)
	w.h.Do(request{Method: "GET", Path: "/agent/v1/peers?since=0", Token: w.nodeToken}).MustStatus(t, http.StatusUnauthorized)
}

func mustReq(tb testing.TB, method, url, token string) *http.Request {
	tb.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

func TestEnrollmentTokenOneUse(t *testing.T) {
	w := newSyncWorld(t)
	var et api.EnrollmentToken
	w.h.Do(request{Method: "POST", Path: "/api/v1/admin/pools/" + w.pool.ID + "/enrollment-tokens", Token: w.admin}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &et)
	in := api.EnrollRequest{Token: et.Token, Name: "n", PublicKey: newWGKey(t), Endpoint: "203.0.113.11:51820"}
	w.h.Do(request{Method: "POST", Path: "/agent/v1/enroll", Body: in}).MustStatus(t, http.StatusCreated)
	in.PublicKey = newWGKey(t)
	w.h.Do(request{Method: "POST", Path: "/agent/v1/enroll", Body: in}).MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})

	w.h.Do(request{Method: "POST", Path: "/api/v1/admin/pools/" + w.pool.ID + "/enrollment-tokens", Token: w.admin}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &et)
	w.h.clock.Advance(25 * time.Hour)
	in = api.EnrollRequest{Token: et.Token, Name: "late", PublicKey: newWGKey(t), Endpoint: "203.0.113.12:51820"}
	w.h.Do(request{Method: "POST", Path: "/agent/v1/enroll", Body: in}).MustHaveError(t, wantErr{Status: 401, Code: api.CodeUnauthorized})
}

func TestSyncPlanChangeResyncs(t *testing.T) {
	w := newSyncWorld(t)
	d := w.register(t)
	base := w.peers(t, w.nodeToken, 0)
	if len(base.Upserts) != 1 {
		t.Fatalf("snapshot = %+v; want the device", base)
	}
	// The owner moves to "business", which does not grant the pool: the
	// node must drop the device.
	w.h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: w.owner.Token, Body: api.PlanChange{Plan: "business"}}).MustStatus(t, http.StatusOK)
	after := w.peers(t, w.nodeToken, base.Revision)
	if !after.Full || len(after.Upserts) != 0 {
		t.Errorf("after leaving the plan = %+v; want a full snapshot without %s", after, d.PublicKey)
	}
	// Granting the pool to business brings it back.
	w.grantPool(t, "business", w.pool.ID)
	back := w.peers(t, w.nodeToken, after.Revision)
	if !back.Full || len(back.Upserts) != 1 {
		t.Errorf("after the plan gained the pool = %+v; want the device", back)
	}
}

func TestSyncDedicatedPoolSeesOnlyItsOwner(t *testing.T) {
	w := newSyncWorld(t)
	// Another owner with a dedicated pool (created through the store: the
	// owner-facing pool API is not part of this test).
	other := w.h.MustOwner()
	w.h.Do(request{Method: "PUT", Path: "/api/v1/me/plan", Token: other.Token, Body: api.PlanChange{Plan: "pro"}}).MustStatus(t, http.StatusOK)
	ownerID := other.Owner.ID
	dp, err := w.h.store.CreatePool(context.Background(), store.Pool{Name: "own", Region: "home", Country: "NL", City: "Delft", OwnerID: &ownerID})
	if err != nil {
		t.Fatal(err)
	}
	_, dedicatedToken := w.enroll(t, dp.ID, "own-node")
	base := w.peers(t, dedicatedToken, 0)
	d := w.register(t) // the first owner's device
	w.h.Do(request{Method: "DELETE", Path: "/api/v1/devices/" + d.ID, Token: w.key}).MustStatus(t, http.StatusNoContent)
	got := w.peers(t, dedicatedToken, base.Revision)
	if len(got.Upserts) != 0 || len(got.Removes) != 0 || got.Full {
		t.Errorf("dedicated node of another owner saw %+v; want nothing", got)
	}
}

// TestSyncNoMissedChanges races writers against polling nodes and checks
// that every node ends with exactly the database's peer set.
func TestSyncNoMissedChanges(t *testing.T) {
	w := newSyncWorld(t, func(o *Options) { o.LongPoll = 300 * time.Millisecond; o.RemovalRing = 50 })
	nodes := []string{w.nodeToken}
	for i := 0; i < 4; i++ {
		_, tok := w.enroll(t, w.pool.ID, fmt.Sprintf("node-%d", i+2))
		nodes = append(nodes, tok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type agent struct {
		mu    sync.Mutex
		rev   int64
		peers map[string]api.Peer
		err   error
	}
	agents := make([]*agent, len(nodes))
	var pollers sync.WaitGroup
	for i, tok := range nodes {
		a := &agent{peers: map[string]api.Peer{}}
		agents[i] = a
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			for ctx.Err() == nil {
				a.mu.Lock()
				since := a.rev
				a.mu.Unlock()
				req := mustReq(t, "GET", fmt.Sprintf("%s/agent/v1/peers?since=%d", w.h.ts.URL, since), tok)
				res, err := http.DefaultClient.Do(req.WithContext(ctx))
				if err != nil {
					continue
				}
				var pr api.PeersResponse
				err = json.NewDecoder(res.Body).Decode(&pr)
				res.Body.Close()
				if err != nil || res.StatusCode != 200 {
					a.mu.Lock()
					a.err = fmt.Errorf("poll: status %d, %v", res.StatusCode, err)
					a.mu.Unlock()
					continue
				}
				a.mu.Lock()
				if pr.Full {
					a.peers = map[string]api.Peer{}
				}
				for _, k := range pr.Removes {
					delete(a.peers, k)
				}
				for _, p := range pr.Upserts {
					a.peers[p.PublicKey] = p
				}
				a.rev = pr.Revision
				a.mu.Unlock()
			}
		}()
	}

	client := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path string, body any) (*http.Response, []byte) {
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, w.h.ts.URL+path, r)
		req.Header.Set("Authorization", "Bearer "+w.key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := client.Do(req)
		if err != nil {
			return nil, nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	var writers sync.WaitGroup
	for g := 0; g < 8; g++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			var mine []string
			for i := 0; i < 40; i++ {
				n, _ := rand.Int(rand.Reader, big.NewInt(10))
				switch {
				case n.Int64() < 5 || len(mine) == 0:
					var key [32]byte
					rand.Read(key[:])
					res, b := do("POST", "/api/v1/devices", api.DeviceInput{PublicKey: base64.StdEncoding.EncodeToString(key[:])})
					if res != nil && res.StatusCode == 201 {
						var d api.DeviceCreated
						json.Unmarshal(b, &d)
						mine = append(mine, d.ID)
					}
				case n.Int64() < 8:
					var key [32]byte
					rand.Read(key[:])
					do("POST", "/api/v1/devices/"+mine[0]+"/rotate", api.RotateInput{PublicKey: base64.StdEncoding.EncodeToString(key[:])})
				default:
					do("DELETE", "/api/v1/devices/"+mine[len(mine)-1], nil)
					mine = mine[:len(mine)-1]
				}
			}
		}()
	}
	writers.Wait()

	// The database's view of the pool.
	want := map[string]api.Peer{}
	err := w.h.store.PoolPeers(context.Background(), w.pool.ID, 0, 1<<62, func(r store.PeerRow) error {
		want[r.PublicKey] = api.DevicePeer(r.PublicKey, r.IPv4, r.IPv6)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	final := w.h.srv.hub.current()
	deadline := time.Now().Add(10 * time.Second)
	for i, a := range agents {
		for {
			a.mu.Lock()
			rev, got, aerr := a.rev, a.peers, a.err
			a.mu.Unlock()
			if rev >= final {
				if aerr != nil {
					t.Errorf("node %d: %v", i, aerr)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("node %d at revision %d differs from the database (-want +got):\n%s", i, rev, diff)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d stuck at revision %d of %d", i, rev, final)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if len(want) == 0 {
		t.Error("no devices survived the run; the check compared empty sets")
	}
	cancel()
	pollers.Wait()
}
