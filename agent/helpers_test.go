package agent

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// TestMain lets this test binary serve as the userspace device holder,
// as cmd/traceless-agent does (the benchmarks run the device held).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == wg.HolderCommand {
		if err := wg.RunHolder(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testKey is a deterministic public key for peer i.
func testKey(i int) wgtypes.Key {
	var k wgtypes.Key
	binary.BigEndian.PutUint32(k[:], uint32(i))
	k[31] = 0x5a
	return k
}

// testPeer is device i as the control plane sends it, for i up to
// 4,194,303 (the IPv4 addresses of 10.64.0.0/10).
func testPeer(i int) api.Peer {
	v4 := netip.AddrFrom4([4]byte{10, 64 + byte(i>>16&0x3f), byte(i >> 8), byte(i)})
	var a16 [16]byte
	copy(a16[:], []byte{0xfd, 0x74, 0x6c, 0x73, 0x76, 0x70, 0, 1})
	binary.BigEndian.PutUint64(a16[8:], uint64(i)+2)
	return api.DevicePeer(testKey(i).String(), v4.String(), netip.AddrFrom16(a16).String())
}

func testPeers(from, to int) []api.Peer {
	var out []api.Peer
	for i := from; i < to; i++ {
		out = append(out, testPeer(i))
	}
	return out
}

// setOf builds a desired set from wire peers.
func setOf(t testing.TB, peers ...api.Peer) *peerSet {
	t.Helper()
	b := newSetBuilder(len(peers))
	for _, p := range peers {
		b.add(p)
	}
	if b.invalid > 0 {
		t.Fatalf("%d invalid test peers", b.invalid)
	}
	return b.set
}

// hashOf computes the peer set hash from scratch, as the control plane does.
func hashOf(peers map[string]api.Peer) string {
	var h api.PeerSetHash
	for _, p := range peers {
		h.Toggle(p)
	}
	return h.String()
}

func mustCIDRs(ss ...string) []net.IPNet {
	out := []net.IPNet{}
	for _, s := range ss {
		p := netip.MustParsePrefix(s)
		out = append(out, net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())})
	}
	return out
}

func mustPrefixes(ss ...string) []netip.Prefix {
	out := []netip.Prefix{}
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s).Masked())
	}
	return out
}

// ipNetComparer compares allowed IPs by value, whatever the byte form.
var ipNetComparer = cmp.Comparer(func(a, b net.IPNet) bool { return a.String() == b.String() })

// countingClient counts the calls a wg.Client gets.
type countingClient struct {
	wg.Client
	devices    atomic.Int64
	configures atomic.Int64
}

func (c *countingClient) Device(name string) (*wgtypes.Device, error) {
	c.devices.Add(1)
	return c.Client.Device(name)
}

func (c *countingClient) ConfigureDevice(name string, cfg wgtypes.Config) error {
	c.configures.Add(1)
	return c.Client.ConfigureDevice(name, cfg)
}

// logBuffer captures log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTestLogger(buf *logBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fakeDevicePeers returns the Fake device's peers as wire peers, keyed by
// public key, for comparison with the desired set.
func fakeDevicePeers(t testing.TB, c wg.Client, name string) map[string][]string {
	t.Helper()
	d, err := c.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, p := range d.Peers {
		var a []string
		for _, n := range p.AllowedIPs {
			a = append(a, n.String())
		}
		out[p.PublicKey.String()] = a
	}
	return out
}

// wantDevicePeers is what fakeDevicePeers returns for a set of wire peers.
func wantDevicePeers(peers map[string]api.Peer) map[string][]string {
	out := map[string][]string{}
	for k, p := range peers {
		out[k] = append([]string(nil), p.AllowedIPs...)
	}
	return out
}

// metricValue reads a gauge or counter.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestTestPeer: test peers are valid and distinct past 65,536, so tests
// can build pools larger than a userspace device holds.
func TestTestPeer(t *testing.T) {
	b := newSetBuilder(70000)
	seen := map[string]bool{}
	for _, p := range testPeers(0, 70000) {
		b.add(p)
		for _, a := range p.AllowedIPs {
			if seen[a] {
				t.Fatalf("allowed IP %s repeats", a)
			}
			seen[a] = true
		}
	}
	if b.invalid != 0 || b.set.len() != 70000 {
		t.Fatalf("%d invalid, %d distinct peers; want 0, 70000", b.invalid, b.set.len())
	}
	if got := testPeer(0).AllowedIPs; got[1] != "fd74:6c73:7670:1::2/128" {
		t.Errorf("testPeer(0) IPv6 = %s", got[1])
	}
}
