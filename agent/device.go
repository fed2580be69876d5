package agent

import (
	"errors"
	"fmt"
	"sync"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// device is the agent's WireGuard device with the desired peer set. Every
// change to the device goes through it, under mu: snapshot and delta
// applies from the sync loop, anti-entropy and the scrubber, so none of
// them acts on a stale view of another's work.
type device struct {
	mu    sync.Mutex
	wg    *wg.Control
	name  string
	batch int
	state peerState
}

func newDevice(c *wg.Control, name string) *device {
	return &device{wg: c, name: name, batch: batchSize}
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
}

// configure applies cfgs in order and stops at the first error; it
// returns how many calls it made.
func (d *device) configure(cfgs []wgtypes.Config) (int, error) {
	for i, c := range cfgs {
		if err := d.wg.ConfigureDevice(d.name, c); err != nil {
			return i + 1, fmt.Errorf("configure batch %d of %d: %w", i+1, len(cfgs), err)
		}
	}
	return len(cfgs), nil
}

// applyFull makes the device hold exactly the snapshot b at revision: it
// reads the device and applies the difference. The desired set becomes
// the snapshot even when configuring fails, so a retry or anti-entropy
// converges to it; the applied revision moves only on success.
func (d *device) applyFull(b *setBuilder, revision int64) (applyResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := d.wg.Device(d.name)
	if err != nil {
		return applyResult{}, err
	}
	d.state.set, d.state.hash = b.set, b.hash
	cfgs := reconcile(b.set, cur, d.batch)
	r := applyResult{peers: len(b.set), invalid: b.invalid}
	r.set, r.removed = configCounts(cfgs)
	r.calls, err = d.configure(cfgs)
	if err != nil {
		return r, err
	}
	d.state.revision = revision
	return r, nil
}

// applyDelta applies an incremental answer on top of the desired set
// without reading the device: only the changed peers are configured.
func (d *device) applyDelta(upserts []api.Peer, removes []string, revision int64) (applyResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.set == nil {
		return applyResult{}, errNoBase
	}
	changes, invalid := d.state.delta(upserts, removes)
	cfgs := batch(changes, d.batch)
	r := applyResult{invalid: invalid, peers: len(d.state.set)}
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
func (d *device) antiEntropy() (applyResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state.set == nil {
		return applyResult{}, nil
	}
	cur, err := d.wg.Device(d.name)
	if err != nil {
		return applyResult{}, err
	}
	cfgs := reconcile(d.state.set, cur, d.batch)
	r := applyResult{peers: len(d.state.set)}
	r.set, r.removed = configCounts(cfgs)
	r.calls, err = d.configure(cfgs)
	return r, err
}

// summary is what a status report says of the peers.
func (d *device) summary() (revision int64, hash string, count int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.revision, d.state.hash.String(), len(d.state.set)
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
	return d.wg.ConfigureDevice(d.name, cfg)
}
