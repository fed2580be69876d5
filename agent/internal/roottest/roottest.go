// Package roottest gates the agent's tests that need root: TUN devices,
// network namespaces, links and nftables. Without what they need they
// skip, saying what is missing; under CI=true they fail instead, so a CI
// run that cannot run them cannot pass while skipping them.
package roottest

import (
	"os"
	"strings"
)

// T is the part of testing.TB that Require uses.
type T interface {
	Helper()
	Skip(args ...any)
	Fatal(args ...any)
}

// Host is what Require looks at; Require reads the real one.
type Host struct {
	Euid int
	CI   bool               // CI=true in the environment
	Stat func(string) error // nil when the path exists
}

// Require skips t, or fails it under CI=true, unless the process runs as
// root with a TUN device (/dev/net/tun).
func Require(t T) {
	t.Helper()
	Check(t, Host{Euid: os.Geteuid(), CI: os.Getenv("CI") == "true", Stat: func(p string) error {
		_, err := os.Stat(p)
		return err
	}})
}

// Check is Require on a given host.
func Check(t T, h Host) {
	t.Helper()
	missing := Missing(h)
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, " and ") + " (to create TUN devices, network namespaces, links and nftables rules); .ci/run runs as root"
	if h.CI {
		t.Fatal("CI=true: this test must run, but it " + msg)
		return
	}
	t.Skip(msg)
}

// Missing lists what h lacks, or nothing.
func Missing(h Host) []string {
	var out []string
	if h.Euid != 0 {
		out = append(out, "root")
	}
	if err := h.Stat("/dev/net/tun"); err != nil {
		out = append(out, "/dev/net/tun ("+err.Error()+")")
	}
	return out
}
