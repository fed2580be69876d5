package controlplane

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// limiter is an in-memory rate limiter keyed by HMAC-SHA-256(salt, key).
// The salt is random, held only in memory and replaced every rotate
// interval, which also forgets every bucket: nothing about who called lives
// longer than that, and nothing is ever written to disk.
//
// It tracks at most maxKeys keys. When it is full, a new key evicts the
// oldest one, whose next event starts with a full bucket again. Refusing
// new keys instead would let a flood of addresses lock out everyone else;
// evicting costs only this: a caller who already holds maxKeys addresses
// can spread over them, which it could do anyway. Evictions are counted
// (traceless_ratelimit_keys_evicted_total), not logged, and the count names
// nobody.
type limiter struct {
	mu      sync.Mutex
	salt    [32]byte
	born    time.Time
	rotate  time.Duration
	limit   rate.Limit
	burst   int
	buckets map[[32]byte]*rate.Limiter
	order   [][32]byte // keys in insertion order, a ring of up to maxKeys
	head    int        // the oldest key in order, once it is full
	maxKeys int
	evicted atomic.Int64
	now     func() time.Time
}

// limiterMaxKeys bounds each limiter's map: 65,536 keys, a few MiB.
const limiterMaxKeys = 1 << 16

// newLimiter allows burst events at once and then one per interval per key.
func newLimiter(interval time.Duration, burst int, rotate time.Duration, now func() time.Time) *limiter {
	l := &limiter{rotate: rotate, limit: rate.Every(interval), burst: burst, now: now, maxKeys: limiterMaxKeys}
	l.reset()
	return l
}

func (l *limiter) reset() {
	rand.Read(l.salt[:])
	l.born = l.now()
	l.buckets = make(map[[32]byte]*rate.Limiter)
	l.order, l.head = nil, 0
}

// add tracks a new key, evicting the oldest when the limiter is full.
func (l *limiter) add(k [32]byte, b *rate.Limiter) {
	if len(l.order) < l.maxKeys {
		l.order = append(l.order, k)
	} else {
		delete(l.buckets, l.order[l.head])
		l.evicted.Add(1)
		l.order[l.head] = k
		l.head = (l.head + 1) % len(l.order)
	}
	l.buckets[k] = b
}

// take reports whether one more event for key is allowed now and, when it
// is not, how long until it would be: the time the bucket needs to refill
// one token, or the time to the next salt rotation (which forgets every
// bucket) when that comes first. A refused event takes no token.
func (l *limiter) take(key string) (bool, time.Duration) {
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
		l.add(k, b)
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	wait := l.born.Add(l.rotate).Sub(now)
	if l.limit > 0 {
		need := 1 - b.TokensAt(now)
		wait = min(wait, time.Duration(need/float64(l.limit)*float64(time.Second)))
	}
	return false, wait
}

// retryAfter is the Retry-After value for a wait: whole seconds, rounded
// up, at least 1.
func retryAfter(wait time.Duration) string {
	return strconv.FormatInt(max(int64((wait+time.Second-1)/time.Second), 1), 10)
}

// checkRate spends one event of key from l: nil when allowed, otherwise
// 429 rate_limited with a Retry-After header saying when to try again.
func checkRate(c echo.Context, l *limiter, key string) error {
	if l == nil {
		return nil // the limit is turned off
	}
	ok, wait := l.take(key)
	if ok {
		return nil
	}
	c.Response().Header().Set(echo.HeaderRetryAfter, retryAfter(wait))
	return errRateLimited
}

// size reports how many keys are tracked (tests and metrics).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
