package controlplane

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// mustRateLimited fails unless r is 429 rate_limited with a Retry-After of
// want seconds.
func mustRateLimited(tb testing.TB, r response, want int) {
	tb.Helper()
	r.MustHaveError(tb, wantErr{Status: http.StatusTooManyRequests, Code: api.CodeRateLimited})
	got := r.Header.Get("Retry-After")
	n, err := strconv.Atoi(got)
	if err != nil || n < 1 {
		tb.Fatalf("Retry-After = %q; want whole seconds >= 1", got)
	}
	if n != want {
		tb.Errorf("Retry-After = %d, want %d", n, want)
	}
}

// TestKeyRateLimit: each API key has its own bucket (burst 4x the rate,
// plus one); a key over it gets 429 with Retry-After while another key of
// the same app, from the same address, still works; the key recovers as
// the clock moves.
func TestKeyRateLimit(t *testing.T) {
	w := newProvWorld(t, func(o *Options) { o.KeyRate = 5 })
	var other api.APIKeyCreated
	w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/apps/" + w.appID + "/keys", Token: w.owner.Token, Body: api.APIKeyInput{Name: "other"}}).
		MustStatus(t, http.StatusCreated).MustDecode(t, &other)
	const addr = "192.0.2.55:1000"
	call := func(key string) response {
		return w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/servers", Token: key, RemoteAddr: addr})
	}
	const burst = 4*5 + 1
	for i := range burst {
		if r := call(w.key); r.Status != http.StatusOK {
			t.Fatalf("call %d of the burst: status %d; body %s", i+1, r.Status, r.Body)
		}
	}
	mustRateLimited(t, call(w.key), 1) // one token every 200ms: retry in (rounded up) 1s
	// Writes count against the same bucket, and a refused one writes nothing.
	before := mustRows(t, w.h, w.owner.Owner.ID)
	mustRateLimited(t, w.h.Serve(request{Method: http.MethodPost, Path: "/api/v1/devices", Token: w.key, RemoteAddr: addr,
		Body: api.DeviceInput{PublicKey: fixedKey("limited")}}), 1)
	mustNotChange(t, before, mustRows(t, w.h, w.owner.Owner.ID))

	// Another key of the same app, from the same address, is unaffected.
	for range 3 {
		call(other.Key).MustStatus(t, http.StatusOK)
	}
	// A bad key is 401, not 429: the limit applies after authentication.
	call("tlk_"+fmt.Sprintf("%043d", 0)).MustHaveError(t, wantErr{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized})

	// 200ms refills one token: exactly one more call.
	w.h.clock.Advance(200 * time.Millisecond)
	call(w.key).MustStatus(t, http.StatusOK)
	mustRateLimited(t, call(w.key), 1)
	// Waiting out the Retry-After always works.
	w.h.clock.Advance(time.Second)
	call(w.key).MustStatus(t, http.StatusOK)
	// A full refill gives the whole burst back.
	w.h.clock.Advance(time.Minute)
	for i := range burst {
		if r := call(w.key); r.Status != http.StatusOK {
			t.Fatalf("call %d after the refill: status %d", i+1, r.Status)
		}
	}
	mustRateLimited(t, call(w.key), 1)
}

// TestKeyRateLimitSlowRate: a rate below one per second makes Retry-After
// longer than a second, and it shrinks as the bucket refills.
func TestKeyRateLimitSlowRate(t *testing.T) {
	w := newProvWorld(t, func(o *Options) { o.KeyRate = 0.1 }) // one per 10s, burst 1
	call := func() response {
		return w.h.Serve(request{Method: http.MethodGet, Path: "/api/v1/servers", Token: w.key})
	}
	call().MustStatus(t, http.StatusOK)
	mustRateLimited(t, call(), 10)
	w.h.clock.Advance(2500 * time.Millisecond)
	mustRateLimited(t, call(), 8) // 7.5s left, rounded up
	w.h.clock.Advance(7 * time.Second)
	mustRateLimited(t, call(), 1) // 0.5s left
	w.h.clock.Advance(500 * time.Millisecond)
	call().MustStatus(t, http.StatusOK)
}

// TestRetryAfter: every limiter's 429 says when to come back, and coming
// back then works.
func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		burst int
		after int // Retry-After when the burst is spent, in seconds
		// send sends attempt i; ok is the status of an attempt that the
		// limiter lets through.
		send func(h *harness, i int) response
		ok   int
	}{
		{
			name: "login per address", burst: 10, after: 6, ok: http.StatusUnauthorized,
			send: func(h *harness, i int) response {
				return h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: "192.0.2.60:1",
					Body: api.Credentials{Email: fmt.Sprintf("nobody%d@example.com", i), Password: testPassword}})
			},
		},
		{
			name: "login per email", burst: 5, after: 12, ok: http.StatusUnauthorized,
			send: func(h *harness, i int) response { // a fresh address each time
				return h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login",
					Body: api.Credentials{Email: "target@example.com", Password: testPassword}})
			},
		},
		{
			name: "signup per address", burst: 5, after: 30, ok: http.StatusCreated,
			send: func(h *harness, i int) response {
				return h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", RemoteAddr: "192.0.2.61:1",
					Body: api.Credentials{Email: h.NewEmail(), Password: testPassword}})
			},
		},
		{
			name: "enroll per address", burst: 10, after: 6, ok: http.StatusUnauthorized,
			send: func(h *harness, i int) response {
				return h.Serve(request{Method: http.MethodPost, Path: "/agent/v1/enroll", RemoteAddr: "192.0.2.62:1",
					Body: api.EnrollRequest{Token: "tle_unknown", Name: "n", PublicKey: fixedKey("enroll"), Endpoint: "node.example.net:51820"}})
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			for i := range tc.burst {
				h.clock.Advance(time.Millisecond) // refills nothing of note
				tc.send(h, i).MustStatus(t, tc.ok)
			}
			n := tc.burst
			mustRateLimited(t, tc.send(h, n), tc.after)
			n++
			// Partway through the wait, Retry-After is what remains.
			h.clock.Advance(time.Duration(tc.after) * time.Second / 2)
			mustRateLimited(t, tc.send(h, n), (tc.after+1)/2)
			n++
			// Just before the time it named: still refused; at it: allowed.
			h.clock.Advance(time.Duration(tc.after)*time.Second - time.Duration(tc.after)*time.Second/2 - 2*time.Second)
			r := tc.send(h, n)
			n++
			if r.Status != http.StatusTooManyRequests {
				t.Fatalf("before the Retry-After passed: status %d", r.Status)
			}
			wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			h.clock.Advance(time.Duration(wait) * time.Second)
			tc.send(h, n).MustStatus(t, tc.ok)
		})
	}
}

// TestLimiterTake checks the delay the limiter computes.
func TestLimiterTake(t *testing.T) {
	clock := newTestClock(harnessStart)
	l := newLimiter(4*time.Second, 2, time.Hour, clock.Now)
	for range 2 {
		if ok, wait := l.take("k"); !ok || wait != 0 {
			t.Fatalf("within the burst: take = %v, %v", ok, wait)
		}
	}
	if ok, wait := l.take("k"); ok || wait != 4*time.Second {
		t.Errorf("past the burst: take = %v, %v; want false, 4s", ok, wait)
	}
	// A refused event takes no token: the wait does not grow.
	if ok, wait := l.take("k"); ok || wait != 4*time.Second {
		t.Errorf("again: take = %v, %v; want false, 4s", ok, wait)
	}
	clock.Advance(time.Second)
	if ok, wait := l.take("k"); ok || wait != 3*time.Second {
		t.Errorf("a second later: take = %v, %v; want false, 3s", ok, wait)
	}
	if ok, _ := l.take("other"); !ok {
		t.Error("another key is refused")
	}

	// The salt rotation forgets every bucket, so the wait never runs past it.
	slow := newLimiter(time.Hour, 1, 10*time.Minute, clock.Now)
	slow.take("k")
	if ok, wait := slow.take("k"); ok || wait != 10*time.Minute {
		t.Errorf("refill after the rotation: take = %v, %v; want false, 10m", ok, wait)
	}
	clock.Advance(10 * time.Minute)
	if ok, _ := slow.take("k"); !ok {
		t.Error("refused after the rotation")
	}

	for _, tc := range []struct {
		wait time.Duration
		want string
	}{{0, "1"}, {time.Nanosecond, "1"}, {time.Second, "1"}, {time.Second + time.Nanosecond, "2"}, {200 * time.Millisecond, "1"}, {90 * time.Second, "90"}} {
		if got := retryAfter(tc.wait); got != tc.want {
			t.Errorf("retryAfter(%v) = %q, want %q", tc.wait, got, tc.want)
		}
	}
}

// TestOpenAPIRetryAfter: the contract documents the header on every 429.
func TestOpenAPIRetryAfter(t *testing.T) {
	h := newHarness(t)
	r := h.Serve(request{Method: http.MethodGet, Path: "/api/v1/openapi.json"}).MustStatus(t, http.StatusOK)
	doc, err := openapi3.NewLoader().LoadFromData(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp := doc.Components.Responses["TooManyRequests"]
	if resp == nil || resp.Value == nil {
		t.Fatal("no TooManyRequests response in the document")
	}
	hdr := resp.Value.Headers["Retry-After"]
	if hdr == nil || hdr.Value == nil || !hdr.Value.Required || hdr.Value.Schema == nil || hdr.Value.Schema.Value == nil ||
		!hdr.Value.Schema.Value.Type.Is("integer") {
		t.Errorf("TooManyRequests has no required integer Retry-After header: %+v", resp.Value.Headers)
	}
}
