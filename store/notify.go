package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// syncChannel is the PostgreSQL channel on which replicas tell each other
// of committed changes.
const syncChannel = "traceless_sync"

// MaxNotifyPayload is the largest payload Notify sends; PostgreSQL's limit
// is 8000 bytes.
const MaxNotifyPayload = 7900

// Shared reports whether other control-plane replicas may write to the same
// database (PostgreSQL), so changes must be announced with Notify.
func (s *Store) Shared() bool { return s.driver == DriverPostgres }

// Notify announces payload to every replica listening (itself included).
// It is a no-op on SQLite, which has one writer process.
func (s *Store) Notify(ctx context.Context, payload string) error {
	if !s.Shared() {
		return nil
	}
	if len(payload) > MaxNotifyPayload {
		return fmt.Errorf("notify: payload of %d bytes is over the limit", len(payload))
	}
	return translate(s.w.WithContext(ctx).Exec(`SELECT pg_notify(?, ?)`, syncChannel, payload).Error)
}

// Listen calls fn with every payload announced by Notify until ctx ends,
// reconnecting after errors. connected is called each time the listener
// (re)connects: announcements made while it was away are lost, and the
// caller must treat that as a gap. failed is called with the error of each
// attempt that fails or connection that breaks, before the retry. It
// returns at once on SQLite.
//
// Retries wait ListenRetryMin, doubling up to ListenRetryMax; a connection
// that worked starts the wait over at ListenRetryMin, so a LISTEN that
// breaks now and then (a PostgreSQL restart, a terminated backend) comes
// back within ListenRetryMin of the database answering again, not after
// the longest wait of an outage long past.
func (s *Store) Listen(ctx context.Context, connected func(), failed func(error), fn func(payload string)) {
	if !s.Shared() {
		return
	}
	backoff := ListenRetryMin
	for ctx.Err() == nil {
		worked, err := s.listenOnce(ctx, connected, fn)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failed(err) // the caller learns of the gap through connected
		}
		if worked {
			backoff = ListenRetryMin
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, ListenRetryMax)
	}
}

// The waits between LISTEN attempts.
const (
	ListenRetryMin = 100 * time.Millisecond
	ListenRetryMax = 2 * time.Second
)

// listenOnce listens on one connection until it breaks, and reports
// whether it got as far as listening.
func (s *Store) listenOnce(ctx context.Context, connected func(), fn func(string)) (bool, error) {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+syncChannel); err != nil {
		return false, err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		fn(n.Payload)
	}
}

// Leadership reports whether this replica leads work that exactly one
// replica must do (such as watching node health for alerts). On SQLite the
// one process always leads. On PostgreSQL the leader holds a session
// advisory lock on a connection of its own; when that replica dies the
// lock is released and another takes over within a few seconds.
type Leadership struct {
	leading atomic.Bool
}

// Leading reports whether this replica leads now.
func (l *Leadership) Leading() bool { return l.leading.Load() }

// Lead starts competing for the named role until ctx ends.
func (s *Store) Lead(ctx context.Context, role string) *Leadership {
	l := &Leadership{}
	if !s.Shared() {
		l.leading.Store(true)
		return l
	}
	h := fnv.New64a()
	h.Write([]byte("traceless:" + role))
	key := int64(h.Sum64())
	go func() {
		for ctx.Err() == nil {
			s.holdLock(ctx, key, l)
			l.leading.Store(false)
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}()
	return l
}

// holdLock takes the advisory lock if it is free and keeps its
// connection alive for as long as the lock is held.
func (s *Store) holdLock(ctx context.Context, key int64, l *Leadership) {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil || !got {
		return
	}
	l.leading.Store(true)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := conn.Ping(ctx); err != nil {
				return
			}
		}
	}
}
