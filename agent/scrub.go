package agent

import (
	"context"
	"log/slog"
	"net"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// The scrubber makes the device forget what it learned about idle
// clients. A WireGuard device remembers, per peer, the endpoint (the
// client's IP address and port) it last heard from, the time of the last
// handshake and byte counters. After a threshold (default 180 s, when
// WireGuard's session keys are dead anyway and the client must handshake
// again) the scrubber removes such a peer and adds it back with the same
// allowed IPs in one ConfigureDevice call; the fresh peer has no
// endpoint, no handshake time and zero counters. Both backends apply a
// remove and a re-add of the same key in one call in order (verified on
// the Fake and on wireguard-go by TestUserspaceScrubOneCall in agent/wg),
// so one call suffices and the peer is never missing between two calls.
//
// The scrubber never sees a peer's endpoint, handshake time or counters:
// agent/wg answers whether a peer is stale (wg.Control.DeviceStale) and
// hands out nothing else of its traffic (TestPrivacySource enforces it).
// Nothing about it is logged, kept, counted per peer or sent anywhere.
//
// # When it looks
//
// Reading a device is the scrubber's whole cost. A userspace device's
// process decides staleness itself and sends the stale peers alone
// (wg.Control.StalePeers; agent/wg/inproc.go), without the configuration
// lock every delta needs: a few milliseconds at 60,000 peers. A kernel
// device is dumped whole, in chunks between which sets go through. Still
// the scrubber reads only when a peer may have turned stale: each read
// tells it (recheck) how long until the earliest peer not stale now turns
// stale, capped at the threshold, since a client that makes first contact
// after the read turns stale no sooner. It reads again then, and never
// sooner than one tick after the last read, so peers turning stale within
// a tick of each other are scrubbed by one read. An idle node reads once
// per threshold (180 s) instead of once per tick (5 s). A peer is
// forgotten within threshold + tick (+ the read's own time) of its last
// handshake, as with a read every tick; a peer that gains an endpoint
// without completing a handshake, within the threshold.
//
// The read is made without the device lock the sync loop needs; only the
// re-adds take it. A peer a delta removed or changed meanwhile is not
// re-added, or re-added with its new allowed IPs. A client that
// handshakes in the instant between the read and the re-add loses that
// handshake and repeats it after WireGuard's rekey timeout.

// scrubOutcome is what one scrub read did.
type scrubOutcome struct {
	scrubbed int
	recheck  time.Duration
	// repaired is set when the read served anti-entropy too; fixed
	// counts what it repaired.
	repaired bool
	fixed    applyResult
}

// scrubRead reads the device and re-creates its stale peers. A peer
// re-added gets the desired allowed IPs (the device's own before the first
// snapshot); a stale peer that is not desired, or pending for want of
// capacity, is left to anti-entropy or the next sync, which remove it.
// Pairs of remove and re-add never straddle two calls. With repair, the
// same read also serves anti-entropy (drift repaired, as antiEntropy
// does) if no change went to the device since the read began, so an idle
// node reads its device once for both. It returns how many peers were
// scrubbed and how long until the next read is due.
func (d *device) scrubRead(now time.Time, after time.Duration, repair bool) (scrubOutcome, error) {
	d.mu.Lock()
	gen := d.gen
	d.mu.Unlock()
	read := d.wg.StalePeers
	if repair {
		read = d.wg.DeviceStale
	}
	cur, recheck, err := read(d.name, now, after)
	out := scrubOutcome{recheck: recheck}
	if err != nil {
		return out, err
	}
	var stale []*wg.Peer
	for i := range cur.Peers {
		if cur.Peers[i].Stale {
			stale = append(stale, &cur.Peers[i])
		}
	}
	if len(stale) == 0 && !repair {
		return out, nil
	}
	var h api.PeerSetHash
	if repair {
		h = deviceHash(cur)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if repair && d.state.set != nil && d.holdsDesired(cur, gen, h) {
		out.fixed = applyResult{peers: d.state.set.len(), read: true}
		out.repaired = true
	} else if repair && d.state.set != nil && gen == d.gen {
		d.self = cur.PublicKey
		d.state.pending = choosePending(d.state.set, cur, d.limit)
		cfgs := reconcile(d.state.set, d.state.pending, cur, d.batch)
		out.fixed = applyResult{peers: d.state.set.len(), pending: len(d.state.pending), read: true}
		out.fixed.set, out.fixed.removed = configCounts(cfgs)
		if out.fixed.calls, err = d.configure(cfgs); err != nil {
			return out, err
		}
		d.inStep, d.checked, out.repaired = true, d.now(), true
	}
	var changes []wgtypes.PeerConfig
	for _, p := range stale {
		var allowed []net.IPNet
		if d.state.set != nil {
			spec, ok := d.state.set.get(p.PublicKey)
			if _, wait := d.state.pending[p.PublicKey]; !ok || wait {
				continue
			}
			allowed = ipNets(spec.allowedIPs())
		} else {
			allowed = ipNets(p.AllowedIPs)
		}
		changes = append(changes,
			wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true},
			wgtypes.PeerConfig{PublicKey: p.PublicKey, AllowedIPs: allowed})
	}
	size := d.batch - d.batch%2
	if size < 2 {
		size = 2
	}
	n, err := d.configure(batch(changes, size))
	out.scrubbed = len(changes) / 2
	if err != nil {
		// Calls before the failing one went through.
		out.scrubbed = min(out.scrubbed, (n-1)*size/2)
	}
	return out, err
}

// nextScrub is how long the scrub loop waits after a read that started
// elapsed ago and found the next peer due in recheck: until just after
// that peer turns stale, but at least a tick after the read.
func nextScrub(recheck, elapsed, tick time.Duration) time.Duration {
	return max(tick, recheck+time.Millisecond) - elapsed
}

// scrubLoop scrubs until ctx ends, reading the device when a peer may be
// due (see "When it looks").
func (a *Agent) scrubLoop(ctx context.Context) {
	t := time.NewTimer(a.opts.ScrubTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := a.opts.Now()
		// Anti-entropy rides on this read when it would fall due before
		// the next one could come.
		repair := !a.dev.checkedSince(start.Add(a.opts.ScrubAfter - a.opts.AntiEntropyInterval))
		out, err := a.dev.scrubRead(start, a.opts.ScrubAfter, repair)
		n := out.scrubbed
		a.metrics.scrubbed.Add(float64(n))
		a.metrics.scrubReads.Inc()
		if out.repaired {
			a.logRepair(out.fixed)
		}
		wait := a.opts.ScrubTick
		switch {
		case err != nil:
			a.log.Warn("scrub failed", slog.Int(keyScrubbed, n), slog.Any(keyErr, err))
		default:
			wait = nextScrub(out.recheck, a.opts.Now().Sub(start), a.opts.ScrubTick)
			if n > 0 {
				a.log.Debug("scrubbed idle peers", slog.Int(keyScrubbed, n), slog.Duration(keyDuration, a.opts.Now().Sub(start)))
			}
		}
		t.Reset(max(wait, 0))
	}
}
