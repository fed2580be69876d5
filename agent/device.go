package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// device is the agent's WireGuard device with the desired peer set. Every
// change to the device goes through it, under mu: snapshot and delta
// applies from the sync loop, anti-entropy and the scrubber, so none of
// them acts on a stale view of another's work. Reading the whole device
// (hundreds of milliseconds at 60,000 peers) is done without mu wherever
// a stale read is harmless, so a delta never waits behind one: the
// scrubber's reads always, anti-entropy's and a snapshot's when no change
// went to the device meanwhile (gen).
type device struct {
	mu    sync.Mutex
	wg    *wg.Control
	name  string
	batch int
	// limit is the most peers the backend holds; 0 is no limit.
	limit int
	state peerState
	// self is the device's public key, whose peer a device ignores.
	self wgtypes.Key
	// inStep reports that the device holds exactly the desired peers that
	// are not pending, as of the last change: a snapshot is then applied
	// by diffing it with the desired set, without reading the device.
	// Any failed configure clears it; anti-entropy checks it.
	inStep bool
	// gen counts configure calls, so a read made without mu can tell
	// whether the device changed since.
	gen uint64
	// checked is when the device was last read and repaired against the
	// desired set (zero: never); now is the clock.
	checked time.Time
	now     func() time.Time
}

func newDevice(c *wg.Control, name string) *device {
	return &device{wg: c, name: name, batch: batchSize, now: time.Now}
}

// checkedSince reports whether the device was read and repaired against
// the desired set at or after t.
func (d *device) checkedSince(t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.checked.IsZero() && !d.checked.Before(t)
}

// errNoBase means a delta arrived before any snapshot was applied.
var errNoBase = errors.New("delta without a snapshot to apply it to")

// applyResult counts what an apply did; logs and metrics carry these.
type applyResult struct {
	peers   int // desired peers after the apply
	set     int // peers added or updated on the device
	removed int // peers removed from the device
	invalid int // peers from the control plane skipped as malformed
	calls   int // ConfigureDevice calls
	pending int // desired peers not on the device for want of capacity
	read    bool
}

// configure applies cfgs in order and stops at the first error; it
// returns how many calls it made. A failure leaves the device out of
// step. Call with mu held.
func (d *device) configure(cfgs []wgtypes.Config) (int, error) {
	for i, c := range cfgs {
		d.gen++
		if err := d.wg.ConfigureDevice(d.name, c); err != nil {
			d.inStep = false
			return i + 1, fmt.Errorf("configure batch %d of %d: %w", i+1, len(cfgs), err)
		}
	}
	return len(cfgs), nil
}

// readUnlocked reads the device without mu and returns it with the
// generation it reflects; call without mu held.
func (d *device) readUnlocked() (*wg.Device, uint64, error) {
	d.mu.Lock()
	gen := d.gen
	d.mu.Unlock()
	cur, err := d.wg.Device(d.name)
	return cur, gen, err
}

// current returns the device's peers as of now: cur when no change went
// to the device since it was read at gen, or a fresh read. Call with mu
// held.
func (d *device) current(cur *wg.Device, gen uint64) (*wg.Device, bool, error) {
	if cur != nil && gen == d.gen {
		return cur, false, nil
	}
	cur, err := d.wg.Device(d.name)
	return cur, true, err
}

// inMemory is the device as the agent knows it when in step: the desired
// peers that are not pending.
func (d *device) inMemory() *wg.Device {
	n := d.state.set.len() - len(d.state.pending)
	cur := &wg.Device{PublicKey: d.self, Peers: make([]wg.Peer, 0, n)}
	ips := make([]netip.Prefix, 0, 2*n)
	for k, spec := range d.state.set.all() {
		if _, ok := d.state.pending[k]; ok || k == d.self {
			continue
		}
		start := len(ips)
		ips = spec.appendAllowed(ips)
		cur.Peers = append(cur.Peers, wg.Peer{PublicKey: k, AllowedIPs: ips[start:len(ips):len(ips)]})
	}
	return cur
}

// applyFull makes the device hold exactly the snapshot b at revision, or
// as much of it as fits: it diffs b with the device and applies the
// difference. The device is read only when the agent does not know it
// holds the previous desired set (at start, after a failure). The desired
// set becomes the snapshot even when configuring fails, so a retry or
// anti-entropy converges to it; the applied revision moves only on
// success.
func (d *device) applyFull(b *setBuilder, revision int64) (applyResult, error) {
	var cur *wg.Device
	var gen uint64
	if !d.isInStep() {
		var err error
		if cur, gen, err = d.readUnlocked(); err != nil {
			return applyResult{}, err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r := applyResult{peers: b.set.len(), invalid: b.invalid}
	if d.inStep && d.state.set != nil {
		cur = d.inMemory()
	} else {
		var err error
		if cur, _, err = d.current(cur, gen); err != nil {
			return r, err
		}
		r.read = true
		d.self = cur.PublicKey
	}
	d.state.set, d.state.hash = b.set, b.hash
	d.state.pending = choosePending(b.set, cur, d.limit)
	r.pending = len(d.state.pending)
	cfgs := reconcile(b.set, d.state.pending, cur, d.batch)
	r.set, r.removed = configCounts(cfgs)
	var err error
	r.calls, err = d.configure(cfgs)
	if err != nil {
		return r, err
	}
	d.inStep = true
	if r.read {
		d.checked = d.now()
	}
	d.state.revision = revision
	return r, nil
}

// distrust makes the next snapshot read the device instead of trusting
// that it holds the desired set.
func (d *device) distrust() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inStep = false
}

func (d *device) isInStep() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inStep && d.state.set != nil
}

// applyDelta applies an incremental answer on top of the desired set
// without reading the device: only the changed peers are configured.
// Over capacity, an added peer waits (pending) until a removal frees a
// place; places freed go to pending peers in key order.
func (d *device) applyDelta(upserts []api.Peer, removes []string, revision int64) (applyResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.set == nil {
		return applyResult{}, errNoBase
	}
	changes, invalid := d.state.delta(upserts, removes, d.limit)
	cfgs := batch(changes, d.batch)
	r := applyResult{invalid: invalid, peers: d.state.set.len(), pending: len(d.state.pending)}
	r.set, r.removed = configCounts(cfgs)
	var err error
	r.calls, err = d.configure(cfgs)
	if err != nil {
		return r, err
	}
	d.state.revision = revision
	return r, nil
}

// advance records that the control plane moved to revision without a
// change for this node.
func (d *device) advance(revision int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.state.revision = revision
}

// antiEntropy re-reads the device and repairs any drift from the desired
// set (someone ran wg(8) by hand, a batch failed half-way). Before the
// first snapshot there is nothing to compare with and it does nothing.
// The read is made without mu; if the device changed meanwhile, it is
// read again under mu.
func (d *device) antiEntropy() (applyResult, error) {
	if !d.hasSet() {
		return applyResult{}, nil
	}
	cur, gen, err := d.readUnlocked()
	if err != nil {
		return applyResult{}, err
	}
	h := deviceHash(cur)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.set == nil {
		return applyResult{}, nil
	}
	if d.holdsDesired(cur, gen, h) {
		return applyResult{peers: d.state.set.len(), read: true}, nil
	}
	if cur, _, err = d.current(cur, gen); err != nil {
		return applyResult{}, err
	}
	d.self = cur.PublicKey
	d.state.pending = choosePending(d.state.set, cur, d.limit)
	cfgs := reconcile(d.state.set, d.state.pending, cur, d.batch)
	r := applyResult{peers: d.state.set.len(), pending: len(d.state.pending), read: true}
	r.set, r.removed = configCounts(cfgs)
	r.calls, err = d.configure(cfgs)
	if err == nil {
		d.inStep = true
		d.checked = d.now()
	}
	return r, err
}

// deviceHash is the peer set hash of the peers cur holds, each hashed as
// the desired set hashes it. A device holding exactly the desired set has
// the desired set's hash; the hash is computed without mu, so that
// anti-entropy on a device that has not drifted holds mu for a comparison
// instead of a diff of the whole set.
func deviceHash(cur *wg.Device) api.PeerSetHash {
	var h api.PeerSetHash
	for i := range cur.Peers {
		p := &cur.Peers[i]
		if a := p.AllowedIPs; len(a) == 2 && a[0].Addr().Is4() && a[0].Bits() == 32 && a[1].Addr().Is6() && a[1].Bits() == 128 {
			xorInto(&h, deviceDigest(p.PublicKey, a[0].Addr().As4(), a[1].Addr().As16()))
			continue
		}
		ap := api.Peer{PublicKey: p.PublicKey.String(), AllowedIPs: make([]string, len(p.AllowedIPs))}
		for j, a := range p.AllowedIPs {
			ap.AllowedIPs[j] = a.String()
		}
		xorInto(&h, digestOf(ap))
	}
	return h
}

// holdsDesired reports whether cur, read at gen with hash h, is the
// desired set exactly, nothing pending and nothing changed since the read;
// it then records the device as checked and in step. A peer of another
// form (peerExtra) whose control-plane form is not its canonical one
// hashes differently on the device: the caller then diffs as before. Call
// with mu held.
func (d *device) holdsDesired(cur *wg.Device, gen uint64, h api.PeerSetHash) bool {
	if gen != d.gen || d.state.pending != nil || h != d.state.hash || cur.PublicKey != d.self {
		return false
	}
	d.inStep, d.checked = true, d.now()
	return true
}

func (d *device) hasSet() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.set != nil
}

// peerSummary is what a status report says of the peers.
type peerSummary struct {
	revision int64
	hash     string
	desired  int // peers in the desired set
	pending  int // desired peers not on the device for want of capacity
	limit    int
}

func (d *device) summary() peerSummary {
	d.mu.Lock()
	defer d.mu.Unlock()
	desired := 0
	if d.state.set != nil {
		desired = d.state.set.len()
	}
	return peerSummary{revision: d.state.revision, hash: d.state.hash.String(), desired: desired,
		pending: len(d.state.pending), limit: d.limit}
}

// revision is the applied revision.
func (d *device) revision() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.revision
}

// ensureIdentity gives the device the node's private key and listen port
// unless it has them; a kernel device kept across a restart already does,
// and is left alone. Port 0 leaves the port to the device.
func (d *device) ensureIdentity(key wgtypes.Key, port int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.self = key.PublicKey()
	cur, err := d.wg.Device(d.name)
	if err != nil {
		return err
	}
	var cfg wgtypes.Config
	if cur.PrivateKey != key {
		cfg.PrivateKey = &key
	}
	if port != 0 && cur.ListenPort != port {
		cfg.ListenPort = &port
	}
	if cfg.PrivateKey == nil && cfg.ListenPort == nil {
		return nil
	}
	d.gen++
	return d.wg.ConfigureDevice(d.name, cfg)
}

// choosePending decides which desired peers stay off a device that holds
// at most limit peers (0: no limit) and returns them, or nil when all
// fit. Peers the device holds already keep their place, the others are
// taken in key order; of more held peers than fit (a smaller limit after
// a restart), the first by key stay.
func choosePending(desired *peerSet, cur *wg.Device, limit int) map[wgtypes.Key]struct{} {
	if limit <= 0 || desired.len() <= limit {
		return nil
	}
	var held, rest []wgtypes.Key
	onDevice := make(map[wgtypes.Key]struct{}, len(cur.Peers))
	for i := range cur.Peers {
		onDevice[cur.Peers[i].PublicKey] = struct{}{}
	}
	for k := range desired.m {
		if k == cur.PublicKey {
			continue // a device ignores it; it takes no place
		}
		if _, ok := onDevice[k]; ok {
			held = append(held, k)
		} else {
			rest = append(rest, k)
		}
	}
	byKey := func(a, b wgtypes.Key) int { return bytes.Compare(a[:], b[:]) }
	slices.SortFunc(held, byKey)
	slices.SortFunc(rest, byKey)
	keep := append(held, rest...)
	if len(keep) <= limit {
		return nil
	}
	pending := make(map[wgtypes.Key]struct{}, len(keep)-limit)
	for _, k := range keep[limit:] {
		pending[k] = struct{}{}
	}
	return pending
}
