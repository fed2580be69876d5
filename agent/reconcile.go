package agent

import (
	"bytes"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
)

// batchSize is the most peer entries one ConfigureDevice call carries:
// big enough that applying 60,000 peers takes 60 calls, small enough that
// one call neither holds the device long nor builds a huge message.
const batchSize = 1000

// reconcile returns the configs that make current's peers exactly
// desired, in batches of at most size peer entries: peers the device has
// and desired lacks are removed, peers whose allowed IPs differ get them
// replaced (which keeps their session), missing peers are added. It never
// sets ReplacePeers, which would drop every session on a live device, and
// it never touches the device's own fields. A device already in step
// yields no config. A desired peer with the device's own public key is
// left out: devices ignore such a peer, so it could never converge.
//
// Pending peers (desired, but kept off the device for want of capacity)
// count as not desired.
//
// The order is deterministic: removes and updates in the device's peer
// order, then additions by key.
func reconcile(desired *peerSet, pending map[wgtypes.Key]struct{}, current *wg.Device, size int) []wgtypes.Config {
	var removes, updates []wgtypes.PeerConfig
	present := 0
	for i := range current.Peers {
		p := &current.Peers[i]
		spec, ok := desired.get(p.PublicKey)
		if _, wait := pending[p.PublicKey]; wait {
			ok = false
		}
		if !ok {
			removes = append(removes, wgtypes.PeerConfig{PublicKey: p.PublicKey, Remove: true})
			continue
		}
		present++
		var buf [4]netip.Prefix
		if !sameAllowed(spec.appendAllowed(buf[:0]), p.AllowedIPs) {
			updates = append(updates, setPeer(p.PublicKey, spec))
		}
	}
	var adds []wgtypes.Key
	if present < desired.len()-len(pending) {
		onDevice := make(map[wgtypes.Key]struct{}, len(current.Peers))
		for i := range current.Peers {
			onDevice[current.Peers[i].PublicKey] = struct{}{}
		}
		for k := range desired.m {
			_, wait := pending[k]
			if _, ok := onDevice[k]; !ok && !wait && k != current.PublicKey {
				adds = append(adds, k)
			}
		}
		slices.SortFunc(adds, func(a, b wgtypes.Key) int { return bytes.Compare(a[:], b[:]) })
	}
	changes := make([]wgtypes.PeerConfig, 0, len(removes)+len(updates)+len(adds))
	changes = append(append(changes, removes...), updates...)
	for _, k := range adds {
		spec, _ := desired.get(k)
		changes = append(changes, setPeer(k, spec))
	}
	return batch(changes, size)
}

// batch splits peer configs into configs of at most size peers each.
func batch(changes []wgtypes.PeerConfig, size int) []wgtypes.Config {
	if len(changes) == 0 {
		return nil
	}
	out := make([]wgtypes.Config, 0, (len(changes)+size-1)/size)
	for len(changes) > 0 {
		n := min(size, len(changes))
		out = append(out, wgtypes.Config{Peers: changes[:n:n]})
		changes = changes[n:]
	}
	return out
}

// sameAllowed reports whether a device's allowed IPs (masked) are
// exactly want (sorted, masked), in any order.
func sameAllowed(want []netip.Prefix, have []netip.Prefix) bool {
	if len(want) != len(have) {
		return false
	}
	if slices.Equal(want, have) {
		return true
	}
	var buf [4]netip.Prefix
	got := append(buf[:0], have...)
	slices.SortFunc(got, comparePrefixes)
	return slices.Equal(want, got)
}

// configCounts counts what configs do: peers set (added or updated) and
// removed. Logs carry these numbers, never the peers.
func configCounts(cfgs []wgtypes.Config) (set, removed int) {
	for _, c := range cfgs {
		for _, p := range c.Peers {
			if p.Remove {
				removed++
			} else {
				set++
			}
		}
	}
	return set, removed
}
