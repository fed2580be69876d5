package agent

import (
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
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

			n, _, err := d.scrub(now, 180*time.Second)
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
	if n, _, err := d.scrub(now, 180*time.Second); n != 2 || err != nil {
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
	if n, _, err := d.scrub(now, 180*time.Second); n != 1 || err != nil {
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
	if n, _, err := d.scrub(now, time.Minute); n != 9 || err != nil {
		t.Fatalf("scrub = %d, %v", n, err)
	}
	if got := f.ConfigureCalls() - calls; got != 5 { // 2 pairs per call
		t.Errorf("%d calls, want 5", got)
	}
	if f.PeerCount("tl0") != 9 {
		t.Errorf("peers lost")
	}
}

// blockingReads is a device whose reads wait until released, as a read of
// a large device takes long.
type blockingReads struct {
	wg.Client
	started chan struct{}
	release chan struct{}
}

func (b *blockingReads) Device(name string) (*wgtypes.Device, error) {
	b.started <- struct{}{}
	<-b.release
	return b.Client.Device(name)
}

// TestScrubReadDoesNotBlockDeltas: while the scrubber reads the device, a
// delta applies at once; the scrub then re-adds the stale peer it read
// with the allowed IPs the delta gave it, and skips one the delta removed.
func TestScrubReadDoesNotBlockDeltas(t *testing.T) {
	now := time.Now()
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
	for _, k := range []int{1, 2} {
		f.SetTraffic("tl0", testKey(k), wg.Traffic{LastHandshake: now.Add(-time.Hour), ReceiveBytes: 1})
	}
	br := &blockingReads{Client: f, started: make(chan struct{}), release: make(chan struct{})}
	d.wg = wg.NewControl(br)
	type result struct {
		n   int
		err error
	}
	done := make(chan result)
	go func() {
		n, _, err := d.scrub(now, 180*time.Second)
		done <- result{n, err}
	}()
	<-br.started // the scrubber is reading

	moved := testPeer(1)
	moved.AllowedIPs = []string{"10.64.200.1/32"}
	applied := make(chan error)
	go func() {
		_, err := d.applyDelta([]api.Peer{moved}, []string{testPeer(2).PublicKey}, 2)
		applied <- err
	}()
	select {
	case err := <-applied:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a delta waited behind the scrubber's device read")
	}
	close(br.release)
	r := <-done
	if r.err != nil || r.n != 1 {
		t.Fatalf("scrub = %d, %v; want 1 (peer 2 was removed meanwhile)", r.n, r.err)
	}
	if diff := cmp.Diff(map[string][]string{
		testKey(0).String(): testPeer(0).AllowedIPs,
		testKey(1).String(): {"10.64.200.1/32"},
	}, fakeDevicePeers(t, f, "tl0")); diff != "" {
		t.Errorf("device (-want +got):\n%s", diff)
	}
	if p := peerByKey(mustRaw(t, f), testKey(1)); !p.LastHandshakeTime.IsZero() || p.ReceiveBytes != 0 {
		t.Error("the stale peer kept its traffic state")
	}
}

func mustRaw(t *testing.T, f *wg.Fake) *wgtypes.Device {
	t.Helper()
	d, err := f.Device("tl0")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestNextScrub: the scrubber reads again just after the next peer turns
// stale, never sooner than a tick after the last read.
func TestNextScrub(t *testing.T) {
	const tick = 5 * time.Second
	for _, tc := range []struct {
		recheck, elapsed, want time.Duration
	}{
		{180 * time.Second, 0, 180*time.Second + time.Millisecond},             // idle: once per threshold
		{180 * time.Second, 300 * time.Millisecond, 179701 * time.Millisecond}, // the read's time counts
		{time.Second, 0, tick}, // due soon: a tick, not sooner
		{0, time.Second, tick - time.Second},
		{40 * time.Second, 0, 40*time.Second + time.Millisecond},
	} {
		if got := nextScrub(tc.recheck, tc.elapsed, tick); got != tc.want {
			t.Errorf("nextScrub(%v, %v) = %v, want %v", tc.recheck, tc.elapsed, got, tc.want)
		}
	}
}

// TestScrubReadRepairs: with repair, the scrubber's read serves
// anti-entropy too (a peer removed by hand comes back, a rogue one goes);
// not when a change reached the device while it read.
func TestScrubReadRepairs(t *testing.T) {
	now := time.Now()
	f := wg.NewFake()
	f.AddDevice("tl0")
	d := newDevice(wg.NewControl(f), "tl0")
	b := newSetBuilder(0)
	for _, p := range testPeers(0, 5) {
		b.add(p)
	}
	if _, err := d.applyFull(b, 1); err != nil {
		t.Fatal(err)
	}
	drift := func() {
		k, spec, _ := parsePeer(testPeer(500))
		f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: testKey(2), Remove: true}, setPeer(k, spec)}})
	}
	want := map[string]api.Peer{}
	for _, p := range testPeers(0, 5) {
		want[p.PublicKey] = p
	}
	drift()
	out, err := d.scrubRead(now, 180*time.Second, false)
	if err != nil || out.repaired || f.PeerCount("tl0") != 5 || f.HasPeer("tl0", testKey(2)) {
		t.Fatalf("without repair: %+v, %v", out, err)
	}
	out, err = d.scrubRead(now, 180*time.Second, true)
	if err != nil || !out.repaired || out.fixed.set != 1 || out.fixed.removed != 1 {
		t.Fatalf("with repair: %+v, %v", out, err)
	}
	if diff := cmp.Diff(wantDevicePeers(want), fakeDevicePeers(t, f, "tl0")); diff != "" {
		t.Errorf("device after repair (-want +got):\n%s", diff)
	}
	if !d.checkedSince(now) {
		t.Error("repair not recorded")
	}

	// A delta lands while the scrubber reads: the read is stale, no repair.
	drift()
	br := &blockingReads{Client: f, started: make(chan struct{}), release: make(chan struct{})}
	d.wg = wg.NewControl(br)
	done := make(chan scrubOutcome)
	go func() {
		out, _ := d.scrubRead(now, 180*time.Second, true)
		done <- out
	}()
	<-br.started
	if _, err := d.applyDelta([]api.Peer{testPeer(6)}, nil, 2); err != nil {
		t.Fatal(err)
	}
	close(br.release)
	if out := <-done; out.repaired {
		t.Errorf("repaired from a read a delta overtook: %+v", out)
	}
}

// scrub reads the device and re-creates its stale peers, without serving
// anti-entropy; see scrubRead.
func (d *device) scrub(now time.Time, after time.Duration) (int, time.Duration, error) {
	out, err := d.scrubRead(now, after, false)
	return out.scrubbed, out.recheck, err
}
