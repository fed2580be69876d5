package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// The agent protocol. A node enrolls once with a one-use token and gets a
// long-lived credential; with the credential it fetches short-lived node
// tokens; with a node token it long-polls for peer changes and reports its
// status. Nothing in these types can carry an end user's endpoint, a
// handshake time or a byte count.

// EnrollRequest is the body of POST /agent/v1/enroll.
type EnrollRequest struct {
	Token     string `json:"token"`
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
	// Endpoint is the node's own public host:port that clients dial.
	Endpoint string `json:"endpoint"`
}

// EnrollResponse answers enrollment. Credential is shown only here; keep it
// where the operator configured (it may be a tmpfs).
type EnrollResponse struct {
	NodeID     string `json:"node_id"`
	Credential string `json:"credential"`
	Tunnel     Tunnel `json:"tunnel"`
}

// Tunnel is the interface configuration every node of the installation
// shares: its gateway addresses inside the device networks.
type Tunnel struct {
	// IPv4 and IPv6 are the gateway addresses with the network's prefix
	// length, e.g. "10.64.0.1/10" and "fd74:6c73:7670:1::1/64".
	IPv4 string `json:"ipv4"`
	IPv6 string `json:"ipv6"`
	MTU  int    `json:"mtu"`
}

// NodeToken answers POST /agent/v1/token, which takes the credential as a
// bearer token.
type NodeToken struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	NodeID    string    `json:"node_id"`
	Tunnel    Tunnel    `json:"tunnel"`
}

// Peer is one device as a node configures it.
type Peer struct {
	PublicKey  string   `json:"public_key"`
	AllowedIPs []string `json:"allowed_ips"`
}

// PeersResponse answers GET /agent/v1/peers?since=R. When Full is set,
// Upserts is the node's complete peer set at Revision and the node removes
// every other peer; otherwise it applies Upserts and Removes on top of
// revision R.
type PeersResponse struct {
	Revision int64    `json:"revision"`
	Full     bool     `json:"full"`
	Upserts  []Peer   `json:"upserts"`
	Removes  []string `json:"removes"`
}

// NodeStatus is the body of POST /agent/v1/status: aggregates only.
type NodeStatus struct {
	AppliedRevision int64   `json:"applied_revision"`
	PeerSetHash     string  `json:"peer_set_hash"`
	PeerCount       int     `json:"peer_count"`
	InterfaceUp     bool    `json:"interface_up"`
	Version         string  `json:"version"`
	Posture         Posture `json:"posture"`
	// PeerLimit is the most peers the node's WireGuard backend holds
	// (65,536 for the userspace device, 1,048,576 for the Linux kernel
	// module); 0 when the node does not say.
	PeerLimit int `json:"peer_limit,omitempty"`
	// OverCapacity is set while the node's peer set (PeerCount) is larger
	// than PeerLimit: the node holds what fits and keeps the rest waiting
	// for a place. Counts only.
	OverCapacity *OverCapacity `json:"over_capacity,omitempty"`
}

// OverCapacity counts a node's peers when its pool holds more than its
// backend can: Desired (the peer set's size) = Applied + NotApplied.
type OverCapacity struct {
	Desired    int `json:"desired"`
	Applied    int `json:"applied"`
	NotApplied int `json:"not_applied"`
}

// StatusResponse answers a status report; Resync asks the node for a full
// snapshot because its peer set hash differs from the server's.
type StatusResponse struct {
	Resync bool `json:"resync"`
}

// Posture is the node's privacy posture, each check true when it holds.
type Posture struct {
	ConntrackAccountingOff bool `json:"conntrack_accounting_off"`
	ConntrackTimestampsOff bool `json:"conntrack_timestamps_off"`
	NoLogRules             bool `json:"no_log_rules"`
	SwapOff                bool `json:"swap_off"`
	NotDumpable            bool `json:"not_dumpable"`
	CoreSizeZero           bool `json:"core_size_zero"`
	NoStateOnDisk          bool `json:"no_state_on_disk"`
}

// OK reports whether every check holds.
func (p Posture) OK() bool {
	return p.ConntrackAccountingOff && p.ConntrackTimestampsOff && p.NoLogRules && p.SwapOff &&
		p.NotDumpable && p.CoreSizeZero && p.NoStateOnDisk
}

// PeerSetHash is the order-independent digest of a peer set that node and
// control plane compare: the XOR of SHA-256(public_key "|" allowed_ips…)
// over the peers, hex encoded. XOR lets a node update it per change
// without rehashing the whole set. It detects drift, not tampering.
type PeerSetHash [sha256.Size]byte

// Toggle adds p to the set, or removes it if it is in.
func (h *PeerSetHash) Toggle(p Peer) {
	d := sha256.New()
	io.WriteString(d, p.PublicKey)
	for _, a := range p.AllowedIPs {
		io.WriteString(d, "|"+a)
	}
	var sum [sha256.Size]byte
	d.Sum(sum[:0])
	for i := range h {
		h[i] ^= sum[i]
	}
}

func (h PeerSetHash) String() string { return hex.EncodeToString(h[:]) }

// Snapshot encoding. A full snapshot of a large pool is streamed as
// "application/vnd.traceless.peers": a header and fixed 52-byte records, so
// a million peers take 52 MB (random keys do not compress) and neither side
// holds a JSON document of them.
const (
	SnapshotMediaType = "application/vnd.traceless.peers"
	snapshotMagic     = "TLPS0001"
	// PeerRecordSize is the size of one snapshot record: a 32-byte key, an
	// IPv4 and an IPv6 address.
	PeerRecordSize = 32 + 4 + 16
)

// SnapshotHeader starts a snapshot stream: magic, revision, peer count.
type SnapshotHeader struct {
	Revision int64
	Count    int64
}

// WriteSnapshotHeader writes the header.
func WriteSnapshotHeader(w io.Writer, h SnapshotHeader) error {
	var b [8 + 16]byte
	copy(b[:8], snapshotMagic)
	binary.BigEndian.PutUint64(b[8:], uint64(h.Revision))
	binary.BigEndian.PutUint64(b[16:], uint64(h.Count))
	_, err := w.Write(b[:])
	return err
}

// ReadSnapshotHeader reads the header.
func ReadSnapshotHeader(r io.Reader) (SnapshotHeader, error) {
	var b [8 + 16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return SnapshotHeader{}, fmt.Errorf("snapshot header: %w", err)
	}
	if string(b[:8]) != snapshotMagic {
		return SnapshotHeader{}, errors.New("snapshot header: bad magic")
	}
	h := SnapshotHeader{Revision: int64(binary.BigEndian.Uint64(b[8:])), Count: int64(binary.BigEndian.Uint64(b[16:]))}
	if h.Revision < 0 || h.Count < 0 {
		return SnapshotHeader{}, errors.New("snapshot header: negative field")
	}
	return h, nil
}

// AppendPeerRecord appends the record of a device to b.
func AppendPeerRecord(b []byte, publicKey string, v4, v6 netip.Addr) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil || len(k) != 32 {
		return b, errors.New("peer record: bad public key")
	}
	if !v4.Is4() || !v6.Is6() || v6.Is4In6() {
		return b, errors.New("peer record: bad address")
	}
	b = append(b, k...)
	a4, a6 := v4.As4(), v6.As16()
	b = append(b, a4[:]...)
	return append(b, a6[:]...), nil
}

// ParsePeerRecord decodes one record into a Peer.
func ParsePeerRecord(rec []byte) (Peer, error) {
	if len(rec) != PeerRecordSize {
		return Peer{}, errors.New("peer record: wrong size")
	}
	v4 := netip.AddrFrom4([4]byte(rec[32:36]))
	v6 := netip.AddrFrom16([16]byte(rec[36:52]))
	return Peer{
		PublicKey:  base64.StdEncoding.EncodeToString(rec[:32]),
		AllowedIPs: []string{netip.PrefixFrom(v4, 32).String(), netip.PrefixFrom(v6, 128).String()},
	}, nil
}

// DevicePeer is the peer of a device with tunnel addresses v4 and v6.
func DevicePeer(publicKey, v4, v6 string) Peer {
	return Peer{PublicKey: publicKey, AllowedIPs: []string{v4 + "/32", v6 + "/128"}}
}
