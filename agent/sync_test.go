package agent

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
)

func TestSyncEnrollAndSnapshot(t *testing.T) {
	for _, binary := range []bool{true, false} {
		name := map[bool]string{true: "binary", false: "json"}[binary]
		t.Run(name, func(t *testing.T) {
			cp := newFakeCP(t)
			cp.with(func(cp *fakeCP) { cp.binary = binary })
			cp.upsert(testPeers(0, 100)...)
			h := newHarness(t, []string{cp.URL()}, nil)
			h.start()
			h.waitFor("the snapshot on the device", func() bool { return h.inStep(cp) })
			h.waitFor("a status with the server's hash", func() bool { return h.reported(cp) })

			cp.with(func(cp *fakeCP) {
				if binary && (cp.fullBin != 1 || cp.fullJSON != 0) || !binary && (cp.fullJSON != 1 || cp.fullBin != 0) {
					t.Errorf("snapshots served: %d binary, %d JSON", cp.fullBin, cp.fullJSON)
				}
				if cp.polls[0] != 0 || cp.fullAsked != 1 {
					t.Errorf("first poll since %d, %d polls asked for a snapshot; want since=0&full=true once", cp.polls[0], cp.fullAsked)
				}
				dev, _ := h.fake.Device("tl0")
				if cp.enrolled == nil || cp.enrolled.PublicKey != dev.PublicKey.String() || cp.enrolled.Name != "node-a" ||
					cp.enrolled.Endpoint != "vpn1.example.net:51820" {
					t.Errorf("enrollment request %+v does not match the device", cp.enrolled)
				}
			})
			// The credential file: mode 0600, the credential and the key.
			fi, err := os.Stat(h.credFile)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("credential file: %v %v", fi, err)
			}
			c, err := loadCredential(h.credFile)
			if err != nil || c.Credential != cp.credential || c.NodeID != "node-1" || c.Tunnel == nil {
				t.Fatalf("credential file = %+v, %v", c, err)
			}
			dev, _ := h.fake.Device("tl0")
			if k, _ := c.key(); k != dev.PrivateKey || dev.ListenPort != 51820 {
				t.Errorf("device key/port do not match the credential file")
			}
			// Interface setup.
			link, _ := h.links.Link("tl0")
			want := []netip.Prefix{netip.MustParsePrefix("10.64.0.1/10"), netip.MustParsePrefix("fd74:6c73:7670:1::1/64")}
			if diff := cmp.Diff(wg.FakeLink{Kind: "wireguard", Addrs: want, MTU: 1420, Up: true}, link, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("link (-want +got):\n%s", diff)
			}
			rules, _ := h.fw.last()
			if diff := cmp.Diff(FirewallRules{ListenPort: 51820, Sources: []netip.Prefix{netip.MustParsePrefix("10.64.0.0/10"), netip.MustParsePrefix("fd74:6c73:7670:1::/64")}},
				rules, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("firewall (-want +got):\n%s", diff)
			}
			if h.mem.read("proc/sys/net/ipv4/ip_forward") != "1\n" || h.mem.read("proc/sys/net/ipv6/conf/all/forwarding") != "1\n" {
				t.Error("forwarding not enabled")
			}
			st, _ := cp.lastStatus()
			if !st.InterfaceUp || st.Version != "test" || !st.Posture.OK() {
				t.Errorf("status = %+v; want interface up, version, posture ok", st)
			}
			if got := metricValue(h.a.metrics.peers); got != 100 {
				t.Errorf("traceless_agent_peers = %v", got)
			}
		})
	}
}

func TestSyncDeltas(t *testing.T) {
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 50)...)
	h := newHarness(t, []string{cp.URL()}, nil)
	h.start()
	h.waitFor("the snapshot", func() bool { return h.inStep(cp) && h.reported(cp) })
	calls := h.fake.ConfigureCalls()

	cp.upsert(testPeer(60), testPeer(61))
	h.waitFor("an addition", func() bool { return h.inStep(cp) && h.reported(cp) })
	cp.remove(testPeer(3).PublicKey, testPeer(60).PublicKey)
	h.waitFor("a removal", func() bool { return h.inStep(cp) && h.reported(cp) })
	changed := testPeer(7)
	changed.AllowedIPs = []string{"10.64.200.7/32", "fd74:6c73:7670:1::aaaa/128"}
	cp.upsert(changed)
	h.waitFor("a change", func() bool { return h.inStep(cp) && h.reported(cp) })

	if got := h.fake.ConfigureCalls() - calls; got != 3 {
		t.Errorf("three deltas took %d ConfigureDevice calls, want 3", got)
	}
	cp.with(func(cp *fakeCP) {
		if cp.fullBin+cp.fullJSON != 1 {
			t.Errorf("%d full snapshots, want only the first", cp.fullBin+cp.fullJSON)
		}
	})
}

// TestSyncIdleAtRevisionZero: before any device exists the node holds
// the current state at revision 0 and waits in long polls; it asks for a
// snapshot once, at start.
func TestSyncIdleAtRevisionZero(t *testing.T) {
	cp := newFakeCP(t)
	h := newHarness(t, []string{cp.URL()}, nil)
	h.start()
	h.waitFor("the empty snapshot reported", func() bool { return h.reported(cp) })
	var before int
	cp.with(func(cp *fakeCP) { before = len(cp.polls) })
	const periods = 4
	var window time.Duration
	cp.with(func(cp *fakeCP) { window = cp.pollWindow })
	time.Sleep(periods * window)
	cp.with(func(cp *fakeCP) {
		if n := len(cp.polls) - before; n > periods+1 {
			t.Errorf("%d polls in %d poll windows at revision 0; want at most %d", n, periods, periods+1)
		}
		if cp.fullAsked != 1 || cp.fullBin+cp.fullJSON != 1 {
			t.Errorf("%d snapshots asked for, %d served; want the one at start", cp.fullAsked, cp.fullBin+cp.fullJSON)
		}
	})
	cp.upsert(testPeer(1))
	h.waitFor("the first peer", func() bool { return h.inStep(cp) && h.reported(cp) })
}

// TestSyncPacesUnaskedSnapshots: a control plane that answers every poll
// with a snapshot (as they did at revision 0 before since=0 waited) gets
// polls at the backoff's pace, not in a loop.
func TestSyncPacesUnaskedSnapshots(t *testing.T) {
	cp := newFakeCP(t)
	cp.with(func(cp *fakeCP) { cp.legacy = true })
	h := newHarness(t, []string{cp.URL()}, func(o *Options) { o.MinBackoff, o.MaxBackoff = 50*time.Millisecond, 200*time.Millisecond })
	h.start()
	h.waitFor("the empty snapshot reported", func() bool { return h.reported(cp) })
	var before int
	cp.with(func(cp *fakeCP) { before = len(cp.polls) })
	time.Sleep(time.Second)
	cp.with(func(cp *fakeCP) {
		// At most 200 ms apart once paced, at least 100 ms (jitter).
		if n := len(cp.polls) - before; n > 12 {
			t.Errorf("%d polls in 1 s against a control plane answering snapshots; want at most 12", n)
		}
	})
	cp.upsert(testPeer(1))
	h.waitFor("the first peer", func() bool { return h.inStep(cp) })
}

func TestSyncResync(t *testing.T) {
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 20)...)
	h := newHarness(t, []string{cp.URL()}, func(o *Options) { o.AntiEntropyInterval = time.Hour })
	h.start()
	h.waitFor("the snapshot", func() bool { return h.inStep(cp) && h.reported(cp) })

	// The server's set diverges without a revision (a lost change): the
	// status hash differs, the server asks for a resync, the agent fetches
	// a snapshot and converges.
	cp.with(func(cp *fakeCP) {
		delete(cp.peers, testPeer(4).PublicKey)
		p := testPeer(99)
		cp.peers[p.PublicKey] = p
	})
	h.waitFor("resync after a hash mismatch", func() bool { return h.inStep(cp) && h.reported(cp) })

	// An explicit resync also repairs a device someone changed by hand.
	rogue := testPeer(500)
	k, spec, _ := parsePeer(rogue)
	h.fake.ConfigureDevice("tl0", batch([]wgtypes.PeerConfig{setPeer(k, spec)}, 10)[0])
	cp.with(func(cp *fakeCP) { cp.forceResync = true })
	cp.upsert(testPeer(21))
	h.waitFor("resync on request", func() bool { return h.inStep(cp) && h.reported(cp) })
	cp.with(func(cp *fakeCP) {
		if cp.fullBin < 3 {
			t.Errorf("%d full snapshots, want 3", cp.fullBin)
		}
	})
}

func TestSyncServerDown(t *testing.T) {
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 30)...)
	h := newHarness(t, []string{cp.URL()}, nil)
	h.start()
	h.waitFor("the snapshot", func() bool { return h.inStep(cp) && h.reported(cp) })

	cp.with(func(cp *fakeCP) { cp.down = true })
	before := metricValue(h.a.metrics.syncErrors)
	time.Sleep(600 * time.Millisecond)
	errs := metricValue(h.a.metrics.syncErrors) - before
	// Backoff from 10 ms doubling to 80 ms: about 10 attempts in 600 ms,
	// never a tight loop.
	if errs < 3 || errs > 30 {
		t.Errorf("%v failed attempts in 600ms; want backoff between 10ms and 80ms", errs)
	}
	if n := h.fake.PeerCount("tl0"); n != 30 {
		t.Fatalf("device has %d peers while the control plane is down, want all 30 kept", n)
	}
	cp.with(func(cp *fakeCP) { cp.down = false })
	cp.upsert(testPeer(40))
	h.waitFor("sync after the outage", func() bool { return h.inStep(cp) && h.reported(cp) })
}

func TestSyncFailover(t *testing.T) {
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()

	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 10)...)
	backup := newFakeCP(t) // a second replica with the same data
	backup.with(func(b *fakeCP) { b.enrollToken = "" })
	backup.upsert(testPeers(0, 10)...)

	h := newHarness(t, []string{deadURL, cp.URL(), backup.URL()}, nil)
	h.start()
	h.waitFor("enrollment and sync through the second URL", func() bool { return h.inStep(cp) && h.reported(cp) })

	// The replica in use fails; the agent moves on to the next one.
	cp.with(func(cp *fakeCP) { cp.down = true })
	backup.upsert(testPeer(77))
	h.waitFor("sync through the third URL", func() bool { return h.inStep(backup) && h.reported(backup) })
	if n := h.fake.PeerCount("tl0"); n != 11 {
		t.Errorf("device has %d peers, want 11", n)
	}
}

func TestSyncTokenRefresh(t *testing.T) {
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 5)...)
	h := newHarness(t, []string{cp.URL()}, nil)
	h.start()
	h.waitFor("the snapshot", func() bool { return h.inStep(cp) && h.reported(cp) })

	// Every node token is refused (expired early, or the server lost
	// them): the agent gets a new one at once.
	var reqs int
	cp.with(func(cp *fakeCP) { cp.tokens, reqs = map[string]bool{}, cp.tokenReqs })
	cp.upsert(testPeer(9))
	h.waitFor("sync with a new token", func() bool { return h.inStep(cp) && h.reported(cp) })
	cp.with(func(cp *fakeCP) {
		if cp.tokenReqs != reqs+1 {
			t.Errorf("%d token requests after the 401, want 1", cp.tokenReqs-reqs)
		}
	})

	// Short-lived tokens are refreshed before they expire.
	cp.with(func(cp *fakeCP) { cp.tokenTTL = 300 * time.Millisecond; cp.tokens = map[string]bool{} })
	cp.upsert(testPeer(10))
	h.waitFor("sync with a short token", func() bool { return h.inStep(cp) })
	cp.with(func(cp *fakeCP) { reqs = cp.tokenReqs })
	time.Sleep(time.Second)
	cp.with(func(cp *fakeCP) {
		if n := cp.tokenReqs - reqs; n < 2 {
			t.Errorf("%d token refreshes in 1s with 300ms tokens, want several", n)
		}
	})
}

func TestSyncRevoked(t *testing.T) {
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 12)...)
	h := newHarness(t, []string{cp.URL()}, nil)
	h.start()
	h.waitFor("the snapshot", func() bool { return h.inStep(cp) && h.reported(cp) })

	cp.with(func(cp *fakeCP) { cp.revoked, cp.tokens = true, map[string]bool{} })
	h.waitFor("the agent to see the revocation", func() bool {
		return strings.Contains(h.logs.String(), "refuses the node credential")
	})
	var reqs int
	cp.with(func(cp *fakeCP) { reqs = cp.tokenReqs })
	cp.upsert(testPeer(50))
	time.Sleep(700 * time.Millisecond)
	cp.with(func(cp *fakeCP) {
		// RevokedRetry is 150 ms (jittered down to 75 ms): a handful of
		// attempts, not a tight loop.
		if n := cp.tokenReqs - reqs; n < 2 || n > 12 {
			t.Errorf("%d token attempts in 700ms while revoked", n)
		}
	})
	if n := h.fake.PeerCount("tl0"); n != 12 {
		t.Fatalf("device has %d peers after revocation, want the 12 kept and no new one", n)
	}
	if !strings.Contains(h.logs.String(), "refuses the node credential") {
		t.Error("revocation not logged")
	}
	cp.with(func(cp *fakeCP) { cp.revoked = false })
	h.waitFor("sync after the credential is accepted again", func() bool { return h.inStep(cp) && h.reported(cp) })
}

// TestRestartKeepsPeers restarts the agent over a device that survives
// (like a kernel interface): the credential file gives the same key, the
// tunnel is set up before the control plane answers, and the first
// snapshot finds the device in step and changes nothing.
func TestRestartKeepsPeers(t *testing.T) {
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 40)...)
	h := newHarness(t, []string{cp.URL()}, nil)
	h.start()
	h.waitFor("the snapshot", func() bool { return h.inStep(cp) && h.reported(cp) })
	h.stop()
	dev1, _ := h.fake.Device("tl0")
	calls := h.fake.ConfigureCalls()

	cp.with(func(cp *fakeCP) { cp.down = true })
	h.opts.EnrollToken = "" // a restart needs none
	a, err := New(h.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("Start with the control plane down: %v", err)
	}
	if !a.iface.Existed {
		t.Error("the interface was not taken over")
	}
	if _, n := h.fw.last(); n < 2 {
		t.Error("the interface was not set up from the recorded tunnel")
	}
	cp.with(func(cp *fakeCP) { cp.down = false })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	h.a = a
	h.waitFor("the first snapshot after restart", func() bool { return h.reported(cp) })
	cancel()
	<-done
	a.Close()
	dev2, _ := h.fake.Device("tl0")
	if got := h.fake.ConfigureCalls() - calls; got != 0 {
		t.Errorf("restart made %d ConfigureDevice calls, want 0", got)
	}
	if diff := cmp.Diff(dev1, dev2); diff != "" {
		t.Errorf("device changed across restart (-before +after):\n%s", diff)
	}
}

func TestStartErrors(t *testing.T) {
	cp := newFakeCP(t)
	for _, tc := range []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"no credential, no token", func(o *Options) { o.EnrollToken = "" }, "pass an enrollment token"},
		{"bad enrollment token", func(o *Options) { o.EnrollToken = "tle_wrong" }, "enroll: POST /agent/v1/enroll: HTTP 401 unauthorized"},
		{"posture required", func(o *Options) {
			o.RequirePosture = true
			m := newMemFS(map[string]string{"proc/swaps": "Filename Type Size Used Priority\n/swapfile file 1024 0 -2\n"})
			o.Host.FS, o.Host.WriteFile = m, m.WriteFile
		}, "failed checks swap_off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, []string{cp.URL()}, tc.mutate)
			a, err := New(h.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = a.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "tle_") && tc.name == "bad enrollment token" {
				t.Errorf("error echoes the token: %v", err)
			}
		})
	}
}

func TestMetricsHandler(t *testing.T) {
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 3)...)
	h := newHarness(t, []string{cp.URL()}, nil)
	h.start()
	h.waitFor("the snapshot", func() bool { return h.inStep(cp) && h.reported(cp) })
	rec := httptest.NewRecorder()
	h.a.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"traceless_agent_peers 3", "traceless_agent_applied_revision 1", "traceless_agent_sync_errors_total",
		"traceless_agent_scrubbed_total", "traceless_agent_posture_ok 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	for _, p := range testPeers(0, 3) {
		if strings.Contains(body, p.PublicKey) {
			t.Error("metrics name a peer")
		}
	}
}
