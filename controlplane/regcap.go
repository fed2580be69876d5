package controlplane

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// An app's owner may cap the registrations made per hour with the app's
// publishable keys, so that a key extracted from the app binary cannot fill
// the plan in one go. The cap counts in fixed clock hours, in memory, per
// replica: with N replicas behind a load balancer an app may register up
// to N times its cap in an hour (set the cap accordingly). What the owner
// sees is how many registrations the cap refused — a count kept in the
// database, added to every sweep — never who was refused or when.

// regCap counts each app's publishable-key registrations in the current
// hour, and the refusals not yet written to the store.
type regCap struct {
	mu      sync.Mutex
	windows map[string]*capWindow // by app ID
	hits    map[string]int64      // refusals by app ID, not yet stored
}

type capWindow struct {
	hour time.Time
	n    int
}

func newRegCap() *regCap {
	return &regCap{windows: map[string]*capWindow{}, hits: map[string]int64{}}
}

// maxCapWindows bounds the windows held; beyond it, past hours are dropped.
const maxCapWindows = 100_000

// reserve takes one of the app's limit registrations of the hour at now.
// When the hour's are used up it counts a refusal and returns how long
// until the next hour. A reservation whose registration fails is given
// back with release.
func (r *regCap) reserve(appID string, limit int, now time.Time) (bool, time.Duration) {
	hour := now.Truncate(time.Hour)
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.windows[appID]
	if w == nil || !w.hour.Equal(hour) {
		if w == nil && len(r.windows) >= maxCapWindows {
			for id, old := range r.windows {
				if !old.hour.Equal(hour) {
					delete(r.windows, id)
				}
			}
		}
		w = &capWindow{hour: hour}
		r.windows[appID] = w
	}
	if w.n >= limit {
		r.hits[appID]++
		return false, hour.Add(time.Hour).Sub(now)
	}
	w.n++
	return true, 0
}

// release gives back a reservation of the hour at now.
func (r *regCap) release(appID string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.windows[appID]; w != nil && w.hour.Equal(now.Truncate(time.Hour)) && w.n > 0 {
		w.n--
	}
}

// takeHits returns the refusals counted since the last call and forgets
// them.
func (r *regCap) takeHits() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.hits) == 0 {
		return nil
	}
	h := r.hits
	r.hits = map[string]int64{}
	return h
}

// putBackHits re-adds refusals that could not be stored.
func (r *regCap) putBackHits(h map[string]int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range h {
		r.hits[id] += n
	}
}

// credentialSweepEvery is how often expired registration tickets are
// purged and the cap's refusals stored.
const credentialSweepEvery = 30 * time.Second

// sweepCredentials purges expired tickets and stores the cap's refusals
// every interval until ctx ends, and stores the last refusals then.
func (s *Server) sweepCredentials(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushCapHits(context.Background())
			return
		case <-t.C:
			s.sweepCredentialsOnce(ctx)
		}
	}
}

// sweepCredentialsOnce stores the cap's refusals and purges the tickets
// expired now.
func (s *Server) sweepCredentialsOnce(ctx context.Context) {
	s.flushCapHits(ctx)
	if _, err := s.store.PurgeExpiredTickets(ctx, s.now()); err != nil && ctx.Err() == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "purge registration tickets", slog.String(logError, err.Error()))
	}
}

// flushCapHits adds the refusals counted in memory to the apps' counts.
func (s *Server) flushCapHits(ctx context.Context) {
	h := s.regCap.takeHits()
	if h == nil {
		return
	}
	if err := s.store.AddRegistrationCapHits(ctx, h); err != nil {
		s.regCap.putBackHits(h)
		if ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "store registration cap refusals", slog.String(logError, err.Error()))
		}
	}
}
