package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/controlplane/client"
	"github.com/traceless-vpn/traceless/store"
)

// propagationTarget is the p99 time from a registration's answer to the
// peer on the node (BENCHMARKS.md, "Propagation").
const propagationTarget = 250 * time.Millisecond

// realCP is the real control plane on 127.0.0.1 over a fresh SQLite
// store, counting the agent requests it serves.
type realCP struct {
	srv      *controlplane.Server
	store    *store.Store
	url      string
	admin    *client.Client
	peerReqs atomic.Int64
	statuses atomic.Int64
}

func newRealCP(t *testing.T, longPoll time.Duration) *realCP {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "traceless.db")})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := controlplane.New(controlplane.Options{
		Store:    st,
		Logger:   slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Argon2:   controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1},
		LongPoll: longPoll,
		KeyRate:  -1,
		Version:  "test",
	})
	if err != nil {
		t.Fatalf("controlplane.New: %v", err)
	}
	cp := &realCP{srv: srv, store: st}
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /agent/v1/peers":
			cp.peerReqs.Add(1)
		case "POST /agent/v1/status":
			cp.statuses.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	// Close the listener first: it waits for the agent's long poll, which
	// the server's Close ends.
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(ts.Close)
	cp.url = ts.URL
	const email, password = "ops@example.com", "blue giraffe tangerine 42"
	if _, err := srv.Bootstrap(ctx, email, password, ts.URL); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	if cp.admin, err = client.New(ts.URL); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.admin.Login(ctx, email, password); err != nil {
		t.Fatalf("operator login: %v", err)
	}
	return cp
}

// TestIdleNodeLongPolls enrolls a real agent into a real control plane
// before any device exists (revision 0): it must wait in long polls, not
// fetch the empty snapshot in a loop, and still apply the first
// registered device at once.
func TestIdleNodeLongPolls(t *testing.T) {
	const longPoll = time.Second
	ctx := context.Background()
	cp := newRealCP(t, longPoll)
	pool, err := cp.admin.AdminCreatePool(ctx, api.PoolInput{Name: "Frankfurt", Region: "eu-central", Country: "DE", City: "Frankfurt"})
	if err != nil {
		t.Fatal(err)
	}
	et, err := cp.admin.AdminCreateEnrollmentToken(ctx, pool.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rev, err := cp.store.Revision(ctx); err != nil || rev != 0 {
		t.Fatalf("revision before the node starts = %d, %v; the test needs an installation at 0", rev, err)
	}

	h := newHarness(t, []string{cp.url}, func(o *Options) {
		o.EnrollToken = et.Token
		o.StatusInterval = longPoll
		o.AntiEntropyInterval = time.Minute
	})
	h.start()
	h.waitFor("the first status report", func() bool { return cp.statuses.Load() > 0 })

	// Idle: each long poll waits its period out.
	const periods = 3
	peers0, status0 := cp.peerReqs.Load(), cp.statuses.Load()
	time.Sleep(periods * longPoll)
	peers, statuses := cp.peerReqs.Load()-peers0, cp.statuses.Load()-status0
	t.Logf("idle for %d long-poll periods of %v: %d peer requests, %d status reports", periods, longPoll, peers, statuses)
	if peers > 2*periods || statuses > 2*periods {
		t.Errorf("idle node made %d peer requests and %d status reports in %d long-poll periods; want at most %d of each",
			peers, statuses, periods, 2*periods)
	}

	// The first device reaches the node within the propagation target.
	// Granting the pool and setting up the owner move the revision too.
	plans, err := cp.admin.AdminPlans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range plans {
		if p.Slug != "pro" {
			continue
		}
		in := api.PlanInput{Slug: p.Slug, Name: p.Name, MaxApps: p.MaxApps, MaxDevices: p.MaxDevices, MaxOwnNodes: p.MaxOwnNodes,
			PriceCents: p.PriceCents, Currency: p.Currency, Pools: []string{pool.ID}}
		if _, err := cp.admin.UpdatePlan(ctx, p.ID, in); err != nil {
			t.Fatal(err)
		}
	}
	owner, err := client.New(cp.url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Signup(ctx, "owner@example.com", "correct horse battery staple"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.ChangePlan(ctx, "pro"); err != nil {
		t.Fatal(err)
	}
	app, err := owner.CreateApp(ctx, "vpn")
	if err != nil {
		t.Fatal(err)
	}
	key, err := owner.CreateAPIKey(ctx, app.ID, "backend")
	if err != nil {
		t.Fatal(err)
	}
	apps, err := client.New(cp.url, client.WithAPIKey(key.Key))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the node waits in a long poll again
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	devKey := priv.PublicKey()
	if _, err := apps.RegisterDevice(ctx, api.DeviceInput{PublicKey: devKey.String()}); err != nil {
		t.Fatal(err)
	}
	registered := time.Now()
	h.waitFor("the device on the node", func() bool {
		d, err := h.fake.Device("tl0")
		if err != nil {
			return false
		}
		for _, p := range d.Peers {
			if p.PublicKey == devKey {
				return true
			}
		}
		return false
	})
	took := time.Since(registered)
	t.Logf("first device applied %v after its registration's answer", took)
	if took > propagationTarget {
		t.Errorf("first device applied %v after its registration; target %v", took, propagationTarget)
	}
}
