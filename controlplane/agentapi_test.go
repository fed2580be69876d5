package controlplane

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestPeersAtRevisionZero: a node of an installation that has no device
// yet holds the current (empty) state, so since=0 waits like any other
// revision; full=true is how a node asks for a snapshot. Agents from
// before full=true send since=0 and read every answer to it as the whole
// set, which it is.
func TestPeersAtRevisionZero(t *testing.T) {
	const longPoll = time.Second
	h := newHarness(t, func(o *Options) { o.LongPoll = longPoll; o.KeyRate = -1 })
	t.Cleanup(func() { h.srv.Close() })
	w := &syncWorld{h: h, admin: h.MustAdmin().Token}
	h.Do(request{Method: "POST", Path: "/api/v1/admin/pools", Token: w.admin,
		Body: api.PoolInput{Name: "Frankfurt", Region: "eu-central", Country: "DE", City: "Frankfurt"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &w.pool)
	w.node, w.nodeToken = w.enroll(t, w.pool.ID, "node-1")
	if rev, err := h.store.Revision(context.Background()); err != nil || rev != 0 {
		t.Fatalf("revision = %d, %v; the test needs an installation at 0", rev, err)
	}

	get := func(query string) (api.PeersResponse, time.Duration) {
		t.Helper()
		start := time.Now()
		var pr api.PeersResponse
		h.Do(request{Method: "GET", Path: "/agent/v1/peers?" + query, Token: w.nodeToken}).
			MustStatus(t, http.StatusOK).MustDecode(t, &pr)
		return pr, time.Since(start)
	}

	// A snapshot when asked for, at once.
	snap, took := get("full=true")
	if !snap.Full || snap.Revision != 0 || len(snap.Upserts) != 0 || took > longPoll/2 {
		t.Errorf("full=true = %+v after %v; want an empty snapshot at revision 0 at once", snap, took)
	}
	if snap, _ = get("since=7&full=true"); !snap.Full {
		t.Errorf("full=true with a since = %+v; want a snapshot", snap)
	}
	// since=0 at revision 0 waits out the long poll: nothing changed.
	idle, took := get("since=0")
	if idle.Full || idle.Revision != 0 || len(idle.Upserts)+len(idle.Removes) != 0 || took < longPoll*9/10 {
		t.Errorf("since=0 at revision 0 = %+v after %v; want an empty answer at revision 0 after the %v long poll", idle, took, longPoll)
	}

	// The first change ends the wait with the whole set.
	type answer struct {
		pr   api.PeersResponse
		took time.Duration
	}
	done := make(chan answer, 1)
	go func() {
		pr, took := get("since=0")
		done <- answer{pr, took}
	}()
	time.Sleep(longPoll / 4)
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
	d := w.register(t)
	a := <-done
	if !a.pr.Full || a.pr.Revision == 0 || a.took >= longPoll {
		t.Errorf("since=0 across the first change = %+v after %v; want a snapshot before the long poll ends", a.pr, a.took)
	}
	// Once the installation has moved, since=0 is answered with the whole
	// set at once, as agents from before full=true expect.
	all, took := get("since=0")
	if !all.Full || len(all.Upserts) != 1 || all.Upserts[0].PublicKey != d.PublicKey || took > longPoll/2 {
		t.Errorf("since=0 after the first device = %+v after %v; want a snapshot holding it at once", all, took)
	}
	// A node at the current revision waits.
	if _, took := get("since=" + strconv.FormatInt(all.Revision, 10)); took < longPoll*9/10 {
		t.Errorf("since=current answered after %v; want a wait of the long poll", took)
	}

	for q, field := range map[string]string{"": "since", "since=-1": "since", "since=x": "since", "full=false": "since",
		"full=yes": "full", "since=0&full=2": "full"} {
		h.Do(request{Method: "GET", Path: "/agent/v1/peers?" + q, Token: w.nodeToken}).
			MustHaveError(t, wantErr{Status: http.StatusBadRequest, Code: api.CodeInvalidRequest, Field: field})
	}
}
