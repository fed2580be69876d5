package main

import (
	"slices"
	"testing"

	"github.com/traceless-vpn/traceless/internal/logpolicy/logpolicytest"
)

// TestLogKeysDeclared: the program's log allowlist is exactly its log*
// key constants, and no log call in the package uses another key.
func TestLogKeysDeclared(t *testing.T) {
	declared := logpolicytest.DeclaredKeys(t, ".", "log")
	if len(declared) == 0 {
		t.Fatal("no log key constants found")
	}
	if got, want := slices.Sorted(slices.Values(logAllowlist)), logpolicytest.Values(declared); !slices.Equal(got, want) {
		t.Errorf("logAllowlist = %v\nthe package declares %v", got, want)
	}
	for _, u := range logpolicytest.UndeclaredUses(t, ".", declared) {
		t.Error(u)
	}
}
