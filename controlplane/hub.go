package controlplane

import (
	"context"
	"sync"
	"time"

	"github.com/traceless-vpn/traceless/store"
)

// hub orders device changes for node sync. Every store write that bumps
// the global revision is published here after it commits; commits may
// publish out of order, so the hub tracks the highest revision up to which
// every change is known ("cur"). A node asking for changes since R is
// answered from the database for upserts and from the in-memory ring for
// removals — nothing about a deleted device is kept on disk. The ring is
// bounded; a node asking about revisions older than the ring covers (or
// any revision when the server just started) gets a full snapshot, so no
// node can miss a change. A node at the current revision waits, revision
// 0 included.
type hub struct {
	mu      sync.Mutex
	cur     int64           // every revision <= cur is published
	oldest  int64           // the ring answers deltas for since >= oldest
	pending map[int64]event // published revisions above cur
	gapSeen map[int64]time.Time
	ring    []event       // removal and resync events in (oldest, cur]
	ringN   int           // removed keys held in the ring
	ringMax int           // bound on ringN
	wake    chan struct{} // closed when cur advances
	now     func() time.Time
	dbRev   func(context.Context) (int64, error)
}

// event is what a node needs to know about one revision beyond the rows.
type event struct {
	rev     int64
	ownerID string   // owner of the removed devices
	removed []string // public keys to drop
	resync  []string // pools whose nodes must take a full snapshot
	all     bool     // every node must take a full snapshot
}

// gapGrace is how long a missing revision may stay unpublished (a commit
// whose publisher crashed, or a write by another replica) before the hub
// stops waiting for it and answers older sinces with full snapshots.
const gapGrace = 2 * time.Second

func newHub(start int64, ringMax int, now func() time.Time, dbRev func(context.Context) (int64, error)) *hub {
	return &hub{cur: start, oldest: start, pending: map[int64]event{}, gapSeen: map[int64]time.Time{},
		ringMax: ringMax, wake: make(chan struct{}), now: now, dbRev: dbRev}
}

// publish records a committed change.
func (h *hub) publish(ch store.Change) {
	if ch.Revision == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch.Revision <= h.cur {
		return // already covered (a gap was skipped past it)
	}
	h.pending[ch.Revision] = event{rev: ch.Revision, ownerID: ch.OwnerID, removed: ch.Removed, resync: ch.Resync}
	h.advanceLocked()
}

// advanceLocked moves cur over every contiguous pending revision.
func (h *hub) advanceLocked() {
	moved := false
	for {
		e, ok := h.pending[h.cur+1]
		if !ok {
			break
		}
		delete(h.pending, h.cur+1)
		delete(h.gapSeen, h.cur+1)
		h.cur++
		moved = true
		if len(e.removed) > 0 || len(e.resync) > 0 || e.all {
			h.ring = append(h.ring, e)
			h.ringN += len(e.removed) + 1
		}
	}
	for h.ringN > h.ringMax && len(h.ring) > 0 {
		h.oldest = h.ring[0].rev
		h.ringN -= len(h.ring[0].removed) + 1
		h.ring = h.ring[1:]
	}
	if moved {
		close(h.wake)
		h.wake = make(chan struct{})
	}
}

// publishLost records a revision whose removals are unknown here (another
// replica's change too large to announce): nodes resync across it.
func (h *hub) publishLost(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev <= h.cur {
		return
	}
	h.pending[rev] = event{rev: rev, all: true}
	h.advanceLocked()
}

// skipGaps declares revisions that stayed unpublished past gapGrace lost:
// cur jumps over them and the ring can no longer answer deltas that span
// them. It also learns of revisions committed by other replicas.
func (h *hub) skipGaps(ctx context.Context) { h.skip(ctx, gapGrace) }

// skipMissed declares every revision committed up to now and not
// published lost at once. The replica's LISTEN has just connected again:
// announcements made while it was away will never arrive, so waiting
// gapGrace for them would only delay the first change after it.
func (h *hub) skipMissed(ctx context.Context) { h.skip(ctx, 0) }

// skipBelow declares every revision up to upTo (at most the database's)
// that is not published lost at once. A node asked for changes since
// upTo: it saw that revision on another replica, so everything up to it
// was committed, and what this replica has not heard of by now is an
// announcement lost with a replica that died between its commit and its
// announcement. Waiting gapGrace for it would hold the node back.
func (h *hub) skipBelow(ctx context.Context, upTo int64) { h.skipUpTo(ctx, 0, upTo) }

func (h *hub) skip(ctx context.Context, grace time.Duration) { h.skipUpTo(ctx, grace, -1) }

// skipUpTo declares the unpublished revisions up to the database's (and
// upTo, unless it is negative) that were first seen missing at least
// grace ago lost.
func (h *hub) skipUpTo(ctx context.Context, grace time.Duration, upTo int64) {
	rev, err := h.dbRev(ctx)
	if err != nil {
		return
	}
	if upTo >= 0 {
		rev = min(rev, upTo)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	for r := h.cur + 1; r <= rev; r++ {
		if _, ok := h.pending[r]; !ok {
			if _, seen := h.gapSeen[r]; !seen {
				h.gapSeen[r] = now
			}
		}
	}
	lost := false
	for r := h.cur + 1; r <= rev; r++ {
		if _, ok := h.pending[r]; ok {
			continue
		}
		if now.Sub(h.gapSeen[r]) < grace {
			break
		}
		// Lost: r is committed but its removals are unknown here, so
		// deltas across it cannot be answered from the ring.
		delete(h.gapSeen, r)
		h.pending[r] = event{rev: r}
		lost = true
	}
	if lost {
		h.advanceLocked()
		h.ring, h.ringN, h.oldest = nil, 0, h.cur
	}
}

// delta is the hub's part of an answer to "changes since R for pool P".
type delta struct {
	cur     int64
	full    bool
	removed []string
	wake    <-chan struct{}
}

// since reports, for a node of pool (dedicated to owner, or shared when
// owner is ""), whether since must be answered with a full snapshot and
// otherwise which keys to remove, up to cur.
func (h *hub) since(since int64, pool, owner string) delta {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := delta{cur: h.cur, wake: h.wake}
	// A node at revision 0 holds the empty set: it waits while the
	// installation is at 0 and takes a snapshot once it moves.
	if since < h.oldest || since > h.cur || (since == 0 && h.cur > 0) {
		d.full = true
		return d
	}
	for _, e := range h.ring {
		if e.rev <= since {
			continue
		}
		if e.all {
			d.full = true
			d.removed = nil
			return d
		}
		for _, p := range e.resync {
			if p == pool {
				d.full = true
				d.removed = nil
				return d
			}
		}
		if len(e.removed) > 0 && (owner == "" || owner == e.ownerID) {
			d.removed = append(d.removed, e.removed...)
		}
	}
	return d
}

// current returns cur.
func (h *hub) current() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// run skips lost revisions until ctx ends.
func (h *hub) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.skipGaps(ctx)
		}
	}
}
