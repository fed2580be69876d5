//go:build traceless_fakewg

package main

import (
	"context"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/traceless-vpn/traceless/agent"
	"github.com/traceless-vpn/traceless/agent/wg"
)

// Built with -tags traceless_fakewg (tests only; release builds never
// are), the agent drives an in-memory fake WireGuard device instead of a
// real one and leaves the machine alone: no netfilter table, no sysctl
// written. So tests can run several real agent processes side by side on
// one machine, talking to real control-plane processes over loopback.
//
// With TRACELESS_AGENT_FAKE_PEERS set to a file name, the device's peer
// public keys (sorted, one a line) are written there whenever they
// change, replacing the file atomically, so the test can see what each
// agent applied. Only public keys: nothing else of a peer is written.
func init() {
	fakeBackend = func(m *Main) {
		f, links := wg.NewFake(), wg.NewFakeLinks(true)
		var name string
		m.openInterface = func(c wg.Config) (*wg.Interface, error) {
			name = c.Name
			return wg.NewFakeInterface(c.Name, f, links), nil
		}
		m.host = agent.Host{
			// Sysctls (forwarding, conntrack) are left as they are: the
			// fake device forwards nothing.
			WriteFile: func(string, []byte) error { return nil },
			Firewall:  fakeFirewall{},
		}
		if out := os.Getenv("TRACELESS_AGENT_FAKE_PEERS"); out != "" {
			go dumpPeers(context.Background(), f, func() string { return name }, out)
		}
	}
}

type fakeFirewall struct{}

func (fakeFirewall) Apply(agent.FirewallRules) error { return nil }
func (fakeFirewall) LogRules() (int, error)          { return 0, nil }

// dumpPeers writes the device's peer keys to out every time they change.
func dumpPeers(ctx context.Context, f *wg.Fake, name func() string, out string) {
	last := "\x00"
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d, err := f.Device(name())
		if err != nil {
			continue
		}
		keys := make([]string, len(d.Peers))
		for i, p := range d.Peers {
			keys[i] = p.PublicKey.String()
		}
		sort.Strings(keys)
		text := strings.Join(keys, "\n") + "\n"
		if text == last {
			continue
		}
		tmp := out + ".tmp"
		if os.WriteFile(tmp, []byte(text), 0o600) == nil && os.Rename(tmp, out) == nil {
			last = text
		}
	}
}
