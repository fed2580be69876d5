package agent

import (
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// childCPU is the CPU time of waited-for child processes so far.
func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFullDiffAt60k applies a one-peer change (one peer added, then
// removed again: two ops per round) to a userspace device holding 60,000
// peers by a full diff of the whole set, four ways, interleaved in the
// same run, and reports the CPU per op (process and children, so the
// in-process device's own work counts for each):
//
//   - agent-snapshot: the agent's snapshot path when it knows the device
//     holds its desired set: parse the 60,000 wire peers, diff with the
//     desired set in memory, configure the change;
//
//   - agent-read: the same with a read of the device (the path after a
//     failure or a resync request; anti-entropy reads the same way);
//
//   - antientropy: the agent's anti-entropy after the device was changed
//     behind its back: read the device, diff with the desired set held in
//     memory, configure the change;
//
//   - wgmanager: Mullvad's relay agent's sync (wgManagerSync): parse the
//     API's peers, read the device through wgctrl, diff, configure;
//
//   - syncconf: `wg syncconf` with a config file of the whole set, when
//     wg(8) is installed.
//
//     go test ./agent -run '^$' -bench FullDiffAt60k -benchtime 3x -timeout 30m
func BenchmarkFullDiffAt60k(b *testing.B) {
	bd := newBenchDevice(b, "f")
	base := testPeers(0, benchPeers)
	plus := append(append([]api.Peer(nil), base...), testPeer(benchPeers+1))
	d := newDevice(bd.iface.Client, bd.name())
	d.limit = bd.iface.PeerLimit
	build := func(ps []api.Peer) *setBuilder {
		s := newSetBuilder(len(ps))
		for _, p := range ps {
			s.add(p)
		}
		return s
	}
	if _, err := d.applyFull(build(base), 1); err != nil {
		b.Fatal(err)
	}
	wgm := func(ps []api.Peer) []wgmPeer {
		out := make([]wgmPeer, len(ps))
		for i, p := range ps {
			out[i] = wgmPeer{Pubkey: p.PublicKey, IPv4: p.AllowedIPs[0], IPv6: p.AllowedIPs[1]}
		}
		return out
	}
	wgmBase, wgmPlus := wgm(base), wgm(plus)
	wgBin, wgErr := exec.LookPath("wg")
	dir := b.TempDir()
	confBase, confPlus := filepath.Join(dir, "base.conf"), filepath.Join(dir, "plus.conf")
	if wgErr == nil {
		bd.writeConf(b, confBase, base)
		bd.writeConf(b, confPlus, plus)
	}
	check := func(what string, n int) {
		if got := peerCount(b, bd.raw, bd.name()); got != n {
			b.Fatalf("%s: device holds %d peers, want %d", what, got, n)
		}
	}
	rev := int64(1)
	var agentSnap, agentRead, antiT, wgmT, syncT time.Duration
	ops := 0
	timed := func(f func()) time.Duration {
		c0, k0 := cpuTime(), childCPU()
		f()
		return cpuTime() - c0 + childCPU() - k0
	}
	b.Logf("load before: %s", loadAvg())
	for b.Loop() {
		for _, step := range []struct {
			peers []api.Peer
			wgm   []wgmPeer
			conf  string
			n     int
		}{{plus, wgmPlus, confPlus, benchPeers + 1}, {base, wgmBase, confBase, benchPeers}} {
			ops++
			rev++
			agentSnap += timed(func() {
				r, err := d.applyFull(build(step.peers), rev)
				if err != nil || r.read || r.set+r.removed != 1 {
					b.Fatalf("agent snapshot in step: %+v, %v", r, err)
				}
			})
			check("agent snapshot", step.n)
			// Back, then the same change with a read of the device.
			other := plus
			if step.n == benchPeers+1 {
				other = base
			}
			rev++
			if _, err := d.applyFull(build(other), rev); err != nil {
				b.Fatal(err)
			}
			rev++
			agentRead += timed(func() {
				d.distrust()
				r, err := d.applyFull(build(step.peers), rev)
				if err != nil || !r.read || r.set+r.removed != 1 {
					b.Fatalf("agent snapshot with a read: %+v, %v", r, err)
				}
			})
			check("agent read", step.n)
			revert := func() {
				rev++
				d.distrust()
				if _, err := d.applyFull(build(other), rev); err != nil {
					b.Fatal(err)
				}
			}
			// The device changes behind the agent's back (untimed), and
			// anti-entropy reads it and repairs it; the desired set is
			// already in memory, so this is the read and diff alone.
			revert()
			rev++
			d.mu.Lock()
			d.state.set, d.state.hash = build(step.peers).set, api.PeerSetHash{}
			d.mu.Unlock()
			antiT += timed(func() {
				r, err := d.antiEntropy()
				if err != nil || r.set+r.removed != 1 {
					b.Fatalf("anti-entropy: %+v, %v", r, err)
				}
			})
			check("anti-entropy", step.n)
			revert()
			wgmT += timed(func() {
				if err := wgManagerSync(bd.raw, bd.name(), step.wgm); err != nil {
					b.Fatal(err)
				}
			})
			check("wg-manager", step.n)
			if wgErr == nil {
				revert()
				syncT += timed(func() { bd.syncconf(b, wgBin, step.conf) })
				check("wg syncconf", step.n)
			}
			// Leave the agent's view matching the device.
			d.distrust()
			rev++
			if _, err := d.applyFull(build(step.peers), rev); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("load after: %s", loadAvg())
	per := func(t time.Duration) float64 { return float64(t.Microseconds()) / 1000 / float64(ops) }
	b.ReportMetric(per(agentSnap), "agent-snapshot-cpu-ms/op")
	b.ReportMetric(per(agentRead), "agent-read-cpu-ms/op")
	b.ReportMetric(per(wgmT), "wgmanager-cpu-ms/op")
	b.ReportMetric(float64(agentSnap)/float64(wgmT), "agent-snapshot/wgmanager")
	b.ReportMetric(float64(agentRead)/float64(wgmT), "agent-read/wgmanager")
	b.ReportMetric(per(antiT), "antientropy-cpu-ms/op")
	b.ReportMetric(float64(antiT)/float64(wgmT), "antientropy/wgmanager")
	if wgErr == nil {
		b.ReportMetric(per(syncT), "syncconf-cpu-ms/op")
		b.ReportMetric(float64(agentRead)/float64(syncT), "agent-read/syncconf")
	}
}
