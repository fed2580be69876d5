package alerts

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAlertBackoff(t *testing.T) {
	a := &Alerter{opts: Options{RetryBase: time.Second, RetryMax: time.Minute}}
	for n := range 80 {
		d := time.Minute
		if n < 6 {
			d = time.Second << n
		}
		for range 20 {
			if got := a.backoff(n); got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", n, got, d/2, d)
			}
		}
	}
}

func TestWebhookDialerRefusesPrivate(t *testing.T) {
	r := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer r.Close()
	for _, allow := range []bool{false, true} {
		c := newWebhookClient(Options{Timeout: 5 * time.Second, AllowPrivateTargets: allow})
		resp, err := c.Post(r.URL+"/x", "application/json", strings.NewReader(`{}`))
		if resp != nil {
			resp.Body.Close()
		}
		if allow != (err == nil) || (!allow && !errors.Is(err, errBlockedAddress)) {
			t.Errorf("loopback allowed=%v: error %v", allow, err)
		}
		c.CloseIdleConnections()
	}
	for addr, blocked := range map[string]bool{
		"127.0.0.1": true, "10.0.0.1": true, "172.16.5.4": true, "192.168.1.1": true, "169.254.169.254": true,
		"100.64.1.1": true, "0.0.0.0": true, "::1": true, "fe80::1": true, "fd00::1": true, "::ffff:10.0.0.1": true,
		"ff02::1": true, "224.0.0.1": true, "93.184.216.34": false, "2606:2800:220:1::1": false,
	} {
		if got := blockedAddr(netip.MustParseAddr(addr)); got != blocked {
			t.Errorf("blockedAddr(%s) = %v, want %v", addr, got, blocked)
		}
	}
	// After DNS resolution the dialer lets through what the setting
	// allows: private and loopback addresses only with it; link-local,
	// unspecified and multicast addresses never.
	for addr, allowed := range map[string][2]bool{ // without, with AllowPrivateTargets
		"93.184.216.34": {true, true}, "[2606:2800:220:1::1]": {true, true},
		"127.0.0.1": {false, true}, "[::1]": {false, true}, "10.0.0.1": {false, true}, "172.16.5.4": {false, true},
		"192.168.1.1": {false, true}, "100.64.1.1": {false, true}, "[fd00::1]": {false, true}, "[::ffff:10.0.0.1]": {false, true},
		"169.254.169.254": {false, false}, "[fe80::1]": {false, false}, "0.0.0.0": {false, false}, "224.0.0.1": {false, false},
		"[ff02::1]": {false, false},
	} {
		for i, allow := range []bool{false, true} {
			err := webhookDialControl(allow)("tcp", addr+":443", nil)
			if (err == nil) != allowed[i] || (err != nil && !errors.Is(err, errBlockedAddress)) {
				t.Errorf("dial %s with AllowPrivateTargets=%v: %v, want allowed=%v", addr, allow, err, allowed[i])
			}
		}
	}
}
