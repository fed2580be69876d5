package agent

import (
	"net"
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
		return wg.Peer{PublicKey: testKey(i), AllowedIPs: mustCIDRs(allowed...)}
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
			name:    "in step with allowed IPs in another order and 16-byte IPv4",
			desired: []api.Peer{p0},
			device: []wg.Peer{{PublicKey: testKey(0), AllowedIPs: []net.IPNet{
				mustCIDRs(p0.AllowedIPs[1])[0],
				{IP: net.ParseIP("10.64.0.0"), Mask: net.CIDRMask(32, 32)},
			}}},
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
			got := reconcile(setOf(t, tc.desired...), dev, batchSize)
			if diff := cmp.Diff(tc.want, got, ipNetComparer); diff != "" {
				t.Errorf("reconcile (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReconcileBatches(t *testing.T) {
	desired := setOf(t, testPeers(0, 2500)...)
	cfgs := reconcile(desired, &wg.Device{}, 1000)
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
	if n := len(reconcile(desired, &wg.Device{}, batchSize)); n != 3 {
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
			for _, c := range reconcile(setOf(t, tc.start...), &wg.Device{}, batchSize) {
				if err := f.ConfigureDevice("tl0", c); err != nil {
					t.Fatal(err)
				}
			}
			target := setOf(t, tc.target...)
			cur, _ := wg.NewControl(f).Device("tl0")
			for _, c := range reconcile(target, cur, batchSize) {
				if c.ReplacePeers {
					t.Fatal("reconcile used ReplacePeers")
				}
				if err := f.ConfigureDevice("tl0", c); err != nil {
					t.Fatal(err)
				}
			}
			cur, _ = wg.NewControl(f).Device("tl0")
			if again := reconcile(target, cur, batchSize); len(again) != 0 {
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
		name string
		p    api.Peer
		want []string
		err  error
	}{
		{"device", testPeer(1), []string{"10.64.0.1/32", "fd74:6c73:7670:1::3/128"}, nil},
		{"sorted, deduplicated, masked", api.Peer{PublicKey: testKey(1).String(), AllowedIPs: []string{"fd00::1/64", "10.64.0.9/24", "10.64.0.0/24"}},
			[]string{"10.64.0.0/24", "fd00::/64"}, nil},
		{"no allowed IPs", api.Peer{PublicKey: testKey(1).String()}, []string{}, nil},
		{"bad key", api.Peer{PublicKey: "not-a-key", AllowedIPs: []string{"10.64.0.1/32"}}, nil, errBadKey},
		{"short key", api.Peer{PublicKey: "AAAA"}, nil, errBadKey},
		{"bad allowed IP", api.Peer{PublicKey: testKey(1).String(), AllowedIPs: []string{"10.64.0.1"}}, nil, errBadAllowedIP},
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
			for _, a := range spec.allowed {
				got = append(got, a.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("allowed (-want +got):\n%s", diff)
			}
			if k.String() != tc.p.PublicKey {
				t.Errorf("key changed")
			}
			if spec.digest != digestOf(tc.p) {
				t.Errorf("digest is not the wire peer's")
			}
		})
	}
}
