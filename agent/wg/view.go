package wg

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The rest of the agent sees a device through Control, redacted: its own
// keys and port, and per peer its public key, its allowed IPs and whether
// it is stale. What a device knows about a client's traffic (the endpoint
// it last heard from, the time of the last handshake, byte counters)
// never leaves this package; the one question asked of it, "is this peer
// idle past the scrub threshold?", is answered here by staleness, which
// also says how long the scrubber may wait before asking again (one
// duration for the whole device, naming no peer).
// TestPrivacySource in agent checks that this file, the userspace readers
// (uapi.go, which hands each peer's traffic lines to staleness as it
// parses them, and inproc.go, which decides staleness in the device's own
// process and answers keys, allowed IPs and a stale bit) and the Fake,
// which stores traffic for tests, are the only code that reads those
// fields.

// Device is a WireGuard device as the agent sees it.
type Device struct {
	PrivateKey wgtypes.Key
	PublicKey  wgtypes.Key
	ListenPort int
	Peers      []Peer
}

// Peer is a device's peer as the agent sees it.
type Peer struct {
	PublicKey wgtypes.Key
	// AllowedIPs are masked prefixes, IPv4 ones unmapped, in the device's
	// order.
	AllowedIPs []netip.Prefix
	// Stale is set by Control.DeviceStale: the device must forget the
	// peer's traffic state.
	Stale bool
}

// Control configures a device and reads it redacted. Its errors are
// classified (*Error).
type Control struct {
	c Client
	// uapi reads the device through its UAPI socket instead of through
	// c: a userspace device's. It asks the device's process for the
	// in-process read (inproc.go) and, if that process does not answer
	// it (noInproc), uses the lean reader of uapi.go.
	uapi     bool
	noInproc atomic.Bool
}

// NewControl returns a Control over c; Open and NewFakeInterface return
// interfaces with one already.
func NewControl(c Client) *Control { return &Control{c: Classified(c)} }

// newUserspaceControl returns a Control over a userspace device reached
// through wgctrl client c, whose reads parse the UAPI answer directly.
func newUserspaceControl(c Client) *Control { return &Control{c: Classified(c), uapi: true} }

// Device reads the named device; no peer is marked stale. It returns an
// error satisfying errors.Is(err, os.ErrNotExist) when there is no such
// device.
func (c *Control) Device(name string) (*Device, error) {
	d, _, err := c.read(name, time.Time{}, -1, false)
	return d, err
}

// DeviceStale reads the named device and marks each peer whose traffic
// state the device must forget at now: a last handshake more than after
// ago, or no handshake but an endpoint or counted bytes. It also returns
// recheck, the longest the caller may wait before reading again without
// missing the moment a peer turns stale: the time until the earliest peer
// not stale now turns stale, and at most after (a peer that makes first
// contact after the read turns stale no sooner). recheck is one figure
// for the whole device and names no peer.
func (c *Control) DeviceStale(name string, now time.Time, after time.Duration) (d *Device, recheck time.Duration, err error) {
	return c.read(name, now, after, false)
}

// StalePeers is DeviceStale with only the stale peers in the device's
// Peers. A userspace device's process sends those alone, so a read that
// finds nothing to scrub moves no peer list; other backends are read
// whole and filtered.
func (c *Control) StalePeers(name string, now time.Time, after time.Duration) (d *Device, recheck time.Duration, err error) {
	d, recheck, err = c.read(name, now, after, true)
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for _, p := range d.Peers {
		if p.Stale {
			d.Peers[n] = p
			n++
		}
	}
	d.Peers = d.Peers[:n:n]
	return d, recheck, nil
}

// read reads the device, marking stale peers when after >= 0; with
// staleOnly, the Peers may hold the stale ones only.
func (c *Control) read(name string, now time.Time, after time.Duration, staleOnly bool) (*Device, time.Duration, error) {
	s := staleScan{now: now, after: after, recheck: after}
	if c.uapi {
		if !c.noInproc.Load() {
			d, err := readInproc(name, &s, staleOnly)
			if !errors.Is(err, errNoInproc) {
				return d, s.recheck, wrapErr("device", err)
			}
			c.noInproc.Store(true)
			s = staleScan{now: now, after: after, recheck: after}
		}
		d, err := readUAPI(name, &s)
		return d, s.recheck, wrapErr("device", err)
	}
	raw, err := c.c.Device(name)
	if err != nil {
		return nil, 0, err
	}
	return redact(raw, &s), s.recheck, nil
}

// ConfigureDevice applies cfg with wgtypes.Config semantics (see Client).
func (c *Control) ConfigureDevice(name string, cfg wgtypes.Config) error {
	return c.c.ConfigureDevice(name, cfg)
}

// Close releases the client's sockets; the devices stay.
func (c *Control) Close() error { return c.c.Close() }

// redact keeps what the agent may see of d.
func redact(d *wgtypes.Device, s *staleScan) *Device {
	out := &Device{PrivateKey: d.PrivateKey, PublicKey: d.PublicKey, ListenPort: d.ListenPort, Peers: make([]Peer, len(d.Peers))}
	n := 0
	for i := range d.Peers {
		n += len(d.Peers[i].AllowedIPs)
	}
	ips := make([]netip.Prefix, 0, n)
	for i := range d.Peers {
		p := &d.Peers[i]
		start := len(ips)
		for _, a := range p.AllowedIPs {
			if pf, err := prefixOf(a); err == nil {
				ips = append(ips, pf)
			}
		}
		contact := p.Endpoint != nil || p.ReceiveBytes != 0 || p.TransmitBytes != 0
		out.Peers[i] = Peer{PublicKey: p.PublicKey, AllowedIPs: ips[start:len(ips):len(ips)], Stale: s.peer(p.LastHandshakeTime, contact)}
	}
	return out
}

// staleScan decides staleness peer by peer during one read and keeps the
// device's recheck. A negative after marks nothing.
type staleScan struct {
	now     time.Time
	after   time.Duration
	recheck time.Duration
}

// peer reports whether a peer whose last handshake was at handshake (zero
// for none) and which has (contact) or has not an endpoint or counted
// bytes is stale. It only compares them, with the threshold and with
// zero.
func (s *staleScan) peer(handshake time.Time, contact bool) bool {
	if s.after < 0 {
		return false
	}
	if handshake.IsZero() {
		return contact
	}
	idle := s.now.Sub(handshake)
	if idle > s.after {
		return true
	}
	s.recheck = min(s.recheck, s.after-idle)
	return false
}
