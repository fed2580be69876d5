package agent

import (
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
)

func TestScrub(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ep := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	for _, tc := range []struct {
		name      string
		traffic   wg.Traffic
		wantScrub bool
	}{
		{"handshake 181s ago", wg.Traffic{Endpoint: ep, LastHandshake: now.Add(-181 * time.Second), ReceiveBytes: 1000, TransmitBytes: 2000}, true},
		{"handshake 179s ago", wg.Traffic{Endpoint: ep, LastHandshake: now.Add(-179 * time.Second), ReceiveBytes: 1000, TransmitBytes: 2000}, false},
		{"handshake exactly 180s ago", wg.Traffic{Endpoint: ep, LastHandshake: now.Add(-180 * time.Second)}, false},
		{"never handshaked, no endpoint", wg.Traffic{}, false},
		{"never handshaked, endpoint", wg.Traffic{Endpoint: ep}, true},
		{"never handshaked, counted bytes", wg.Traffic{ReceiveBytes: 148}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := wg.NewFake()
			f.AddDevice("tl0")
			d := newDevice(wg.NewControl(f), "tl0")
			b := newSetBuilder(0)
			for _, p := range testPeers(0, 3) {
				b.add(p)
			}
			if _, err := d.applyFull(b, 1); err != nil {
				t.Fatal(err)
			}
			if err := f.SetTraffic("tl0", testKey(1), tc.traffic); err != nil {
				t.Fatal(err)
			}
			before, _ := f.Device("tl0")
			calls := f.ConfigureCalls()

			n, err := d.scrub(now, 180*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := f.Device("tl0")
			if !tc.wantScrub {
				if n != 0 || f.ConfigureCalls() != calls {
					t.Errorf("scrubbed %d peers with %d calls, want none", n, f.ConfigureCalls()-calls)
				}
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("device changed (-before +after):\n%s", diff)
				}
				return
			}
			if n != 1 || f.ConfigureCalls() != calls+1 {
				t.Errorf("scrubbed %d peers with %d calls, want 1 with 1", n, f.ConfigureCalls()-calls)
			}
			for i, p := range after.Peers {
				if p.PublicKey != testKey(1) {
					if diff := cmp.Diff(peerByKey(before, p.PublicKey), p); diff != "" {
						t.Errorf("another peer changed (-before +after):\n%s", diff)
					}
					continue
				}
				if p.Endpoint != nil || !p.LastHandshakeTime.IsZero() || p.ReceiveBytes != 0 || p.TransmitBytes != 0 {
					t.Errorf("peer %d still has endpoint %v, handshake %v, rx %d, tx %d", i, p.Endpoint != nil, !p.LastHandshakeTime.IsZero(), p.ReceiveBytes, p.TransmitBytes)
				}
				if diff := cmp.Diff(peerByKey(before, p.PublicKey).AllowedIPs, p.AllowedIPs, ipNetComparer); diff != "" {
					t.Errorf("allowed IPs changed (-before +after):\n%s", diff)
				}
			}
			if len(after.Peers) != 3 {
				t.Errorf("device has %d peers after scrub, want 3", len(after.Peers))
			}
		})
	}
}

func peerByKey(d *wgtypes.Device, k wgtypes.Key) wgtypes.Peer {
	for _, p := range d.Peers {
		if p.PublicKey == k {
			return p
		}
	}
	return wgtypes.Peer{}
}

// TestScrubBeforeSnapshot covers a restarted agent over a kernel device
// whose peers are there before the first snapshot: stale peers are
// re-created with the device's own allowed IPs. After the snapshot, a
// stale peer that is not desired is left to sync to remove.
func TestScrubBeforeSnapshot(t *testing.T) {
	now := time.Now()
	f := wg.NewFake()
	f.AddDevice("tl0")
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{
		{PublicKey: testKey(1), AllowedIPs: mustCIDRs("10.64.0.1/32", "fd74::1/128")},
		{PublicKey: testKey(2), AllowedIPs: mustCIDRs("10.64.0.2/32")},
	}}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{1, 2} {
		f.SetTraffic("tl0", testKey(k), wg.Traffic{LastHandshake: now.Add(-time.Hour), ReceiveBytes: 1})
	}
	d := newDevice(wg.NewControl(f), "tl0")
	if n, err := d.scrub(now, 180*time.Second); n != 2 || err != nil {
		t.Fatalf("scrub = %d, %v; want 2", n, err)
	}
	if diff := cmp.Diff(map[string][]string{
		testKey(1).String(): {"10.64.0.1/32", "fd74::1/128"},
		testKey(2).String(): {"10.64.0.2/32"},
	}, fakeDevicePeers(t, f, "tl0")); diff != "" {
		t.Errorf("device (-want +got):\n%s", diff)
	}
	// Now the desired set holds peer 1 only.
	d.state.set = setOf(t, testPeer(1))
	for _, k := range []int{1, 2} {
		f.SetTraffic("tl0", testKey(k), wg.Traffic{LastHandshake: now.Add(-time.Hour)})
	}
	if n, err := d.scrub(now, 180*time.Second); n != 1 || err != nil {
		t.Fatalf("scrub = %d, %v; want 1", n, err)
	}
	got := fakeDevicePeers(t, f, "tl0")
	if diff := cmp.Diff(testPeer(1).AllowedIPs, got[testKey(1).String()]); diff != "" {
		t.Errorf("peer 1 re-added with (-desired +got):\n%s", diff)
	}
}

// TestScrubBatches keeps each remove and its re-add in the same call.
func TestScrubBatches(t *testing.T) {
	now := time.Now()
	f := wg.NewFake()
	f.AddDevice("tl0")
	d := newDevice(wg.NewControl(f), "tl0")
	d.batch = 5 // odd on purpose: pairs must not straddle calls
	b := newSetBuilder(0)
	for _, p := range testPeers(0, 9) {
		b.add(p)
	}
	if _, err := d.applyFull(b, 1); err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		f.SetTraffic("tl0", testKey(i), wg.Traffic{LastHandshake: now.Add(-time.Hour)})
	}
	calls := f.ConfigureCalls()
	if n, err := d.scrub(now, time.Minute); n != 9 || err != nil {
		t.Fatalf("scrub = %d, %v", n, err)
	}
	if got := f.ConfigureCalls() - calls; got != 5 { // 2 pairs per call
		t.Errorf("%d calls, want 5", got)
	}
	if f.PeerCount("tl0") != 9 {
		t.Errorf("peers lost")
	}
}
