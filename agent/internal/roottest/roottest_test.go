package roottest

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// recorder is a T that records what Check asked for.
type recorder struct {
	skipped, failed string
}

func (r *recorder) Helper()           {}
func (r *recorder) Skip(args ...any)  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatal(args ...any) { r.failed = fmt.Sprint(args...) }

func TestCheck(t *testing.T) {
	tun := func(string) error { return nil }
	noTun := func(p string) error { return &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist} }
	for _, c := range []struct {
		name         string
		host         Host
		skip, fail   bool
		mentions     []string
		notMentioned string
	}{
		{name: "root with TUN runs", host: Host{Euid: 0, Stat: tun}},
		{name: "root with TUN runs under CI", host: Host{Euid: 0, CI: true, Stat: tun}},
		{name: "not root skips", host: Host{Euid: 1000, Stat: tun}, skip: true, mentions: []string{"root"}, notMentioned: "/dev/net/tun"},
		{name: "not root fails under CI", host: Host{Euid: 1000, CI: true, Stat: tun}, fail: true, mentions: []string{"CI=true", "root"}},
		{name: "no TUN skips", host: Host{Euid: 0, Stat: noTun}, skip: true, mentions: []string{"/dev/net/tun", "not exist"}},
		{name: "no TUN fails under CI", host: Host{Euid: 0, CI: true, Stat: noTun}, fail: true, mentions: []string{"CI=true", "/dev/net/tun"}},
		{name: "neither fails under CI", host: Host{Euid: 1, CI: true, Stat: noTun}, fail: true, mentions: []string{"root and /dev/net/tun"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r recorder
			Check(&r, c.host)
			if (r.skipped != "") != c.skip || (r.failed != "") != c.fail {
				t.Fatalf("skipped %q, failed %q; want skip %v, fail %v", r.skipped, r.failed, c.skip, c.fail)
			}
			msg := r.skipped + r.failed
			for _, m := range c.mentions {
				if !strings.Contains(msg, m) {
					t.Errorf("message %q does not mention %q", msg, m)
				}
			}
			if c.notMentioned != "" && strings.Contains(msg, c.notMentioned) {
				t.Errorf("message %q mentions %q, which is there", msg, c.notMentioned)
			}
		})
	}
}

// TestRequireHere: Require looks at this process. Under CI=true the root
// tests must be able to run, which is what Require enforces for them.
func TestRequireHere(t *testing.T) {
	var r recorder
	Require(&r)
	missing := Missing(Host{Euid: -1, Stat: func(string) error { return errors.New("x") }})
	if len(missing) != 2 {
		t.Errorf("Missing lists %v; want root and /dev/net/tun", missing)
	}
	t.Logf("here: skipped %q, failed %q", r.skipped, r.failed)
	if r.failed != "" {
		t.Error(r.failed)
	}
}
