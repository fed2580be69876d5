package store

import (
	"sync"
	"sync/atomic"
)

// A commit hook learns of every committed write. Node sync needs each
// revision the moment it commits: a revision that is never announced
// stalls every node's delta for two seconds and then costs them a full
// snapshot. Announcing from the store, where the transaction commits,
// means no caller can forget it.

// commitHooks holds the hooks. Commits read the list without a lock; the
// rare OnCommit and removal copy it.
type commitHooks struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*commitHook]
}

type commitHook struct{ fn func(Change) }

// OnCommit adds fn to the functions called after every write the store
// commits, with what the write changed for node sync: a Change with a
// Revision when nodes must learn of it, an empty Change otherwise. fn
// runs in the writing goroutine after the commit and before the write
// method returns, so a caller that sees the write return knows fn has
// seen its change. Commits may reach fn out of revision order. fn must
// not write to the store. The returned function removes fn.
func (s *Store) OnCommit(fn func(Change)) (remove func()) {
	h := &commitHook{fn: fn}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	var next []*commitHook
	if cur := s.hooks.list.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, h)
	s.hooks.list.Store(&next)
	return func() {
		s.hooks.mu.Lock()
		defer s.hooks.mu.Unlock()
		cur := s.hooks.list.Load()
		if cur == nil {
			return
		}
		var kept []*commitHook
		for _, o := range *cur {
			if o != h {
				kept = append(kept, o)
			}
		}
		s.hooks.list.Store(&kept)
	}
}

// committed hands a committed write's change to the hooks.
func (s *Store) committed(ch Change) {
	list := s.hooks.list.Load()
	if list == nil {
		return
	}
	for _, h := range *list {
		h.fn(ch)
	}
}
