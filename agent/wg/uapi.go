package wg

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The lean reader of a userspace device. wgctrl parses a UAPI "get"
// answer into a wgtypes.Device: a string per line, net.IPNet values, an
// address per endpoint. With 60,000 peers that parse costs about as much
// as the device's own formatting of the answer. readUAPI reads the same
// answer straight into the redacted Device: each key decoded in place,
// each allowed IP parsed once into a shared array, traffic lines handed
// to staleScan and dropped. The socket is drained as fast as it can be
// read, so the device, which holds its configuration lock until the last
// byte is written, is released sooner.

// uapiTimeout bounds one read of the device.
const uapiTimeout = time.Minute

// readUAPI reads the userspace device name through its UAPI socket and
// marks stale peers with s. It returns an error satisfying
// errors.Is(err, os.ErrNotExist) when no device answers on that socket.
func readUAPI(name string, s *staleScan) (*Device, error) {
	c, err := net.DialTimeout("unix", socketPath(name), 5*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s: %w", name, os.ErrNotExist)
		}
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(uapiTimeout))
	if _, err := io.WriteString(c, "get=1\n\n"); err != nil {
		return nil, err
	}
	return parseUAPI(bufio.NewReaderSize(c, 256<<10), s)
}

// uapiPeer is the peer being parsed: what the view keeps, and the traffic
// lines staleScan needs, until the next peer starts.
type uapiPeer struct {
	key    wgtypes.Key
	inPeer bool
	// The traffic lines, as far as staleness needs them: the last
	// handshake, and whether an endpoint or counted bytes are there.
	handshakeSec, handshakeNsec           int64
	Endpoint, ReceiveBytes, TransmitBytes bool
}

// parseUAPI parses a UAPI "get" answer up to its blank line.
func parseUAPI(r *bufio.Reader, s *staleScan) (*Device, error) {
	d := &Device{}
	var ips []netip.Prefix
	var ends []int
	var cur uapiPeer
	flush := func() {
		if !cur.inPeer {
			return
		}
		var hs time.Time
		if cur.handshakeSec != 0 || cur.handshakeNsec != 0 {
			hs = time.Unix(cur.handshakeSec, cur.handshakeNsec)
		}
		contact := cur.Endpoint || cur.ReceiveBytes || cur.TransmitBytes
		d.Peers = append(d.Peers, Peer{PublicKey: cur.key, Stale: s.peer(hs, contact)})
		ends = append(ends, len(ips))
		cur = uapiPeer{}
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errors.New("uapi: line too long")
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = line[:len(line)-1]
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte{'='})
		if !ok {
			return nil, errors.New("uapi: line is not key=value")
		}
		switch string(k) {
		case "errno":
			if n, ok := decimal(v); !ok || n != 0 {
				return nil, fmt.Errorf("uapi: get: errno=%s", v)
			}
		case "private_key":
			if err := hexKey(&d.PrivateKey, v); err != nil {
				return nil, err
			}
			d.PublicKey = d.PrivateKey.PublicKey()
		case "listen_port":
			n, _ := decimal(v)
			d.ListenPort = int(n)
		case "public_key":
			flush()
			cur.inPeer = true
			if err := hexKey(&cur.key, v); err != nil {
				return nil, err
			}
		case "allowed_ip":
			pf, err := netip.ParsePrefix(string(v))
			if err != nil {
				return nil, fmt.Errorf("uapi: allowed_ip: %w", err)
			}
			if a := pf.Addr(); a.Is4In6() && pf.Bits() >= 96 {
				pf = netip.PrefixFrom(a.Unmap(), pf.Bits()-96)
			}
			ips = append(ips, pf.Masked())
		case "endpoint":
			cur.Endpoint = true
		case "rx_bytes":
			cur.ReceiveBytes = len(v) != 1 || v[0] != '0'
		case "tx_bytes":
			cur.TransmitBytes = len(v) != 1 || v[0] != '0'
		case "last_handshake_time_sec":
			cur.handshakeSec, _ = decimal(v)
		case "last_handshake_time_nsec":
			cur.handshakeNsec, _ = decimal(v)
		}
	}
	flush()
	start := 0
	for i, end := range ends {
		d.Peers[i].AllowedIPs = ips[start:end:end]
		start = end
	}
	return d, nil
}

// hexKey decodes a key in UAPI's hex form into k.
func hexKey(k *wgtypes.Key, v []byte) error {
	if len(v) != 2*len(k) {
		return errors.New("uapi: key is not 32 bytes of hex")
	}
	if _, err := hex.Decode(k[:], v); err != nil {
		return errors.New("uapi: key is not 32 bytes of hex")
	}
	return nil
}

// decimal parses a non-negative decimal number without allocating.
func decimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
