package controlplane

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is an in-memory rate limiter keyed by HMAC-SHA-256(salt, key).
// The salt is random, held only in memory and replaced every rotate
// interval, which also forgets every bucket: nothing about who called lives
// longer than that, and nothing is ever written to disk.
type limiter struct {
	mu      sync.Mutex
	salt    [32]byte
	born    time.Time
	rotate  time.Duration
	limit   rate.Limit
	burst   int
	buckets map[[32]byte]*rate.Limiter
	now     func() time.Time
}

// newLimiter allows burst events at once and then one per interval per key.
func newLimiter(interval time.Duration, burst int, rotate time.Duration, now func() time.Time) *limiter {
	l := &limiter{rotate: rotate, limit: rate.Every(interval), burst: burst, now: now}
	l.reset()
	return l
}

func (l *limiter) reset() {
	rand.Read(l.salt[:])
	l.born = l.now()
	l.buckets = make(map[[32]byte]*rate.Limiter)
}

// allow reports whether one more event for key is allowed now.
func (l *limiter) allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.born) >= l.rotate {
		l.reset()
	}
	m := hmac.New(sha256.New, l.salt[:])
	m.Write([]byte(key))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	b, ok := l.buckets[k]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[k] = b
	}
	return b.AllowN(now, 1)
}

// size reports how many keys are tracked (tests and metrics).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
