package agent

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

func TestReconcile(t *testing.T) {
	own, _ := wgtypes.GeneratePrivateKey()
	p0, p1, p2 := testPeer(0), testPeer(1), testPeer(2)
	onDevice := func(i int, allowed ...string) wg.Peer {
		return wg.Peer{PublicKey: testKey(i), AllowedIPs: mustPrefixes(allowed...)}
	}
	set := func(i int, allowed ...string) wgtypes.PeerConfig {
		return wgtypes.PeerConfig{PublicKey: testKey(i), ReplaceAllowedIPs: true, AllowedIPs: mustCIDRs(allowed...)}
	}
	remove := func(i int) wgtypes.PeerConfig { return wgtypes.PeerConfig{PublicKey: testKey(i), Remove: true} }

	for _, tc := range []struct {
		name    string
		desired []api.Peer
		device  []wg.Peer
		want    []wgtypes.Config
	}{
		{name: "nothing"},
		{
			name:    "add to an empty device, by key",
			desired: []api.Peer{p2, p0, p1},
			want:    []wgtypes.Config{{Peers: []wgtypes.PeerConfig{set(0, p0.AllowedIPs...), set(1, p1.AllowedIPs...), set(2, p2.AllowedIPs...)}}},
		},
		{
			name:    "in step",
			desired: []api.Peer{p0, p1},
			device:  []wg.Peer{onDevice(1, p1.AllowedIPs...), onDevice(0, p0.AllowedIPs...)},
		},
		{
			name:    "in step with allowed IPs in another order",
			desired: []api.Peer{p0},
			device:  []wg.Peer{onDevice(0, p0.AllowedIPs[1], p0.AllowedIPs[0])},
		},
		{
			name:   "remove extras",
			device: []wg.Peer{onDevice(5, "10.64.0.9/32"), onDevice(6)},
			want:   []wgtypes.Config{{Peers: []wgtypes.PeerConfig{remove(5), remove(6)}}},
		},
		{
			name:    "update changed allowed IPs",
			desired: []api.Peer{p0, p1},
			device:  []wg.Peer{onDevice(0, p0.AllowedIPs...), onDevice(1, "10.64.99.1/32")},
			want:    []wgtypes.Config{{Peers: []wgtypes.PeerConfig{set(1, p1.AllowedIPs...)}}},
		},
		{
			name:    "a missing allowed IP is an update",
			desired: []api.Peer{p0},
			device:  []wg.Peer{onDevice(0, p0.AllowedIPs[0])},
			want:    []wgtypes.Config{{Peers: []wgtypes.PeerConfig{set(0, p0.AllowedIPs...)}}},
		},
		{
			name:    "removes, then updates, then additions",
			desired: []api.Peer{p2, p1},
			device:  []wg.Peer{onDevice(1), onDevice(0, p0.AllowedIPs...)},
			want:    []wgtypes.Config{{Peers: []wgtypes.PeerConfig{remove(0), set(1, p1.AllowedIPs...), set(2, p2.AllowedIPs...)}}},
		},
		{
			name:    "the device's own key is never added",
			desired: []api.Peer{api.DevicePeer(own.PublicKey().String(), "10.64.0.50", "fd74::50"), p0},
			want:    []wgtypes.Config{{Peers: []wgtypes.PeerConfig{set(0, p0.AllowedIPs...)}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := &wg.Device{PrivateKey: own, PublicKey: own.PublicKey(), Peers: tc.device}
			got := reconcile(setOf(t, tc.desired...), nil, dev, batchSize)
			if diff := cmp.Diff(tc.want, got, ipNetComparer); diff != "" {
				t.Errorf("reconcile (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReconcileBatches(t *testing.T) {
	desired := setOf(t, testPeers(0, 2500)...)
	cfgs := reconcile(desired, nil, &wg.Device{}, 1000)
	var sizes []int
	for _, c := range cfgs {
		sizes = append(sizes, len(c.Peers))
		if c.ReplacePeers || c.PrivateKey != nil || c.ListenPort != nil {
			t.Errorf("a config touches device fields or replaces peers: %+v", c)
		}
	}
	if diff := cmp.Diff([]int{1000, 1000, 500}, sizes); diff != "" {
		t.Errorf("batch sizes (-want +got):\n%s", diff)
	}
	if n := len(reconcile(desired, nil, &wg.Device{}, batchSize)); n != 3 {
		t.Errorf("2500 peers in %d calls, want 3 of batchSize", n)
	}
}

// TestReconcileConverges applies reconcile to the Fake from several
// starting points and checks that a second reconcile yields nothing and
// ReplacePeers never appears.
func TestReconcileConverges(t *testing.T) {
	for _, tc := range []struct {
		name          string
		start, target []api.Peer
	}{
		{"empty to some", nil, testPeers(0, 10)},
		{"some to empty", testPeers(0, 10), nil},
		{"overlap", testPeers(0, 10), testPeers(5, 2505)},
		{"moved addresses", testPeers(0, 3), []api.Peer{api.DevicePeer(testKey(7).String(), "10.64.0.0", "fd74:6c73:7670:1::2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := wg.NewFake()
			f.AddDevice("tl0")
			for _, c := range reconcile(setOf(t, tc.start...), nil, &wg.Device{}, batchSize) {
				if err := f.ConfigureDevice("tl0", c); err != nil {
					t.Fatal(err)
				}
			}
			target := setOf(t, tc.target...)
			cur, _ := wg.NewControl(f).Device("tl0")
			for _, c := range reconcile(target, nil, cur, batchSize) {
				if c.ReplacePeers {
					t.Fatal("reconcile used ReplacePeers")
				}
				if err := f.ConfigureDevice("tl0", c); err != nil {
					t.Fatal(err)
				}
			}
			cur, _ = wg.NewControl(f).Device("tl0")
			if again := reconcile(target, nil, cur, batchSize); len(again) != 0 {
				t.Errorf("second reconcile yields %d configs, want none", len(again))
			}
			want := map[string]api.Peer{}
			for _, p := range tc.target {
				want[p.PublicKey] = p
			}
			if diff := cmp.Diff(wantDevicePeers(want), fakeDevicePeers(t, f, "tl0")); diff != "" {
				t.Errorf("device peers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParsePeer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       api.Peer
		want    []string
		compact bool
		err     error
	}{
		{"device", testPeer(1), []string{"10.64.0.1/32", "fd74:6c73:7670:1::3/128"}, true, nil},
		{"device, IPv6 first", api.Peer{PublicKey: testKey(1).String(), AllowedIPs: []string{"fd74:6c73:7670:1::3/128", "10.64.0.1/32"}},
			[]string{"10.64.0.1/32", "fd74:6c73:7670:1::3/128"}, false, nil},
		{"device, IPv6 not canonical", api.Peer{PublicKey: testKey(1).String(), AllowedIPs: []string{"10.64.0.1/32", "fd74:6c73:7670:1:0:0:0:3/128"}},
			[]string{"10.64.0.1/32", "fd74:6c73:7670:1::3/128"}, false, nil},
		{"sorted, deduplicated, masked", api.Peer{PublicKey: testKey(1).String(), AllowedIPs: []string{"fd00::1/64", "10.64.0.9/24", "10.64.0.0/24"}},
			[]string{"10.64.0.0/24", "fd00::/64"}, false, nil},
		{"no allowed IPs", api.Peer{PublicKey: testKey(1).String()}, []string{}, false, nil},
		{"bad key", api.Peer{PublicKey: "not-a-key", AllowedIPs: []string{"10.64.0.1/32"}}, nil, false, errBadKey},
		{"short key", api.Peer{PublicKey: "AAAA"}, nil, false, errBadKey},
		{"bad allowed IP", api.Peer{PublicKey: testKey(1).String(), AllowedIPs: []string{"10.64.0.1"}}, nil, false, errBadAllowedIP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, spec, err := parsePeer(tc.p)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			got := []string{}
			for _, a := range spec.allowedIPs() {
				got = append(got, a.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("allowed (-want +got):\n%s", diff)
			}
			if k.String() != tc.p.PublicKey {
				t.Errorf("key changed")
			}
			if spec.digest(k) != digestOf(tc.p) {
				t.Errorf("digest is not the wire peer's")
			}
			if (spec.x == nil) != tc.compact {
				t.Errorf("compact = %v, want %v", spec.x == nil, tc.compact)
			}
		})
	}
}

// TestSnapshotInStep: a snapshot onto a device the agent knows holds its
// desired set is diffed in memory, without reading the device; after a
// failed configure or a resync request it reads the device again, and
// repairs a change made behind its back.
func TestSnapshotInStep(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	cc := &countingClient{Client: f}
	d := newDevice(wg.NewControl(cc), "tl0")
	build := func(from, to int) *setBuilder {
		b := newSetBuilder(0)
		for _, p := range testPeers(from, to) {
			b.add(p)
		}
		return b
	}
	if r, err := d.applyFull(build(0, 50), 1); err != nil || !r.read || cc.devices.Load() != 1 {
		t.Fatalf("first snapshot: %+v, %v, %d reads; want one read", r, err, cc.devices.Load())
	}
	r, err := d.applyFull(build(1, 51), 2)
	if err != nil || r.read || cc.devices.Load() != 1 || r.set != 1 || r.removed != 1 {
		t.Fatalf("snapshot in step: %+v, %v, %d reads; want no read, 1 set, 1 removed", r, err, cc.devices.Load())
	}
	want := map[string]api.Peer{}
	for _, p := range testPeers(1, 51) {
		want[p.PublicKey] = p
	}
	if diff := cmp.Diff(wantDevicePeers(want), fakeDevicePeers(t, f, "tl0")); diff != "" {
		t.Fatalf("device (-want +got):\n%s", diff)
	}
	// Someone removes a peer by hand; the control plane asks for a resync.
	f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: testKey(7), Remove: true}}})
	d.distrust()
	if r, err := d.applyFull(build(1, 51), 3); err != nil || !r.read || r.set != 1 {
		t.Fatalf("snapshot after distrust: %+v, %v; want a read that re-adds the peer", r, err)
	}
	// A failed configure puts the device out of step too.
	f.FailConfigure(wg.ErrNoKernel)
	if _, err := d.applyFull(build(2, 51), 4); err == nil {
		t.Fatal("no error")
	}
	reads := cc.devices.Load()
	if r, err := d.applyFull(build(2, 51), 5); err != nil || !r.read || cc.devices.Load() != reads+1 {
		t.Fatalf("snapshot after a failure: %+v, %v; want a read", r, err)
	}
	if diff := cmp.Diff(49, f.PeerCount("tl0")); diff != "" {
		t.Error(diff)
	}
}

// TestAddRecord: a binary snapshot record goes into the set as the wire
// peer it stands for would, digest included.
func TestAddRecord(t *testing.T) {
	for _, i := range []int{0, 1, 70000, 4_000_000} {
		p := testPeer(i)
		var rec [api.PeerRecordSize]byte
		v4, _ := netip.ParsePrefix(p.AllowedIPs[0])
		v6, _ := netip.ParsePrefix(p.AllowedIPs[1])
		if _, err := api.AppendPeerRecord(rec[:0], p.PublicKey, v4.Addr(), v6.Addr()); err != nil {
			t.Fatal(err)
		}
		a, b := newSetBuilder(1), newSetBuilder(1)
		a.add(p)
		b.addRecord(&rec)
		sa, _ := a.set.get(testKey(i))
		sb, ok := b.set.get(testKey(i))
		if a.hash != b.hash || b.set.len() != 1 || b.invalid != 0 || !ok || !sa.sameAs(sb) {
			t.Errorf("peer %d: record and wire peer differ", i)
		}
	}
}

// TestAntiEntropyByHash: a device holding exactly the desired set hashes
// to the desired set's hash, for the common peer form and for others in
// canonical form, so anti-entropy finds it in step by comparing hashes
// (holdsDesired) instead of diffing the set under the device lock; a
// device that drifted, or a peer the control plane sent in another form,
// does not match and is diffed (and repaired) as before.
func TestAntiEntropyByHash(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	d := newDevice(wg.NewControl(f), "tl0")
	peers := testPeers(0, 40)
	peers = append(peers,
		api.Peer{PublicKey: testKey(100).String(), AllowedIPs: []string{"10.80.0.0/16", "10.81.0.1/32", "fd00:80::/64"}},
		api.Peer{PublicKey: testKey(101).String(), AllowedIPs: []string{"fd00::65/128"}})
	b := newSetBuilder(0)
	for _, p := range peers {
		b.add(p)
	}
	if _, err := d.applyFull(b, 1); err != nil {
		t.Fatal(err)
	}
	check := func(want bool) {
		t.Helper()
		cur, gen, err := d.readUnlocked()
		if err != nil {
			t.Fatal(err)
		}
		d.mu.Lock()
		got := d.holdsDesired(cur, gen, deviceHash(cur))
		d.mu.Unlock()
		if got != want {
			t.Fatalf("holdsDesired = %v, want %v", got, want)
		}
	}
	check(true)
	// Drift: an allowed IP changed by hand.
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: testKey(3), ReplaceAllowedIPs: true,
		AllowedIPs: mustCIDRs("10.99.0.3/32", "fd00::99/128")}}}); err != nil {
		t.Fatal(err)
	}
	check(false)
	if r, err := d.antiEntropy(); err != nil || r.set != 1 {
		t.Fatalf("anti-entropy after drift: %+v, %v; want the peer repaired", r, err)
	}
	check(true)
	// A peer sent in a form that is not canonical: the device's hash
	// cannot match, and anti-entropy diffs (finding nothing to do).
	b = newSetBuilder(0)
	for _, p := range append(peers, api.Peer{PublicKey: testKey(102).String(), AllowedIPs: []string{"fd00:0::66/128"}}) {
		b.add(p)
	}
	if _, err := d.applyFull(b, 2); err != nil {
		t.Fatal(err)
	}
	check(false)
	if r, err := d.antiEntropy(); err != nil || r.set+r.removed != 0 {
		t.Fatalf("anti-entropy: %+v, %v; want nothing to do", r, err)
	}
}
