package controlplane

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/internal/logpolicy"
	"github.com/traceless-vpn/traceless/internal/logpolicy/logpolicytest"
)

// TestLogKeysDeclared: the server's log allowlist is exactly the log*
// key constants of the package, and no log call uses another key.
func TestLogKeysDeclared(t *testing.T) {
	declared := logpolicytest.DeclaredKeys(t, ".", "log")
	if len(declared) < 5 {
		t.Fatalf("found only %d log key constants: %v", len(declared), declared)
	}
	// Package alerts logs through the server's logger with its own keys.
	want := append(logpolicytest.Values(declared), logpolicytest.Values(logpolicytest.DeclaredKeys(t, "alerts", "Log"))...)
	want = slices.Compact(slices.Sorted(slices.Values(want)))
	if got := slices.Compact(slices.Sorted(slices.Values(logAllowlist))); !slices.Equal(got, want) {
		t.Errorf("logAllowlist = %v\nthe package and package alerts declare %v", got, want)
	}
	for _, u := range logpolicytest.UndeclaredUses(t, ".", declared) {
		t.Error(u)
	}
}

// TestServerLogPolicy: the server's logger keeps declared keys, panics on
// an undeclared one in a test binary, and drops it in production.
func TestServerLogPolicy(t *testing.T) {
	h := newHarness(t)
	off := h.logs.Len()
	h.srv.log.Info("declared", slog.String(logRoute, "/x"))
	if !strings.Contains(h.logs.Since(off), `"route":"/x"`) {
		t.Errorf("a declared key is missing: %s", h.logs.Since(off))
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("an undeclared key did not panic in a test binary")
			}
		}()
		h.srv.log.Info("undeclared", slog.String("client_ip", "203.0.113.9"))
	}()

	var buf bytes.Buffer
	prod := slog.New(logpolicy.New(slog.NewJSONHandler(&buf, nil), false, logAllowlist...))
	prod.Info("request", slog.String("client_ip", "203.0.113.9"), slog.Int(logStatus, 200))
	out := buf.String()
	if strings.Contains(out, "203.0.113.9") || strings.Contains(out, "client_ip") || !strings.Contains(out, `"status":200`) ||
		!strings.Contains(out, `"`+logpolicy.DroppedKey+`":1`) {
		t.Errorf("production log line = %s; want the address dropped and counted, the status kept", out)
	}
}
