package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"iter"
	"net"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// peerSpec is one desired peer, kept compact: a node holds one per
// device of its pool, up to a million. The common peer, a device with one
// IPv4 /32 and one IPv6 /128 sent in canonical form, is its two addresses
// inline (32 bytes with the pointer); its share of the peer set hash is
// recomputed from them when needed. Any other peer keeps its allowed IPs
// (parsed, masked, sorted, deduplicated) and its digest, computed from
// the peer exactly as the control plane sent it, in x.
type peerSpec struct {
	v4 [4]byte
	v6 [16]byte
	x  *peerExtra
}

// peerExtra is what a peer of another form keeps.
type peerExtra struct {
	allowed []netip.Prefix
	digest  api.PeerSetHash
}

// appendAllowed appends the peer's allowed IPs, sorted, to buf.
func (s peerSpec) appendAllowed(buf []netip.Prefix) []netip.Prefix {
	if s.x != nil {
		return append(buf, s.x.allowed...)
	}
	return append(buf, netip.PrefixFrom(netip.AddrFrom4(s.v4), 32), netip.PrefixFrom(netip.AddrFrom16(s.v6), 128))
}

// allowedIPs returns the peer's allowed IPs, sorted.
func (s peerSpec) allowedIPs() []netip.Prefix {
	if s.x != nil {
		return s.x.allowed
	}
	return s.appendAllowed(make([]netip.Prefix, 0, 2))
}

// sameAs reports whether s and o have the same allowed IPs.
func (s peerSpec) sameAs(o peerSpec) bool {
	if s.x == nil && o.x == nil {
		return s.v4 == o.v4 && s.v6 == o.v6
	}
	var b1, b2 [4]netip.Prefix
	return slices.Equal(s.appendAllowed(b1[:0]), o.appendAllowed(b2[:0]))
}

// digest is the peer's share of the peer set hash (k is its key).
func (s peerSpec) digest(k wgtypes.Key) api.PeerSetHash {
	if s.x != nil {
		return s.x.digest
	}
	return deviceDigest(k, s.v4, s.v6)
}

// deviceDigest is digestOf(api.DevicePeer(…)) of a device peer, hashed
// from a buffer on the stack: the key in base64, "|", the IPv4 /32, "|",
// the IPv6 /128, as api.PeerSetHash.Toggle writes them.
func deviceDigest(k wgtypes.Key, v4 [4]byte, v6 [16]byte) api.PeerSetHash {
	var buf [128]byte
	b := base64.StdEncoding.AppendEncode(buf[:0], k[:])
	b = append(b, '|')
	b = netip.AddrFrom4(v4).AppendTo(b)
	b = append(b, "/32|"...)
	b = netip.AddrFrom16(v6).AppendTo(b)
	b = append(b, "/128"...)
	return sha256.Sum256(b)
}

// compactSpec returns the inline form of allowed (sorted) for a peer sent
// as p, if it has that form.
func compactSpec(k wgtypes.Key, allowed []netip.Prefix, p api.Peer) (peerSpec, bool) {
	if len(allowed) != 2 || len(p.AllowedIPs) != 2 {
		return peerSpec{}, false
	}
	a4, a6 := allowed[0], allowed[1]
	if !a4.Addr().Is4() || a4.Bits() != 32 || !a6.Addr().Is6() || a6.Bits() != 128 || a6.Addr().Zone() != "" {
		return peerSpec{}, false
	}
	s := peerSpec{v4: a4.Addr().As4(), v6: a6.Addr().As16()}
	want := api.DevicePeer(k.String(), a4.Addr().String(), a6.Addr().String())
	if p.PublicKey != want.PublicKey || p.AllowedIPs[0] != want.AllowedIPs[0] || p.AllowedIPs[1] != want.AllowedIPs[1] {
		return peerSpec{}, false // sent in another form: its digest must be kept
	}
	return s, true
}

// peerSet is the desired peers by public key. Its map holds each peer
// packed (52 bytes a slot with the key); the few peers of another form
// keep their details in a second map.
type peerSet struct {
	m map[wgtypes.Key]packedSpec
	x map[wgtypes.Key]*peerExtra
}

// packedSpec is a peerSpec as the set stores it, without the pointer.
type packedSpec struct {
	v4    [4]byte
	v6    [16]byte
	extra bool
}

func newPeerSet(n int) *peerSet {
	return &peerSet{m: make(map[wgtypes.Key]packedSpec, n)}
}

// len is the number of peers.
func (s *peerSet) len() int { return len(s.m) }

// get returns the peer with key k.
func (s *peerSet) get(k wgtypes.Key) (peerSpec, bool) {
	p, ok := s.m[k]
	if !ok {
		return peerSpec{}, false
	}
	return s.unpack(k, p), true
}

func (s *peerSet) unpack(k wgtypes.Key, p packedSpec) peerSpec {
	spec := peerSpec{v4: p.v4, v6: p.v6}
	if p.extra {
		spec.x = s.x[k]
	}
	return spec
}

// put sets the peer with key k.
func (s *peerSet) put(k wgtypes.Key, spec peerSpec) {
	s.m[k] = packedSpec{v4: spec.v4, v6: spec.v6, extra: spec.x != nil}
	switch {
	case spec.x != nil && s.x == nil:
		s.x = map[wgtypes.Key]*peerExtra{k: spec.x}
	case spec.x != nil:
		s.x[k] = spec.x
	default:
		delete(s.x, k)
	}
}

// remove deletes the peer with key k.
func (s *peerSet) remove(k wgtypes.Key) {
	delete(s.m, k)
	delete(s.x, k)
}

// all yields every peer, in no particular order.
func (s *peerSet) all() iter.Seq2[wgtypes.Key, peerSpec] {
	return func(yield func(wgtypes.Key, peerSpec) bool) {
		for k, p := range s.m {
			if !yield(k, s.unpack(k, p)) {
				return
			}
		}
	}
}

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
	allowed = sortPrefixes(allowed)
	if spec, ok := compactSpec(k, allowed, p); ok {
		return k, spec, nil
	}
	return k, peerSpec{x: &peerExtra{allowed: allowed, digest: digestOf(p)}}, nil
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
	set     *peerSet
	hash    api.PeerSetHash
	invalid int
}

func newSetBuilder(n int) *setBuilder {
	return &setBuilder{set: newPeerSet(n)}
}

// add puts p in the set, or counts it as invalid.
func (b *setBuilder) add(p api.Peer) {
	k, spec, err := parsePeer(p)
	if err != nil {
		b.invalid++
		return
	}
	b.put(k, spec)
}

// addRecord puts the device peer of a binary snapshot record in the set,
// as add(api.ParsePeerRecord(rec)) would, without making its strings.
func (b *setBuilder) addRecord(rec *[api.PeerRecordSize]byte) {
	spec := peerSpec{v4: [4]byte(rec[32:36]), v6: [16]byte(rec[36:52])}
	if netip.AddrFrom16(spec.v6).Is4In6() {
		// Not a device peer's form; take the long way.
		p, err := api.ParsePeerRecord(rec[:])
		if err != nil {
			b.invalid++
			return
		}
		b.add(p)
		return
	}
	b.put(wgtypes.Key(rec[:32]), spec)
}

// put puts a parsed peer in the set; a key already there keeps the last.
func (b *setBuilder) put(k wgtypes.Key, spec peerSpec) {
	if old, ok := b.set.get(k); ok {
		xorInto(&b.hash, old.digest(k))
	}
	b.set.put(k, spec)
	xorInto(&b.hash, spec.digest(k))
}

// peerState is the desired peer set at the applied revision, with its hash
// kept up to date change by change.
type peerState struct {
	// set is nil until the first full snapshot is applied.
	set      *peerSet
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
		old, ok := s.set.get(k)
		if !ok {
			continue
		}
		xorInto(&s.hash, old.digest(k))
		s.set.remove(k)
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
		old, ok := s.set.get(k)
		if ok {
			xorInto(&s.hash, old.digest(k))
		}
		s.set.put(k, spec)
		xorInto(&s.hash, spec.digest(k))
		if _, wait := s.pending[k]; wait {
			continue
		}
		if ok && old.sameAs(spec) {
			continue
		}
		if !ok && limit > 0 && s.set.len()-len(s.pending) > limit {
			if s.pending == nil {
				s.pending = map[wgtypes.Key]struct{}{}
			}
			s.pending[k] = struct{}{}
			continue
		}
		changes = append(changes, setPeer(k, spec))
	}
	if freed && len(s.pending) > 0 {
		room := limit - (s.set.len() - len(s.pending))
		for _, k := range firstKeys(s.pending, room) {
			delete(s.pending, k)
			spec, _ := s.set.get(k)
			changes = append(changes, setPeer(k, spec))
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
	var buf [4]netip.Prefix
	return wgtypes.PeerConfig{PublicKey: k, ReplaceAllowedIPs: true, AllowedIPs: ipNets(spec.appendAllowed(buf[:0]))}
}
