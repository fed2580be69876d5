package wg

import (
	"net"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The rest of the agent sees a device through Control, redacted: its own
// keys and port, and per peer its public key, its allowed IPs and whether
// it is stale. What a device knows about a client's traffic (the endpoint
// it last heard from, the time of the last handshake, byte counters)
// never leaves this package; the one question asked of it, "is this peer
// idle past the scrub threshold?", is answered here by stale.
// TestPrivacySource in agent checks that this file (and the Fake, which
// stores traffic for tests) is the only code that reads those fields.

// Device is a WireGuard device as the agent sees it.
type Device struct {
	PrivateKey wgtypes.Key
	PublicKey  wgtypes.Key
	ListenPort int
	Peers      []Peer
}

// Peer is a device's peer as the agent sees it.
type Peer struct {
	PublicKey  wgtypes.Key
	AllowedIPs []net.IPNet
	// Stale is set by Control.DeviceStale: the device must forget the
	// peer's traffic state.
	Stale bool
}

// Control configures a device and reads it redacted. Its errors are
// classified (*Error).
type Control struct{ c Client }

// NewControl returns a Control over c; Open and NewFakeInterface return
// interfaces with one already.
func NewControl(c Client) *Control { return &Control{c: Classified(c)} }

// Device reads the named device; no peer is marked stale. It returns an
// error satisfying errors.Is(err, os.ErrNotExist) when there is no such
// device.
func (c *Control) Device(name string) (*Device, error) {
	d, err := c.c.Device(name)
	if err != nil {
		return nil, err
	}
	return redact(d, func(*wgtypes.Peer) bool { return false }), nil
}

// DeviceStale reads the named device and marks each peer whose traffic
// state the device must forget at now: a last handshake more than after
// ago, or no handshake but an endpoint or counted bytes.
func (c *Control) DeviceStale(name string, now time.Time, after time.Duration) (*Device, error) {
	d, err := c.c.Device(name)
	if err != nil {
		return nil, err
	}
	return redact(d, func(p *wgtypes.Peer) bool { return stale(p, now, after) }), nil
}

// ConfigureDevice applies cfg with wgtypes.Config semantics (see Client).
func (c *Control) ConfigureDevice(name string, cfg wgtypes.Config) error {
	return c.c.ConfigureDevice(name, cfg)
}

// Close releases the client's sockets; the devices stay.
func (c *Control) Close() error { return c.c.Close() }

// redact keeps what the agent may see of d.
func redact(d *wgtypes.Device, isStale func(*wgtypes.Peer) bool) *Device {
	out := &Device{PrivateKey: d.PrivateKey, PublicKey: d.PublicKey, ListenPort: d.ListenPort, Peers: make([]Peer, len(d.Peers))}
	for i := range d.Peers {
		p := &d.Peers[i]
		out.Peers[i] = Peer{PublicKey: p.PublicKey, AllowedIPs: p.AllowedIPs, Stale: isStale(p)}
	}
	return out
}

// stale reports whether the device must forget p: its last handshake is
// older than after, or it never completed one but holds an endpoint or
// counted bytes (a client that tried and failed). It only compares them,
// with the threshold and with zero.
func stale(p *wgtypes.Peer, now time.Time, after time.Duration) bool {
	if p.LastHandshakeTime.IsZero() {
		return p.Endpoint != nil || p.ReceiveBytes != 0 || p.TransmitBytes != 0
	}
	return now.Sub(p.LastHandshakeTime) > after
}
