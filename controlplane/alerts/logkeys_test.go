package alerts

import (
	"slices"
	"testing"

	"github.com/traceless-vpn/traceless/internal/logpolicy/logpolicytest"
)

// TestLogKeysDeclared: LogKeys lists every Log* key constant of the
// package, and every log call uses one of them, so the server's allowlist
// (which includes LogKeys) lets exactly these through.
func TestLogKeysDeclared(t *testing.T) {
	declared := logpolicytest.DeclaredKeys(t, ".", "Log")
	if got, want := slices.Sorted(slices.Values(LogKeys)), logpolicytest.Values(declared); !slices.Equal(got, want) {
		t.Errorf("LogKeys = %v\nthe package declares %v", got, want)
	}
	for _, u := range logpolicytest.UndeclaredUses(t, ".", declared) {
		t.Error(u)
	}
}
