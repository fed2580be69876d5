package agent

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// peerSpec is one desired peer: its allowed IPs parsed, masked, sorted and
// deduplicated (the form a device reports them in, up to order), and its
// share of the peer set hash, computed from the peer exactly as the
// control plane sent it.
type peerSpec struct {
	allowed []netip.Prefix
	digest  api.PeerSetHash
}

// peerSet is the desired peers by public key.
type peerSet map[wgtypes.Key]peerSpec

// Parse errors name what is wrong, never the key or address at fault.
var (
	errBadKey       = errors.New("peer: public key is not 32 bytes of base64")
	errBadAllowedIP = errors.New("peer: allowed IP is not a prefix")
)

// parsePeer checks and converts a peer from the control plane.
func parsePeer(p api.Peer) (wgtypes.Key, peerSpec, error) {
	k, err := wgtypes.ParseKey(p.PublicKey)
	if err != nil {
		return wgtypes.Key{}, peerSpec{}, errBadKey
	}
	allowed := make([]netip.Prefix, 0, len(p.AllowedIPs))
	for _, s := range p.AllowedIPs {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return wgtypes.Key{}, peerSpec{}, errBadAllowedIP
		}
		allowed = append(allowed, pf.Masked())
	}
	return k, peerSpec{allowed: sortPrefixes(allowed), digest: digestOf(p)}, nil
}

// digestOf is p's share of the peer set hash, as api.PeerSetHash defines
// it: toggling p into an empty set gives it.
func digestOf(p api.Peer) api.PeerSetHash {
	var d api.PeerSetHash
	d.Toggle(p)
	return d
}

// xorInto toggles a digest in or out of h.
func xorInto(h *api.PeerSetHash, d api.PeerSetHash) {
	for i := range h {
		h[i] ^= d[i]
	}
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, comparePrefixes)
	return slices.Compact(ps)
}

// ipNets converts allowed IPs to wgctrl's form.
func ipNets(ps []netip.Prefix) []net.IPNet {
	out := make([]net.IPNet, len(ps))
	for i, p := range ps {
		out[i] = net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	}
	return out
}

// setBuilder collects a full snapshot into a peer set and its hash. A key
// the snapshot repeats keeps its last entry.
type setBuilder struct {
	set     peerSet
	hash    api.PeerSetHash
	invalid int
}

func newSetBuilder(n int) *setBuilder {
	return &setBuilder{set: make(peerSet, n)}
}

// add puts p in the set, or counts it as invalid.
func (b *setBuilder) add(p api.Peer) {
	k, spec, err := parsePeer(p)
	if err != nil {
		b.invalid++
		return
	}
	if old, ok := b.set[k]; ok {
		xorInto(&b.hash, old.digest)
	}
	b.set[k] = spec
	xorInto(&b.hash, spec.digest)
}

// peerState is the desired peer set at the applied revision, with its hash
// kept up to date change by change.
type peerState struct {
	// set is nil until the first full snapshot is applied.
	set      peerSet
	hash     api.PeerSetHash
	revision int64
	// pending are desired peers kept off the device because it holds no
	// more; nil when every desired peer fits.
	pending map[wgtypes.Key]struct{}
}

// delta records an incremental answer in s and returns the peer configs
// that bring a device holding the old set to the new one: removes first,
// then upserts. An upsert that changes nothing on the device (same key,
// same allowed IPs) yields no config but still updates the hash. Invalid
// peers are skipped and counted. With a limit (0: none), a new peer that
// does not fit becomes pending, and places that removes free go to
// pending peers in key order.
func (s *peerState) delta(upserts []api.Peer, removes []string, limit int) (changes []wgtypes.PeerConfig, invalid int) {
	freed := false
	for _, r := range removes {
		k, err := wgtypes.ParseKey(r)
		if err != nil {
			invalid++
			continue
		}
		old, ok := s.set[k]
		if !ok {
			continue
		}
		xorInto(&s.hash, old.digest)
		delete(s.set, k)
		if _, wait := s.pending[k]; wait {
			delete(s.pending, k)
			continue
		}
		changes = append(changes, wgtypes.PeerConfig{PublicKey: k, Remove: true})
		freed = true
	}
	for _, p := range upserts {
		k, spec, err := parsePeer(p)
		if err != nil {
			invalid++
			continue
		}
		old, ok := s.set[k]
		if ok {
			xorInto(&s.hash, old.digest)
		}
		s.set[k] = spec
		xorInto(&s.hash, spec.digest)
		if _, wait := s.pending[k]; wait {
			continue
		}
		if ok && slices.Equal(old.allowed, spec.allowed) {
			continue
		}
		if !ok && limit > 0 && len(s.set)-len(s.pending) > limit {
			if s.pending == nil {
				s.pending = map[wgtypes.Key]struct{}{}
			}
			s.pending[k] = struct{}{}
			continue
		}
		changes = append(changes, setPeer(k, s.set[k]))
	}
	if freed && len(s.pending) > 0 {
		room := limit - (len(s.set) - len(s.pending))
		for _, k := range firstKeys(s.pending, room) {
			delete(s.pending, k)
			changes = append(changes, setPeer(k, s.set[k]))
		}
	}
	if len(s.pending) == 0 {
		s.pending = nil
	}
	return changes, invalid
}

// firstKeys returns the n smallest keys of m, in order.
func firstKeys(m map[wgtypes.Key]struct{}, n int) []wgtypes.Key {
	if n <= 0 {
		return nil
	}
	keys := make([]wgtypes.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b wgtypes.Key) int { return bytes.Compare(a[:], b[:]) })
	return keys[:min(n, len(keys))]
}

// setPeer is the config that creates a peer, or makes an existing one's
// allowed IPs exactly spec's without touching its session.
func setPeer(k wgtypes.Key, spec peerSpec) wgtypes.PeerConfig {
	return wgtypes.PeerConfig{PublicKey: k, ReplaceAllowedIPs: true, AllowedIPs: ipNets(spec.allowed)}
}
