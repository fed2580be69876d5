package agent

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestOverCapacity: a pool larger than the device holds. The agent
// applies the first peers by key, reports the counts, says why in one log
// line, and goes on with deltas (no snapshot loop): a removal frees a
// place for the next pending peer, an addition to a full device waits.
func TestOverCapacity(t *testing.T) {
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 130)...)
	h := newHarness(t, []string{cp.URL()}, nil)
	h.fake.AddDevice("tl0")
	h.fake.SetPeerLimit("tl0", 100)
	h.start()
	h.waitFor("the snapshot, reported", func() bool { return h.reported(cp) })

	onDevice := func() []int {
		d := fakeDevicePeers(t, h.fake, "tl0")
		var out []int
		for i := range 300 {
			if _, ok := d[testKey(i).String()]; ok {
				out = append(out, i)
			}
		}
		return out
	}
	span := func(from, to int, except ...int) []int {
		var out []int
		for i := from; i < to; i++ {
			if !slicesContains(except, i) {
				out = append(out, i)
			}
		}
		return out
	}
	if diff := cmp.Diff(span(0, 100), onDevice()); diff != "" {
		t.Fatalf("device holds (-want +got):\n%s", diff)
	}
	wantStatus := func(desired, pending int) func() bool {
		return func() bool {
			st, _ := cp.lastStatus()
			want := &api.OverCapacity{Desired: desired, Applied: desired - pending, NotApplied: pending}
			if pending == 0 {
				want = nil
			}
			return h.reported(cp) && st.PeerLimit == 100 && cmp.Equal(want, st.OverCapacity)
		}
	}
	h.waitFor("over_capacity 130/100/30", wantStatus(130, 30))

	// A removal frees a place: the smallest pending peer takes it. A
	// pending peer's removal changes nothing on the device.
	cp.remove(testPeer(5).PublicKey, testPeer(120).PublicKey)
	h.waitFor("over_capacity 128/100/28", wantStatus(128, 28))
	if diff := cmp.Diff(span(0, 101, 5), onDevice()); diff != "" {
		t.Errorf("device holds (-want +got):\n%s", diff)
	}
	// An addition to a full device waits.
	cp.upsert(testPeer(200))
	h.waitFor("over_capacity 129/100/29", wantStatus(129, 29))
	// Enough removals and everything fits.
	var rm []string
	for i := 10; i < 50; i++ {
		rm = append(rm, testPeer(i).PublicKey)
	}
	cp.remove(rm...)
	h.waitFor("everything applied", func() bool { return wantStatus(89, 0)() && h.inStep(cp) })

	logs := h.logs.String()
	if n := strings.Count(logs, "more peers than this node's WireGuard backend holds"); n != 1 {
		t.Errorf("%d capacity warnings, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, `"not_applied":30`) || !strings.Contains(logs, "fits on the device again") {
		t.Errorf("logs lack the counts or the all-clear:\n%s", logs)
	}
	if strings.Contains(logs, "applying to the device failed") {
		t.Errorf("the agent asked the device for more than it holds:\n%s", logs)
	}
	cp.with(func(cp *fakeCP) {
		if cp.fullBin+cp.fullJSON != 1 {
			t.Errorf("%d full snapshots, want 1: over capacity the agent keeps to deltas", cp.fullBin+cp.fullJSON)
		}
	})
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestOverCapacity70k: a 70,000-peer pool on a device of the userspace
// limit: 65,536 applied (the first by key), 4,464 counted as waiting.
func TestOverCapacity70k(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	f.SetPeerLimit("tl0", wg.UserspacePeerLimit)
	d := newDevice(wg.NewControl(f), "tl0")
	d.limit = wg.UserspacePeerLimit
	b := newSetBuilder(70000)
	for _, p := range testPeers(0, 70000) {
		b.add(p)
	}
	r, err := d.applyFull(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.pending != 4464 || f.PeerCount("tl0") != 65536 || !f.HasPeer("tl0", testKey(65535)) || f.HasPeer("tl0", testKey(65536)) {
		t.Fatalf("apply: %+v, device holds %d peers", r, f.PeerCount("tl0"))
	}
	s := d.summary()
	if s.desired != 70000 || s.pending != 4464 || s.limit != 65536 {
		t.Errorf("summary %+v", s)
	}
	// Anti-entropy keeps the same peers on the device.
	if r, err := d.antiEntropy(); err != nil || r.set+r.removed != 0 || r.pending != 4464 {
		t.Errorf("anti-entropy: %+v, %v; want no change", r, err)
	}
}
