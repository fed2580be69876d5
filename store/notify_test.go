package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/postgres"
)

// TestLeadership: on PostgreSQL exactly one of two replicas leads, and the
// other takes over when the leader goes away; on SQLite the one process
// always leads.
func TestLeadership(t *testing.T) {
	sqlite := MustOpen(t, sqliteConfig(t))
	if l := sqlite.Lead(context.Background(), "x"); !l.Leading() {
		t.Error("SQLite store does not lead")
	}

	cfg := postgresConfig(t)
	a, b := MustOpen(t, cfg), MustOpen(t, cfg)
	ctxA, stopA := context.WithCancel(context.Background())
	defer stopA()
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	la := a.Lead(ctxA, "alerts")
	time.Sleep(500 * time.Millisecond)
	lb := b.Lead(ctxB, "alerts")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("a leader", func() bool { return la.Leading() || lb.Leading() })
	time.Sleep(time.Second)
	if la.Leading() == lb.Leading() {
		t.Fatalf("leading: a=%v b=%v; want exactly one", la.Leading(), lb.Leading())
	}
	if la.Leading() {
		stopA()
		waitFor("b to take over", lb.Leading)
	} else {
		stopB()
		waitFor("a to take over", la.Leading)
	}
}

// TestListenReportsFailures: when the LISTEN connection breaks and cannot
// come back, each failed attempt reaches failed; once connections are
// possible again, connected is called again.
func TestListenReportsFailures(t *testing.T) {
	cfg := postgresConfig(t)
	s := MustOpen(t, cfg)
	adb := mustGorm(t, postgres.Open(requirePostgres(t)))
	t.Cleanup(func() { closeGorm(adb) })
	u, err := url.Parse(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")

	var connects, failures atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Listen(ctx, func() { connects.Add(1) }, func(error) { failures.Add(1) }, func(string) {})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the listener", func() bool { return connects.Load() == 1 })

	// No new connections to the database, and the listener's own is ended.
	if err := adb.Exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS false").Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adb.Exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true") })
	if err := adb.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ? AND query LIKE 'LISTEN%'`, name).Error; err != nil {
		t.Fatal(err)
	}
	waitFor("three failed attempts", func() bool { return failures.Load() >= 3 })
	if n := connects.Load(); n != 1 {
		t.Errorf("connected %d times while connections were refused", n)
	}
	if err := adb.Exec("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true").Error; err != nil {
		t.Fatal(err)
	}
	waitFor("the listener to come back", func() bool { return connects.Load() == 2 })
}

// TestListenBackoffResets: a LISTEN connection that is broken again and
// again (each time after it came back) reconnects within a few hundred
// milliseconds every time. The wait between attempts starts over after a
// connection that worked; carried over, it would double with each break
// and the fifth would take 1.6 s.
func TestListenBackoffResets(t *testing.T) {
	cfg := postgresConfig(t)
	s := MustOpen(t, cfg)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	conns := make(chan time.Time, 16)
	var failures atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Listen(ctx, func() { conns <- time.Now() }, func(error) { failures.Add(1) }, func(string) {})
	}()
	defer func() { stop(); <-done }()
	waitConn := func(what string) time.Time {
		t.Helper()
		select {
		case at := <-conns:
			return at
		case <-time.After(10 * time.Second):
			t.Fatalf("LISTEN did not connect (%s)", what)
			return time.Time{}
		}
	}
	waitConn("first")
	const breaks = 7
	var took []time.Duration
	for i := range breaks {
		var killed int64
		start := time.Now()
		for killed == 0 {
			if err := s.w.Raw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND query = 'LISTEN ` + syncChannel + `' AND pid <> pg_backend_pid()`).Scan(&killed).Error; err != nil {
				t.Fatal(err)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("break %d: no LISTEN backend to terminate", i)
			}
		}
		at := waitConn(fmt.Sprintf("after break %d", i))
		took = append(took, at.Sub(start).Round(time.Millisecond))
	}
	// With the wait carried over, breaks 5 to 7 would each take 1.6 s or
	// more; one slow reconnect is allowed to a loaded machine.
	slow := 0
	for _, d := range took {
		if d > time.Second {
			slow++
		}
	}
	if slow > 1 {
		t.Errorf("LISTEN came back after %v; want each under 1s (%v between attempts after a connection that worked)", took, ListenRetryMin)
	}
	if got := failures.Load(); got < breaks {
		t.Errorf("failed was called %d times for %d breaks", got, breaks)
	}
}
