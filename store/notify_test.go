package store

import (
	"context"
	"testing"
	"time"
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
