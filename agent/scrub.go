package agent

import (
	"context"
	"log/slog"
	"net"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
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
// A peer is forgotten within threshold + tick of its last handshake. A
// client that handshakes in the instant between the read and the re-add
// loses that handshake and repeats it after WireGuard's rekey timeout.

// scrub reads the device and re-creates its stale peers. A peer re-added
// gets the desired allowed IPs (the device's own before the first
// snapshot); a stale peer that is not desired is left to anti-entropy or
// the next sync, which remove it. Pairs of remove and re-add never straddle
// two calls. It returns how many peers were scrubbed.
func (d *device) scrub(now time.Time, after time.Duration) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.wg.DeviceStale(d.name, now, after)
	if err != nil {
		return 0, err
	}
	var changes []wgtypes.PeerConfig
	for i := range cur.Peers {
		p := &cur.Peers[i]
		if !p.Stale {
			continue
		}
		var allowed []net.IPNet
		if d.state.set != nil {
			spec, ok := d.state.set[p.PublicKey]
			if !ok {
				continue
			}
			allowed = ipNets(spec.allowed)
		} else {
			allowed = slices.Clone(p.AllowedIPs)
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
	scrubbed := len(changes) / 2
	if err != nil {
		// Calls before the failing one went through.
		scrubbed = min(scrubbed, (n-1)*size/2)
	}
	return scrubbed, err
}

// scrubLoop scrubs every tick until ctx ends.
func (a *Agent) scrubLoop(ctx context.Context) {
	t := time.NewTicker(a.opts.ScrubTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n, err := a.dev.scrub(a.opts.Now(), a.opts.ScrubAfter)
		a.metrics.scrubbed.Add(float64(n))
		switch {
		case err != nil:
			a.log.Warn("scrub failed", slog.Int(keyScrubbed, n), slog.Any(keyErr, err))
		case n > 0:
			a.log.Debug("scrubbed idle peers", slog.Int(keyScrubbed, n), slog.Duration(keyDuration, time.Since(start)))
		}
	}
}
