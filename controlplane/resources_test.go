package controlplane

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/testpg"
	"github.com/traceless-vpn/traceless/store"
)

// TestNodeLongPollCap: one node may hold NodeLongPolls long polls open;
// the next gets 429 rate_limited with a Retry-After, another node is not
// affected, and a slot frees when a poll ends. Before the cap, 500 polls
// on one node token were all held open.
func TestNodeLongPollCap(t *testing.T) {
	w := newSyncWorld(t, func(o *Options) { o.NodeLongPolls = 3 })
	rev := w.peers(t, w.nodeToken, 0).Revision
	path := fmt.Sprintf("/agent/v1/peers?since=%d", rev)
	var wg sync.WaitGroup
	statuses := make(chan int, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.DefaultClient.Do(mustReq(t, "GET", w.h.ts.URL+path, w.nodeToken))
			if err != nil {
				statuses <- 0
				return
			}
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	nodeID := w.node.NodeID
	deadline := time.Now().Add(5 * time.Second)
	for w.h.srv.polls.openFor(nodeID) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d polls open, want 3", w.h.srv.polls.openFor(nodeID))
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := w.h.Do(request{Method: "GET", Path: path, Token: w.nodeToken})
	r.MustHaveError(t, wantErr{http.StatusTooManyRequests, api.CodeRateLimited, ""})
	if got := r.Header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After = %q, want 5", got)
	}
	// Another node polls as usual (a snapshot at once).
	_, other := w.enroll(t, w.pool.ID, "node-2")
	w.peers(t, other, 0)

	wg.Wait() // the long polls end (LongPoll is 2 s here)
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Errorf("a long poll within the cap answered %d", s)
		}
	}
	w.h.Do(request{Method: "GET", Path: "/agent/v1/peers?full=true", Token: w.nodeToken}).MustStatus(t, http.StatusOK)
	// A handler releases its slot just after its answer is written.
	deadline = time.Now().Add(5 * time.Second)
	for w.h.srv.polls.nodes() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the poll map keeps %d nodes after their polls ended", w.h.srv.polls.nodes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	metrics := string(w.h.Do(request{Method: "GET", Path: "/metrics"}).Body)
	if !strings.Contains(metrics, "traceless_node_long_polls_refused_total 1\n") {
		t.Errorf("metrics do not count the refused poll:\n%s", grepLines(metrics, "traceless_node"))
	}
}

// TestLimiterMaxKeys: a limiter holds at most maxKeys keys; a new key
// evicts the oldest, whose next event starts afresh; evictions are
// counted, and the metrics show them without naming a key.
func TestLimiterMaxKeys(t *testing.T) {
	clock := newTestClock(harnessStart)
	l := newLimiter(time.Hour, 1, 24*time.Hour, clock.Now)
	if l.maxKeys != 65536 {
		t.Errorf("maxKeys = %d, want 65,536", l.maxKeys)
	}
	l.maxKeys = 3
	for _, k := range []string{"a", "b", "c"} {
		if !l.allow(k) || l.allow(k) {
			t.Fatalf("%s: burst of 1 not kept", k)
		}
	}
	if !l.allow("d") { // evicts a
		t.Fatal("a new key refused while the limiter is full")
	}
	if l.size() != 3 || l.evicted.Load() != 1 {
		t.Fatalf("size %d, evicted %d; want 3, 1", l.size(), l.evicted.Load())
	}
	if !l.allow("a") { // a starts afresh, evicting b
		t.Error("the evicted key is still limited")
	}
	if l.allow("c") || l.allow("d") {
		t.Error("keys still tracked lost their state")
	}
	for i := range 1000 {
		l.allow(fmt.Sprint("flood", i))
	}
	if l.size() != 3 || l.evicted.Load() != 1002 {
		t.Errorf("after a flood: size %d, evicted %d; want 3, 1002", l.size(), l.evicted.Load())
	}

	// Through the server: a flood of signup addresses stays within the cap.
	h := newHarness(t)
	h.srv.signupIP.maxKeys = 10
	for i := range 25 {
		h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", RemoteAddr: fmt.Sprintf("198.51.100.%d:1000", i+1),
			Body: api.Credentials{Email: "x", Password: "y"}})
	}
	if n := h.srv.signupIP.size(); n != 10 {
		t.Errorf("signup limiter holds %d keys, want 10", n)
	}
	metrics := string(h.Do(request{Method: "GET", Path: "/metrics"}).Body)
	if !strings.Contains(metrics, "traceless_ratelimit_keys_evicted_total 15\n") {
		t.Errorf("metrics do not count 15 evictions:\n%s", grepLines(metrics, "traceless_ratelimit"))
	}
	if strings.Contains(metrics, "198.51.100.") {
		t.Error("metrics name a client address")
	}
}

// TestListenWatchLogsOnce: a LISTEN that keeps failing is logged once, its
// recovery once, and every failed attempt is counted.
func TestListenWatchLogsOnce(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t)
	w := &listenWatch{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	for range 5 {
		w.failed(errors.New("dial tcp 127.0.0.1:5432: connect: connection refused"))
	}
	w.connected()
	w.connected()
	w.failed(errors.New("again"))
	lines := MustParseLogLines(t, buf.String())
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l["msg"].(string))
	}
	if len(msgs) != 3 || !strings.HasPrefix(msgs[0], "sync listen failed") || msgs[1] != "sync listen works again" ||
		!strings.HasPrefix(msgs[2], "sync listen failed") {
		t.Errorf("log lines %q; want failed, works again, failed", msgs)
	}
	if w.failures.Load() != 6 {
		t.Errorf("failures = %d, want 6", w.failures.Load())
	}
	if w.reconnects.Load() != 1 { // every connection after the first
		t.Errorf("reconnects = %d, want 1", w.reconnects.Load())
	}
	w.connected()
	if w.reconnects.Load() != 2 {
		t.Errorf("reconnects = %d, want 2", w.reconnects.Load())
	}
	h.srv.listenWatch.failed(errors.New("x"))
	h.srv.listenWatch.failed(errors.New("x"))
	metrics := string(h.Do(request{Method: "GET", Path: "/metrics"}).Body)
	if !strings.Contains(metrics, "traceless_sync_listen_failures_total 2\n") {
		t.Errorf("metrics:\n%s", grepLines(metrics, "traceless_sync"))
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// nodes is how many nodes have polls open.
func (p *nodePolls) nodes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.open)
}

// openFor is how many polls node has open.
func (p *nodePolls) openFor(node string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open[node]
}

// TestListenReconnectSeen: on PostgreSQL, when the replica's LISTEN
// connection is terminated, the replica logs that it failed and that it
// works again (with how long it was away, and no other attribute than the
// error), and /metrics shows the reconnection.
func TestListenReconnectSeen(t *testing.T) {
	dsn := testpg.Database(t)
	st, err := store.Open(context.Background(), store.Config{Driver: store.DriverPostgres, DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := newHarness(t, func(o *Options) { o.Store = st })
	metric := func(name string) string {
		for _, l := range strings.Split(string(h.Do(request{Method: "GET", Path: "/metrics"}).Body), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				return v
			}
		}
		return ""
	}
	waitMetric := func(name, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for metric(name) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %q; want %s", name, metric(name), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitMetric("traceless_sync_listen_up", "1")
	if got := metric("traceless_sync_listen_reconnects_total"); got != "0" {
		t.Fatalf("reconnects before any break = %q", got)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminated %d LISTEN backends, %v; want 1", killed, err)
	}
	waitMetric("traceless_sync_listen_reconnects_total", "1")
	waitMetric("traceless_sync_listen_up", "1")
	var msgs []string
	for _, l := range MustParseLogLines(t, h.logs.String()) {
		msg, _ := l["msg"].(string)
		if !strings.HasPrefix(msg, "sync listen") {
			continue
		}
		msgs = append(msgs, msg)
		for k := range l {
			switch k {
			case "time", "level", "msg", logError, logDuration:
			default:
				t.Errorf("%q logs attribute %q", msg, k)
			}
		}
		if msg == "sync listen works again" {
			if _, ok := l[logDuration].(float64); !ok {
				t.Errorf("%q without %s: %v", msg, logDuration, l)
			}
		}
	}
	if len(msgs) != 2 || !strings.HasPrefix(msgs[0], "sync listen failed") || msgs[1] != "sync listen works again" {
		t.Errorf("log lines %q; want failed, works again", msgs)
	}
}
