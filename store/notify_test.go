package store

import (
	"context"
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
