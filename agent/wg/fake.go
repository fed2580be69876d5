package wg

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Fake is an in-memory Client with the semantics of wgtypes.Config as the
// kernel and wireguard-go apply them:
//
//   - nil PrivateKey, ListenPort, FirewallMark, PresharedKey, Endpoint and
//     PersistentKeepaliveInterval leave the value unchanged;
//   - ReplacePeers removes every peer before the config's peers apply;
//   - peers apply in order; Remove deletes a peer (and ignores the rest of
//     its fields), UpdateOnly skips a peer that does not exist,
//     ReplaceAllowedIPs clears the peer's allowed IPs before adding;
//   - an allowed IP belongs to one peer at a time: adding it to a peer
//     takes it from any other; addresses are masked to their prefix;
//   - a peer whose key is the device's own public key is ignored, and
//     setting a private key removes the peer that has its public key;
//   - a removed and re-added peer starts afresh: no endpoint, no
//     handshake time, zero counters.
//
// Unlike the real backends, which may apply a prefix of a config before
// failing, Fake validates a config whole and applies all or nothing.
// Device returns peers in the order they were created. Fake is safe for
// concurrent use.
type Fake struct {
	mu       sync.Mutex
	devices  map[string]*fakeDevice
	calls    int
	failures []error
}

type fakeDevice struct {
	typ     wgtypes.DeviceType
	priv    wgtypes.Key
	pub     wgtypes.Key // derived from priv when it is set, as a device reports it
	port    int
	fwmark  int
	peers   map[wgtypes.Key]*fakePeer
	owners  map[netip.Prefix]wgtypes.Key
	nextSeq uint64
	limit   int
}

type fakePeer struct {
	seq       uint64
	psk       wgtypes.Key
	keepalive time.Duration
	allowed   []netip.Prefix
	traffic   Traffic
}

// Traffic is what a device learns from a peer's packets; tests set it with
// SetTraffic to simulate a client.
type Traffic struct {
	Endpoint      *net.UDPAddr
	LastHandshake time.Time
	ReceiveBytes  int64
	TransmitBytes int64
}

// NewFake returns a Fake with no devices.
func NewFake() *Fake {
	return &Fake{devices: map[string]*fakeDevice{}}
}

// AddDevice creates an empty device, as creating its link would. Adding a
// device that exists keeps it.
func (f *Fake) AddDevice(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.devices[name] == nil {
		f.devices[name] = &fakeDevice{
			typ:    wgtypes.Unknown,
			peers:  map[wgtypes.Key]*fakePeer{},
			owners: map[netip.Prefix]wgtypes.Key{},
		}
	}
}

// SetPeerLimit makes the named device refuse a config that would leave it
// with more than n peers, as a real device refuses a peer past its limit
// (n = 0: no limit).
func (f *Fake) SetPeerLimit(name string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.devices[name]; d != nil {
		d.limit = n
	}
}

func (f *Fake) peerLimit(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.devices[name]; d != nil {
		return d.limit
	}
	return 0
}

// RemoveDevice deletes a device and its peers.
func (f *Fake) RemoveDevice(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.devices, name)
}

// ConfigureCalls returns how many times ConfigureDevice was called,
// failed calls included.
func (f *Fake) ConfigureCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// FailConfigure makes the next len(errs) ConfigureDevice calls return
// errs in order without changing anything.
func (f *Fake) FailConfigure(errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, errs...)
}

// PeerCount returns the number of peers of the named device, or -1 when
// it does not exist.
func (f *Fake) PeerCount(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devices[name]
	if d == nil {
		return -1
	}
	return len(d.peers)
}

// SetTraffic sets what the named device knows of a peer's traffic, as if a
// client had completed a handshake and sent packets.
func (f *Fake) SetTraffic(name string, key wgtypes.Key, t Traffic) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devices[name]
	if d == nil {
		return os.ErrNotExist
	}
	p := d.peers[key]
	if p == nil {
		return fmt.Errorf("fake: no such peer: %w", os.ErrNotExist)
	}
	if t.Endpoint != nil {
		e := *t.Endpoint
		t.Endpoint = &e
	}
	p.traffic = t
	return nil
}

// HasPeer reports whether the named device holds a peer with key, without
// copying the device (benchmarks poll it).
func (f *Fake) HasPeer(name string, key wgtypes.Key) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devices[name]
	if d == nil {
		return false
	}
	_, ok := d.peers[key]
	return ok
}

// Device returns a copy of the named device.
func (f *Fake) Device(name string) (*wgtypes.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.devices[name]
	if d == nil {
		return nil, os.ErrNotExist
	}
	out := &wgtypes.Device{
		Name:         name,
		Type:         d.typ,
		PrivateKey:   d.priv,
		ListenPort:   d.port,
		FirewallMark: d.fwmark,
		Peers:        make([]wgtypes.Peer, 0, len(d.peers)),
	}
	out.PublicKey = d.pub
	for k, p := range d.peers {
		wp := wgtypes.Peer{
			PublicKey:                   k,
			PresharedKey:                p.psk,
			PersistentKeepaliveInterval: p.keepalive,
			LastHandshakeTime:           p.traffic.LastHandshake,
			ReceiveBytes:                p.traffic.ReceiveBytes,
			TransmitBytes:               p.traffic.TransmitBytes,
			AllowedIPs:                  make([]net.IPNet, 0, len(p.allowed)),
			ProtocolVersion:             1,
		}
		if p.traffic.Endpoint != nil {
			e := *p.traffic.Endpoint
			wp.Endpoint = &e
		}
		for _, a := range p.allowed {
			wp.AllowedIPs = append(wp.AllowedIPs, ipNet(a))
		}
		out.Peers = append(out.Peers, wp)
	}
	slices.SortFunc(out.Peers, func(a, b wgtypes.Peer) int {
		return cmp.Compare(d.peers[a.PublicKey].seq, d.peers[b.PublicKey].seq)
	})
	return out, nil
}

// ConfigureDevice applies cfg; see Fake for the semantics.
func (f *Fake) ConfigureDevice(name string, cfg wgtypes.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.failures) > 0 {
		err := f.failures[0]
		f.failures = f.failures[1:]
		return err
	}
	d := f.devices[name]
	if d == nil {
		return os.ErrNotExist
	}
	allowed := make([][]netip.Prefix, len(cfg.Peers))
	for i, pc := range cfg.Peers {
		for _, n := range pc.AllowedIPs {
			p, err := prefixOf(n)
			if err != nil {
				return fmt.Errorf("fake: peer %d: %w", i, err)
			}
			allowed[i] = append(allowed[i], p)
		}
	}
	if d.limit > 0 && !cfg.ReplacePeers {
		if n := d.countAfter(cfg.Peers); n > d.limit {
			return fmt.Errorf("fake: %d peers past the limit of %d: %w", n, d.limit, errInvalid)
		}
	}
	if cfg.PrivateKey != nil {
		d.priv = *cfg.PrivateKey
		d.pub = wgtypes.Key{}
		if d.priv != (wgtypes.Key{}) {
			d.pub = d.priv.PublicKey()
		}
		if d.priv != (wgtypes.Key{}) {
			d.remove(d.pub)
		}
	}
	if cfg.ListenPort != nil {
		d.port = *cfg.ListenPort
	}
	if cfg.FirewallMark != nil {
		d.fwmark = *cfg.FirewallMark
	}
	if cfg.ReplacePeers {
		for k := range d.peers {
			d.remove(k)
		}
	}
	for i, pc := range cfg.Peers {
		d.apply(pc, allowed[i])
	}
	return nil
}

// Close does nothing: a Fake outlives its users, like a kernel.
func (f *Fake) Close() error { return nil }

func (d *fakeDevice) apply(pc wgtypes.PeerConfig, allowed []netip.Prefix) {
	if d.priv != (wgtypes.Key{}) && pc.PublicKey == d.pub {
		return
	}
	p := d.peers[pc.PublicKey]
	if pc.Remove {
		d.remove(pc.PublicKey)
		return
	}
	if p == nil {
		if pc.UpdateOnly {
			return
		}
		d.nextSeq++
		p = &fakePeer{seq: d.nextSeq}
		d.peers[pc.PublicKey] = p
	}
	if pc.PresharedKey != nil {
		p.psk = *pc.PresharedKey
	}
	if pc.Endpoint != nil {
		e := *pc.Endpoint
		p.traffic.Endpoint = &e
	}
	if pc.PersistentKeepaliveInterval != nil {
		p.keepalive = *pc.PersistentKeepaliveInterval
	}
	if pc.ReplaceAllowedIPs {
		for _, a := range p.allowed {
			delete(d.owners, a)
		}
		p.allowed = nil
	}
	for _, a := range allowed {
		if owner, ok := d.owners[a]; ok {
			if owner == pc.PublicKey {
				continue
			}
			o := d.peers[owner]
			o.allowed = slices.DeleteFunc(o.allowed, func(x netip.Prefix) bool { return x == a })
		}
		d.owners[a] = pc.PublicKey
		p.allowed = append(p.allowed, a)
	}
}

// countAfter is how many peers the device would hold after peers apply.
func (d *fakeDevice) countAfter(peers []wgtypes.PeerConfig) int {
	n := len(d.peers)
	seen := map[wgtypes.Key]bool{}
	for _, pc := range peers {
		_, had := d.peers[pc.PublicKey]
		if was, ok := seen[pc.PublicKey]; ok {
			had = was
		}
		switch {
		case pc.Remove && had:
			n--
			seen[pc.PublicKey] = false
		case !pc.Remove && !had && !pc.UpdateOnly:
			n++
			seen[pc.PublicKey] = true
		}
	}
	return n
}

func (d *fakeDevice) remove(k wgtypes.Key) {
	p := d.peers[k]
	if p == nil {
		return
	}
	for _, a := range p.allowed {
		delete(d.owners, a)
	}
	delete(d.peers, k)
}

// prefixOf converts an allowed IP as the backends do: the address is
// masked to the prefix, and the mask must fit the address family.
func prefixOf(n net.IPNet) (netip.Prefix, error) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("allowed IP: bad address: %w", errInvalid)
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits != a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("allowed IP: mask does not fit the address: %w", errInvalid)
	}
	return netip.PrefixFrom(a, ones).Masked(), nil
}

// ipNet converts a prefix to the form wgctrl uses.
func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
