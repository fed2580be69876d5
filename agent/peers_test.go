package agent

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

func TestDelta(t *testing.T) {
	p0, p1, p2 := testPeer(0), testPeer(1), testPeer(2)
	moved := api.Peer{PublicKey: p1.PublicKey, AllowedIPs: []string{"10.64.9.9/32"}}
	reordered := api.Peer{PublicKey: p1.PublicKey, AllowedIPs: []string{p1.AllowedIPs[1], p1.AllowedIPs[0]}}
	set := func(p api.Peer) wgtypes.PeerConfig {
		k, spec, _ := parsePeer(p)
		return setPeer(k, spec)
	}
	remove := func(p api.Peer) wgtypes.PeerConfig {
		k, _ := wgtypes.ParseKey(p.PublicKey)
		return wgtypes.PeerConfig{PublicKey: k, Remove: true}
	}
	for _, tc := range []struct {
		name         string
		upserts      []api.Peer
		removes      []string
		want         []wgtypes.PeerConfig
		wantInvalid  int
		wantPeersAft []api.Peer
	}{
		{name: "nothing", wantPeersAft: []api.Peer{p0, p1}},
		{name: "add", upserts: []api.Peer{p2}, want: []wgtypes.PeerConfig{set(p2)}, wantPeersAft: []api.Peer{p0, p1, p2}},
		{name: "remove", removes: []string{p0.PublicKey}, want: []wgtypes.PeerConfig{remove(p0)}, wantPeersAft: []api.Peer{p1}},
		{name: "remove unknown", removes: []string{p2.PublicKey}, wantPeersAft: []api.Peer{p0, p1}},
		{name: "same peer again", upserts: []api.Peer{p1}, wantPeersAft: []api.Peer{p0, p1}},
		{name: "same addresses reordered: hash changes, device does not", upserts: []api.Peer{reordered}, wantPeersAft: []api.Peer{p0, reordered}},
		{name: "changed addresses", upserts: []api.Peer{moved}, want: []wgtypes.PeerConfig{set(moved)}, wantPeersAft: []api.Peer{p0, moved}},
		{name: "removes before upserts", upserts: []api.Peer{p2}, removes: []string{p0.PublicKey},
			want: []wgtypes.PeerConfig{remove(p0), set(p2)}, wantPeersAft: []api.Peer{p1, p2}},
		{name: "invalid skipped", upserts: []api.Peer{{PublicKey: "bad"}, p2}, removes: []string{"bad"},
			want: []wgtypes.PeerConfig{set(p2)}, wantInvalid: 2, wantPeersAft: []api.Peer{p0, p1, p2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newSetBuilder(2)
			b.add(p0)
			b.add(p1)
			s := peerState{set: b.set, hash: b.hash}
			got, invalid := s.delta(tc.upserts, tc.removes, 0)
			if diff := cmp.Diff(tc.want, got, ipNetComparer); diff != "" {
				t.Errorf("configs (-want +got):\n%s", diff)
			}
			if invalid != tc.wantInvalid {
				t.Errorf("invalid = %d, want %d", invalid, tc.wantInvalid)
			}
			want := map[string]api.Peer{}
			for _, p := range tc.wantPeersAft {
				want[p.PublicKey] = p
			}
			if got, want := s.hash.String(), hashOf(want); got != want {
				t.Errorf("hash = %s, want %s (api.PeerSetHash of the set)", got, want)
			}
			if s.set.len() != len(want) {
				t.Errorf("set has %d peers, want %d", s.set.len(), len(want))
			}
		})
	}
}

// TestDeltaApply runs random deltas through the device path against the
// Fake: the device always ends up holding exactly the desired set, the
// hash always equals api.PeerSetHash of the set, and no delta reads the
// device.
func TestDeltaApply(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	cc := &countingClient{Client: f}
	d := newDevice(wg.NewControl(cc), "tl0")
	d.batch = 7 // several calls per delta

	model := map[string]api.Peer{}
	b := newSetBuilder(0)
	for _, p := range testPeers(0, 50) {
		model[p.PublicKey] = p
		b.add(p)
	}
	if _, err := d.applyFull(b, 1); err != nil {
		t.Fatal(err)
	}
	reads := cc.devices.Load()
	rng := rand.New(rand.NewPCG(1, 2))
	for rev := int64(2); rev < 60; rev++ {
		var ups []api.Peer
		var rms []string
		for range rng.IntN(20) {
			i := rng.IntN(80)
			p := testPeer(i)
			switch rng.IntN(3) {
			case 0:
				rms = append(rms, p.PublicKey)
				delete(model, p.PublicKey)
			case 1:
				p.AllowedIPs = p.AllowedIPs[:1] // a changed peer
				fallthrough
			default:
				ups = append(ups, p)
			}
		}
		// The model applies removes first, then upserts, like the agent.
		for _, p := range ups {
			model[p.PublicKey] = p
		}
		before := cc.configures.Load()
		r, err := d.applyDelta(ups, rms, rev)
		if err != nil {
			t.Fatal(err)
		}
		if calls := cc.configures.Load() - before; calls != int64(r.calls) || calls != int64((r.set+r.removed+6)/7) {
			t.Fatalf("rev %d: %d configure calls for %d changes", rev, calls, r.set+r.removed)
		}
		sum := d.summary()
		gotRev, hash, n := sum.revision, sum.hash, sum.desired
		if gotRev != rev || hash != hashOf(model) || n != len(model) {
			t.Fatalf("rev %d: summary = %d %s %d, want %d %s %d", rev, gotRev, hash, n, rev, hashOf(model), len(model))
		}
	}
	if cc.devices.Load() != reads {
		t.Errorf("deltas read the device %d times; they must not", cc.devices.Load()-reads)
	}
	if diff := cmp.Diff(wantDevicePeers(model), fakeDevicePeers(t, f, "tl0")); diff != "" {
		t.Errorf("device (-want +got):\n%s", diff)
	}
}

func TestDeviceErrors(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	d := newDevice(wg.NewControl(f), "tl0")
	if _, err := d.applyDelta([]api.Peer{testPeer(1)}, nil, 3); err != errNoBase {
		t.Errorf("delta before a snapshot: %v, want errNoBase", err)
	}
	b := newSetBuilder(0)
	for _, p := range testPeers(0, 5) {
		b.add(p)
	}
	f.FailConfigure(wg.ErrNoKernel)
	if _, err := d.applyFull(b, 4); err == nil {
		t.Fatal("applyFull ignored a configure error")
	}
	if s := d.summary(); s.revision != 0 || s.desired != 5 {
		rev, n := s.revision, s.desired
		t.Errorf("after a failed snapshot: revision %d peers %d; want revision unchanged, desired set taken", rev, n)
	}
	// Anti-entropy repairs the device from the desired set.
	r, err := d.antiEntropy()
	if err != nil || r.set != 5 {
		t.Errorf("antiEntropy = %+v, %v; want 5 peers set", r, err)
	}
	if r, _ := d.antiEntropy(); r.set+r.removed != 0 {
		t.Errorf("second antiEntropy changed %+v", r)
	}
	// The device is never wiped on an error: a failing delta leaves it.
	f.FailConfigure(wg.ErrNoKernel)
	if _, err := d.applyDelta(nil, []string{testPeer(0).PublicKey}, 5); err == nil {
		t.Fatal("applyDelta ignored a configure error")
	}
	if n := f.PeerCount("tl0"); n != 5 {
		t.Errorf("device has %d peers after a failed delta, want 5", n)
	}
	f.RemoveDevice("tl0")
	if _, err := d.applyFull(b, 6); err == nil || wg.IsRetryable(err) {
		t.Errorf("applyFull on a missing device = %v; want a non-retryable error", err)
	}
}

func TestEnsureIdentity(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	d := newDevice(wg.NewControl(f), "tl0")
	key, _ := wgtypes.GeneratePrivateKey()
	for range 2 {
		if err := d.ensureIdentity(key, 51820); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.ConfigureCalls(); n != 1 {
		t.Errorf("ensureIdentity configured %d times, want once (the second finds it in place)", n)
	}
	dev, _ := f.Device("tl0")
	if dev.PrivateKey != key || dev.ListenPort != 51820 {
		t.Errorf("device identity not set")
	}
}
