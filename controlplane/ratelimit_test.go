package controlplane

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

func TestLoginRateLimitPerAddress(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	h.MustSignup(email, testPassword)

	const attacker = "192.0.2.200:5555"
	// Each attempt names another email, so only the per-address limit counts.
	for i := range 10 {
		h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: attacker,
			Body: api.Credentials{Email: fmt.Sprintf("guess%d@example.com", i), Password: testPassword}}).
			MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
	}
	before := h.srv.hasher.verifies.Load()
	// Even the right password is refused now, and without hashing.
	r := h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: attacker, Body: api.Credentials{Email: email, Password: testPassword}})
	r.MustHaveError(t, wantErr{http.StatusTooManyRequests, api.CodeRateLimited, ""})
	if n := h.srv.hasher.verifies.Load() - before; n != 0 {
		t.Errorf("a rate-limited login ran %d verifications", n)
	}
	// Another address is not affected.
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: "192.0.2.201:5555", Body: api.Credentials{Email: email, Password: testPassword}}).
		MustStatus(t, http.StatusOK)
	// The port is not part of the key.
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: "192.0.2.200:6666", Body: api.Credentials{Email: email, Password: testPassword}}).
		MustHaveError(t, wantErr{http.StatusTooManyRequests, api.CodeRateLimited, ""})
	// After the refill interval one more attempt is allowed.
	h.clock.Advance(6 * time.Second)
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: attacker, Body: api.Credentials{Email: email, Password: testPassword}}).
		MustStatus(t, http.StatusOK)
}

func TestLoginRateLimitPerEmail(t *testing.T) {
	h := newHarness(t)
	email := h.NewEmail()
	h.MustSignup(email, testPassword)
	// Five wrong guesses from five addresses exhaust the email's budget.
	for range 5 {
		h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: email, Password: "wrong horse battery staple"}}).
			MustHaveError(t, wantErr{http.StatusUnauthorized, api.CodeUnauthorized, ""})
	}
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: strings.ToUpper(email), Password: testPassword}}).
		MustHaveError(t, wantErr{http.StatusTooManyRequests, api.CodeRateLimited, ""})
	h.MustLogin(h.MustOwner().Owner.Email, testPassword) // other accounts are fine
}

func TestSignupRateLimit(t *testing.T) {
	h := newHarness(t)
	const addr = "192.0.2.99:1000"
	for range 5 {
		h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", RemoteAddr: addr, Body: api.Credentials{Email: h.NewEmail(), Password: testPassword}}).
			MustStatus(t, http.StatusCreated)
	}
	n := h.OwnerCount()
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", RemoteAddr: addr, Body: api.Credentials{Email: h.NewEmail(), Password: testPassword}}).
		MustHaveError(t, wantErr{http.StatusTooManyRequests, api.CodeRateLimited, ""})
	if got := h.OwnerCount(); got != n {
		t.Errorf("a rate-limited signup created an account: %d owners, want %d", got, n)
	}
	h.MustOwner() // from another address
}

// TestRateLimitTrustedProxy: behind a trusted proxy the forwarded address
// is the key; from anywhere else X-Forwarded-For is ignored.
func TestRateLimitTrustedProxy(t *testing.T) {
	_, proxy, _ := net.ParseCIDR("10.9.0.0/16")
	h := newHarness(t, func(o *Options) { o.TrustedProxies = []*net.IPNet{proxy} })
	login := func(remote, xff string) response {
		return h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: remote,
			Header: map[string]string{"X-Forwarded-For": xff}, Body: api.Credentials{Email: h.NewEmail(), Password: testPassword}})
	}
	for range 10 {
		login("10.9.0.1:443", "198.51.100.7").MustStatus(t, http.StatusUnauthorized)
	}
	login("10.9.0.1:443", "198.51.100.7").MustStatus(t, http.StatusTooManyRequests)
	login("10.9.0.2:443", "198.51.100.7").MustStatus(t, http.StatusTooManyRequests) // another proxy, same client
	login("10.9.0.1:443", "198.51.100.8").MustStatus(t, http.StatusUnauthorized)    // another client
	// An untrusted peer cannot pick its key by sending X-Forwarded-For.
	for i := range 10 {
		login("192.0.2.10:1", fmt.Sprintf("198.51.100.%d", 100+i)).MustStatus(t, http.StatusUnauthorized)
	}
	login("192.0.2.10:1", "198.51.100.250").MustStatus(t, http.StatusTooManyRequests)
}

// TestLimiterHoldsNoAddress inspects the limiter's state: the keys are
// 32-byte HMACs, and neither an address nor an email is held in any form
// the test can find.
func TestLimiterHoldsNoAddress(t *testing.T) {
	h := newHarness(t)
	const ip = "198.51.100.77"
	email := "limiter-canary@example.org"
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: ip + ":1234", Body: api.Credentials{Email: email, Password: testPassword}}).
		MustStatus(t, http.StatusUnauthorized)
	h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", RemoteAddr: ip + ":1234", Body: api.Credentials{Email: "x", Password: testPassword}}).
		MustStatus(t, http.StatusBadRequest)

	for name, l := range map[string]*limiter{"loginIP": h.srv.loginIP, "loginEmail": h.srv.loginEmail, "signupIP": h.srv.signupIP} {
		l.mu.Lock()
		dump := fmt.Sprintf("%v %+v %#v", l.buckets, l.buckets, l.buckets)
		keys := make([][32]byte, 0, len(l.buckets))
		for k := range l.buckets {
			keys = append(keys, k)
		}
		l.mu.Unlock()
		for _, c := range []string{ip, "198.51.100", email, "limiter-canary", fmt.Sprintf("%x", []byte(ip)), fmt.Sprintf("%v", []byte(ip))} {
			if strings.Contains(dump, c) {
				t.Errorf("%s: %q appears in the limiter's state", name, c)
			}
		}
		for _, k := range keys {
			if strings.Contains(string(k[:]), "198.51") || strings.Contains(string(k[:]), "limiter") {
				t.Errorf("%s: key %x holds plain text", name, k)
			}
		}
	}
	if n := h.srv.loginIP.size(); n != 1 {
		t.Errorf("loginIP tracks %d keys, want 1", n)
	}
	if n := h.srv.loginEmail.size(); n != 1 {
		t.Errorf("loginEmail tracks %d keys, want 1", n)
	}
}

func TestLimiterSaltRotation(t *testing.T) {
	clock := newTestClock(harnessStart)
	l := newLimiter(time.Hour, 2, 10*time.Minute, clock.Now)
	salt := l.salt
	for range 2 {
		if !l.allow("ip:192.0.2.1") {
			t.Fatal("refused within the burst")
		}
	}
	if l.allow("ip:192.0.2.1") {
		t.Fatal("allowed past the burst")
	}
	l.allow("ip:192.0.2.2")
	if n := l.size(); n != 2 {
		t.Fatalf("size = %d, want 2", n)
	}
	clock.Advance(10*time.Minute - time.Second)
	if l.allow("ip:192.0.2.1") {
		t.Fatal("allowed before the rotation (refill is an hour)")
	}
	clock.Advance(time.Second)
	if !l.allow("ip:192.0.2.1") {
		t.Fatal("still refused after the rotation")
	}
	if l.salt == salt {
		t.Error("salt did not change at rotation")
	}
	if n := l.size(); n != 1 {
		t.Errorf("size after rotation = %d, want 1 (old buckets forgotten)", n)
	}
}

// TestLimiterKeysDependOnSalt: the same key maps to different HMACs in two
// limiters (so the salt is really used).
func TestLimiterKeysDependOnSalt(t *testing.T) {
	clock := newTestClock(harnessStart)
	a := newLimiter(time.Second, 1, time.Hour, clock.Now)
	b := newLimiter(time.Second, 1, time.Hour, clock.Now)
	a.allow("ip:192.0.2.1")
	b.allow("ip:192.0.2.1")
	for ka := range a.buckets {
		for kb := range b.buckets {
			if ka == kb {
				t.Error("two limiters derived the same key: the salt is not used")
			}
		}
	}
}

func TestRateKeyAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
		{"", ""},
	} {
		if got := rateKeyAddr(tc.in); got != tc.want {
			t.Errorf("rateKeyAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestLoginRateLimitIPv6Prefix: one IPv6 /64 shares a bucket, so cycling
// through its addresses does not buy more attempts.
func TestLoginRateLimitIPv6Prefix(t *testing.T) {
	h := newHarness(t)
	login := func(remote string) response {
		return h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", RemoteAddr: remote, Body: api.Credentials{Email: h.NewEmail(), Password: testPassword}})
	}
	for i := range 10 {
		login(fmt.Sprintf("[2001:db8:5:6::%x]:443", i+1)).MustStatus(t, http.StatusUnauthorized)
	}
	login("[2001:db8:5:6:ffff::1]:443").MustStatus(t, http.StatusTooManyRequests)
	login("[2001:db8:5:7::1]:443").MustStatus(t, http.StatusUnauthorized)
}

// allow reports whether one more event for key is allowed now: take without
// the wait, for tests that only count.
func (l *limiter) allow(key string) bool {
	ok, _ := l.take(key)
	return ok
}
