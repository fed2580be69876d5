package wg

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
)

// The in-process reader of a userspace device. wireguard-go answers a
// UAPI "get" by formatting every peer with fmt under its configuration
// lock (ipcMutex) and the peer-map lock, then writing the answer: at
// 60,000 peers that is ~300 ms of CPU during which every "set" — every
// delta the agent applies — waits. The process that runs the device (the
// holder, or the agent itself without one) therefore also answers a
// second operation on the same UAPI socket, readOp, by reading the
// device's state directly:
//
//   - the peer map is copied under its read lock (about a millisecond at
//     60,000 peers); ipcMutex is not taken, so a "set" never waits for a
//     read, and a peer added or removed waits at most for that copy;
//   - each peer's allowed IPs come from wireguard-go's own
//     AllowedIPs.EntriesForPeer, under the table's read lock for that
//     peer alone;
//   - staleness is decided in that process by staleScan (view.go), from
//     the peer's last handshake, endpoint and counters, which are read
//     with the same atomics and per-peer lock wireguard-go's own "get"
//     uses, and are never written to the answer: the answer holds keys,
//     allowed IPs and a stale bit, in a compact binary form, and with
//     staleOnly only the stale peers.
//
// wireguard-go keeps these fields unexported. Their offsets are found by
// reflection when the package loads, checking each field's name and
// type; if any differs (another wireguard-go version), layoutErr is set,
// the operation answers that it is unsupported and the reader falls back
// to the UAPI "get". TestInprocLayout fails on such a version, so an
// upgrade that breaks it is seen in CI, not in production. A holder of an
// older version closes the connection on the unknown operation, and the
// reader falls back the same way.
//
// The answer is not one atomic snapshot: a peer changed while it is being
// read may show its state before or after the change. The agent already
// re-reads when its own changes raced a read (device.gen); a change made
// by hand is repaired by the next anti-entropy.

// readOp is the first line of the in-process read request. Its
// parameters follow, one key=value a line, up to a blank line: now
// (Unix nanoseconds), after (nanoseconds; negative marks nothing stale),
// stale_only (0 or 1).
const readOp = "traceless_read=1\n"

// The answer: a status byte; with statusOK, the private key, the public
// key, the listen port (uint16), recheck (int64 nanoseconds), the number
// of peer records and of allowed IPs in them (uint32 each), then one
// record per peer (recordPeer, key, flags, count of allowed IPs as a
// uint32, each as family 4 or 6, address, prefix length) and recordEnd. Integers are big
// endian.
const (
	statusOK          = 0
	statusUnsupported = 1
	recordPeer        = 1
	recordEnd         = 0
	flagStale         = 1
)

// errNoInproc says the device's process does not answer readOp.
var errNoInproc = errors.New("the device's process does not answer the in-process read")

// devLayout holds the offsets of the wireguard-go fields the reader
// needs, in device.Device and device.Peer.
type devLayout struct {
	peersMu, peersMap        uintptr
	allowed                  uintptr
	identMu, privKey, pubKey uintptr
	netMu, port              uintptr
	handshake, rx, tx        uintptr
	endpointMu, endpointVal  uintptr
}

var layout, layoutErr = findLayout()

// findLayout finds the fields by name and checks their types.
func findLayout() (devLayout, error) {
	var err error
	field := func(t, want reflect.Type, path ...string) uintptr {
		var off uintptr
		for _, name := range path {
			if err != nil {
				return 0
			}
			f, ok := t.FieldByName(name)
			if !ok || len(f.Index) != 1 {
				err = fmt.Errorf("wireguard-go's %s has no field %q", t, name)
				return 0
			}
			off += f.Offset
			t = f.Type
		}
		if err == nil && t != want {
			err = fmt.Errorf("wireguard-go's field %v is a %s, not a %s", path, t, want)
		}
		return off
	}
	dt, pt := reflect.TypeFor[device.Device](), reflect.TypeFor[device.Peer]()
	rw := reflect.TypeFor[sync.RWMutex]()
	l := devLayout{
		peersMu:     field(dt, rw, "peers", "RWMutex"),
		peersMap:    field(dt, reflect.TypeFor[map[device.NoisePublicKey]*device.Peer](), "peers", "keyMap"),
		allowed:     field(dt, reflect.TypeFor[device.AllowedIPs](), "allowedips"),
		identMu:     field(dt, rw, "staticIdentity", "RWMutex"),
		privKey:     field(dt, reflect.TypeFor[device.NoisePrivateKey](), "staticIdentity", "privateKey"),
		pubKey:      field(dt, reflect.TypeFor[device.NoisePublicKey](), "staticIdentity", "publicKey"),
		netMu:       field(dt, rw, "net", "RWMutex"),
		port:        field(dt, reflect.TypeFor[uint16](), "net", "port"),
		handshake:   field(pt, reflect.TypeFor[atomic.Int64](), "lastHandshakeNano"),
		rx:          field(pt, reflect.TypeFor[atomic.Uint64](), "rxBytes"),
		tx:          field(pt, reflect.TypeFor[atomic.Uint64](), "txBytes"),
		endpointMu:  field(pt, reflect.TypeFor[sync.Mutex](), "endpoint", "Mutex"),
		endpointVal: field(pt, reflect.TypeFor[conn.Endpoint](), "endpoint", "val"),
	}
	return l, err
}

// at is the field of type T at off in the struct at base.
func at[T any](base unsafe.Pointer, off uintptr) *T { return (*T)(unsafe.Add(base, off)) }

// inprocPeer is a peer copied out of the peer map.
type inprocPeer struct {
	key  device.NoisePublicKey
	peer *device.Peer
}

// writeInproc answers readOp for dev with the parameters in s.
func writeInproc(w *bufio.Writer, dev *device.Device, s *staleScan, staleOnly bool) error {
	if layoutErr != nil {
		w.WriteByte(statusUnsupported)
		return w.Flush()
	}
	base := unsafe.Pointer(dev)
	var hdr [1 + 32 + 32 + 2 + 8 + 4 + 4]byte
	hdr[0] = statusOK
	mu := at[sync.RWMutex](base, layout.identMu)
	mu.RLock()
	copy(hdr[1:33], at[device.NoisePrivateKey](base, layout.privKey)[:])
	copy(hdr[33:65], at[device.NoisePublicKey](base, layout.pubKey)[:])
	mu.RUnlock()
	mu = at[sync.RWMutex](base, layout.netMu)
	mu.RLock()
	binary.BigEndian.PutUint16(hdr[65:67], *at[uint16](base, layout.port))
	mu.RUnlock()

	mu = at[sync.RWMutex](base, layout.peersMu)
	mu.RLock()
	m := *at[map[device.NoisePublicKey]*device.Peer](base, layout.peersMap)
	peers := make([]inprocPeer, 0, len(m))
	for k, p := range m {
		peers = append(peers, inprocPeer{k, p})
	}
	mu.RUnlock()

	table := at[device.AllowedIPs](base, layout.allowed)
	var rec []byte
	var ips, records, allIPs uint32
	entry := func(pf netip.Prefix) bool {
		if a := pf.Addr(); a.Is4() {
			b := a.As4()
			rec = append(append(rec, 4), b[:]...)
		} else {
			b := a.As16()
			rec = append(append(rec, 6), b[:]...)
		}
		rec = append(rec, byte(pf.Bits()))
		ips++
		return true
	}
	// The header's recheck is known only after every peer is seen, so
	// the records are written after it: collected first.
	size := 72 * len(peers)
	if staleOnly {
		size = 4 << 10
	}
	body := make([]byte, 0, size)
	for _, ip := range peers {
		pb := unsafe.Pointer(ip.peer)
		var hs time.Time
		if n := at[atomic.Int64](pb, layout.handshake).Load(); n != 0 {
			hs = time.Unix(0, n)
		}
		epMu := at[sync.Mutex](pb, layout.endpointMu)
		epMu.Lock()
		contact := *at[conn.Endpoint](pb, layout.endpointVal) != nil
		epMu.Unlock()
		contact = contact || at[atomic.Uint64](pb, layout.rx).Load() != 0 || at[atomic.Uint64](pb, layout.tx).Load() != 0
		stale := s.peer(hs, contact)
		if staleOnly && !stale {
			continue
		}
		rec = append(rec[:0], recordPeer)
		rec = append(rec, ip.key[:]...)
		flags := byte(0)
		if stale {
			flags |= flagStale
		}
		rec = append(rec, flags, 0, 0, 0, 0)
		ips = 0
		table.EntriesForPeer(ip.peer, entry)
		binary.BigEndian.PutUint32(rec[1+32+1:], ips)
		body = append(body, rec...)
		records++
		allIPs += ips
	}
	body = append(body, recordEnd)
	binary.BigEndian.PutUint64(hdr[67:75], uint64(s.recheck))
	binary.BigEndian.PutUint32(hdr[75:79], records)
	binary.BigEndian.PutUint32(hdr[79:83], allIPs)
	w.Write(hdr[:])
	w.Write(body)
	return w.Flush()
}

// serveInproc answers one readOp request whose first line was read from
// r; the parameters follow.
func serveInproc(dev *device.Device, c net.Conn, r *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(uapiTimeout))
	s := staleScan{after: -1}
	staleOnly := false
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = line[:len(line)-1]
		if len(line) == 0 {
			break
		}
		k, v, _ := cutByte(line, '=')
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return fmt.Errorf("in-process read: %s: %w", k, err)
		}
		switch string(k) {
		case "now":
			s.now = time.Unix(0, n)
		case "after":
			s.after = time.Duration(n)
		case "stale_only":
			staleOnly = n != 0
		}
	}
	s.recheck = s.after
	return writeInproc(bufio.NewWriterSize(c, 256<<10), dev, &s, staleOnly)
}

func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

// readInproc asks the process of the userspace device name for its state
// (readOp), marking stale peers with s; with staleOnly the answer holds
// the stale peers alone. It returns errNoInproc when that process does
// not answer the operation.
func readInproc(name string, s *staleScan, staleOnly bool) (*Device, error) {
	c, err := net.DialTimeout("unix", socketPath(name), 5*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
		}
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(uapiTimeout))
	after := int64(s.after)
	if after < 0 {
		after = -1
	}
	stale := 0
	if staleOnly {
		stale = 1
	}
	req := fmt.Sprintf("%snow=%d\nafter=%d\nstale_only=%d\n\n", readOp, s.now.UnixNano(), after, stale)
	if _, err := io.WriteString(c, req); err != nil {
		return nil, err
	}
	return parseInproc(bufio.NewReaderSize(c, 256<<10), s)
}

// parseInproc parses a readOp answer.
func parseInproc(r *bufio.Reader, s *staleScan) (*Device, error) {
	status, err := r.ReadByte()
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		// An older device process closes the connection on an
		// operation it does not know.
		return nil, errNoInproc
	}
	if err != nil {
		return nil, err
	}
	if status == statusUnsupported {
		return nil, errNoInproc
	}
	if status != statusOK {
		return nil, fmt.Errorf("in-process read: status %d", status)
	}
	var hdr [32 + 32 + 2 + 8 + 4 + 4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, unexpected(err)
	}
	d := &Device{ListenPort: int(binary.BigEndian.Uint16(hdr[64:66]))}
	copy(d.PrivateKey[:], hdr[:32])
	copy(d.PublicKey[:], hdr[32:64])
	s.recheck = time.Duration(binary.BigEndian.Uint64(hdr[66:74]))
	// The counts size the arrays (capped: they are hints, the records
	// are what counts).
	n, m := min(binary.BigEndian.Uint32(hdr[74:78]), 1<<21), min(binary.BigEndian.Uint32(hdr[78:82]), 1<<23)
	d.Peers = make([]Peer, 0, n)
	ips := make([]netip.Prefix, 0, m)
	ends := make([]int, 0, n)
	var rec [1 + 32 + 1 + 4]byte
	var addr [1 + 16 + 1]byte
	for {
		if _, err := io.ReadFull(r, rec[:1]); err != nil {
			return nil, unexpected(err)
		}
		if rec[0] == recordEnd {
			break
		}
		if rec[0] != recordPeer {
			return nil, fmt.Errorf("in-process read: record type %d", rec[0])
		}
		if _, err := io.ReadFull(r, rec[1:]); err != nil {
			return nil, unexpected(err)
		}
		p := Peer{Stale: rec[33]&flagStale != 0}
		copy(p.PublicKey[:], rec[1:33])
		for range binary.BigEndian.Uint32(rec[34:38]) {
			if _, err := io.ReadFull(r, addr[:1]); err != nil {
				return nil, unexpected(err)
			}
			n := 4
			if addr[0] == 6 {
				n = 16
			} else if addr[0] != 4 {
				return nil, fmt.Errorf("in-process read: address family %d", addr[0])
			}
			if _, err := io.ReadFull(r, addr[1:n+2]); err != nil {
				return nil, unexpected(err)
			}
			a, _ := netip.AddrFromSlice(addr[1 : n+1])
			pf, err := a.Prefix(int(addr[n+1]))
			if err != nil {
				return nil, fmt.Errorf("in-process read: %w", err)
			}
			ips = append(ips, pf)
		}
		d.Peers = append(d.Peers, p)
		ends = append(ends, len(ips))
	}
	start := 0
	for i, end := range ends {
		d.Peers[i].AllowedIPs = ips[start:end:end]
		start = end
	}
	return d, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// prefixedConn is a connection whose first bytes were read already: Read
// returns them (through r) before the rest.
type prefixedConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
