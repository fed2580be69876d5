package wg_test

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
)

// key returns a deterministic test key.
func key(b byte) wgtypes.Key {
	var k wgtypes.Key
	k[0], k[31] = b, 0x40
	return k
}

func cidr(s string) net.IPNet {
	p := netip.MustParsePrefix(s)
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func cidrs(ss ...string) []net.IPNet {
	out := []net.IPNet{}
	for _, s := range ss {
		out = append(out, cidr(s))
	}
	return out
}

// peerView is what the tests compare of a peer.
type peerView struct {
	Key       byte
	Allowed   []string
	Endpoint  string
	Keepalive time.Duration
	PSK       bool
}

func view(t *testing.T, d *wgtypes.Device) []peerView {
	t.Helper()
	out := []peerView{}
	for _, p := range d.Peers {
		v := peerView{Key: p.PublicKey[0], Allowed: []string{}, Keepalive: p.PersistentKeepaliveInterval,
			PSK: p.PresharedKey != wgtypes.Key{}}
		if p.Endpoint != nil {
			v.Endpoint = p.Endpoint.String()
		}
		for _, a := range p.AllowedIPs {
			v.Allowed = append(v.Allowed, a.String())
		}
		out = append(out, v)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func TestFakeConfigure(t *testing.T) {
	base := []wgtypes.PeerConfig{
		{PublicKey: key(1), AllowedIPs: cidrs("10.64.0.2/32", "fd00::2/128")},
		{PublicKey: key(2), AllowedIPs: cidrs("10.64.0.3/32")},
	}
	for _, tc := range []struct {
		name string
		cfgs []wgtypes.Config
		want []peerView
	}{
		{
			name: "add",
			want: []peerView{
				{Key: 1, Allowed: []string{"10.64.0.2/32", "fd00::2/128"}},
				{Key: 2, Allowed: []string{"10.64.0.3/32"}},
			},
		},
		{
			name: "nil fields keep values",
			cfgs: []wgtypes.Config{
				{Peers: []wgtypes.PeerConfig{{PublicKey: key(1), Endpoint: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}, PersistentKeepaliveInterval: ptr(25 * time.Second), PresharedKey: ptr(key(9))}}},
				{Peers: []wgtypes.PeerConfig{{PublicKey: key(1)}}},
			},
			want: []peerView{
				{Key: 1, Allowed: []string{"10.64.0.2/32", "fd00::2/128"}, Endpoint: "127.0.0.1:9", Keepalive: 25 * time.Second, PSK: true},
				{Key: 2, Allowed: []string{"10.64.0.3/32"}},
			},
		},
		{
			name: "allowed IPs are added, not replaced",
			cfgs: []wgtypes.Config{{Peers: []wgtypes.PeerConfig{{PublicKey: key(2), AllowedIPs: cidrs("10.64.0.4/32")}}}},
			want: []peerView{
				{Key: 1, Allowed: []string{"10.64.0.2/32", "fd00::2/128"}},
				{Key: 2, Allowed: []string{"10.64.0.3/32", "10.64.0.4/32"}},
			},
		},
		{
			name: "replace allowed IPs",
			cfgs: []wgtypes.Config{{Peers: []wgtypes.PeerConfig{{PublicKey: key(1), ReplaceAllowedIPs: true, AllowedIPs: cidrs("10.64.0.9/32")}}}},
			want: []peerView{
				{Key: 1, Allowed: []string{"10.64.0.9/32"}},
				{Key: 2, Allowed: []string{"10.64.0.3/32"}},
			},
		},
		{
			name: "an allowed IP moves to its new peer",
			cfgs: []wgtypes.Config{{Peers: []wgtypes.PeerConfig{{PublicKey: key(3), AllowedIPs: cidrs("10.64.0.3/32")}}}},
			want: []peerView{
				{Key: 1, Allowed: []string{"10.64.0.2/32", "fd00::2/128"}},
				{Key: 2, Allowed: []string{}},
				{Key: 3, Allowed: []string{"10.64.0.3/32"}},
			},
		},
		{
			name: "addresses are masked",
			cfgs: []wgtypes.Config{{Peers: []wgtypes.PeerConfig{{PublicKey: key(3), AllowedIPs: cidrs("10.64.0.77/24")}}}},
			want: []peerView{
				{Key: 1, Allowed: []string{"10.64.0.2/32", "fd00::2/128"}},
				{Key: 2, Allowed: []string{"10.64.0.3/32"}},
				{Key: 3, Allowed: []string{"10.64.0.0/24"}},
			},
		},
		{
			name: "remove ignores the rest of the peer",
			cfgs: []wgtypes.Config{{Peers: []wgtypes.PeerConfig{{PublicKey: key(1), Remove: true, AllowedIPs: cidrs("10.64.0.8/32")}, {PublicKey: key(7), Remove: true}}}},
			want: []peerView{{Key: 2, Allowed: []string{"10.64.0.3/32"}}},
		},
		{
			name: "update only skips unknown peers",
			cfgs: []wgtypes.Config{{Peers: []wgtypes.PeerConfig{
				{PublicKey: key(3), UpdateOnly: true, AllowedIPs: cidrs("10.64.0.5/32")},
				{PublicKey: key(2), UpdateOnly: true, ReplaceAllowedIPs: true, AllowedIPs: cidrs("10.64.0.6/32")},
			}}},
			want: []peerView{
				{Key: 1, Allowed: []string{"10.64.0.2/32", "fd00::2/128"}},
				{Key: 2, Allowed: []string{"10.64.0.6/32"}},
			},
		},
		{
			name: "replace peers",
			cfgs: []wgtypes.Config{{ReplacePeers: true, Peers: []wgtypes.PeerConfig{{PublicKey: key(4), AllowedIPs: cidrs("10.64.0.2/32")}}}},
			want: []peerView{{Key: 4, Allowed: []string{"10.64.0.2/32"}}},
		},
		{
			name: "remove and re-add in one call starts afresh",
			cfgs: []wgtypes.Config{
				{Peers: []wgtypes.PeerConfig{{PublicKey: key(1), Endpoint: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}}}},
				{Peers: []wgtypes.PeerConfig{{PublicKey: key(1), Remove: true}, {PublicKey: key(1), AllowedIPs: cidrs("10.64.0.2/32", "fd00::2/128")}}},
			},
			want: []peerView{
				{Key: 2, Allowed: []string{"10.64.0.3/32"}},
				{Key: 1, Allowed: []string{"10.64.0.2/32", "fd00::2/128"}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := wg.NewFake()
			f.AddDevice("tl0")
			cfgs := append([]wgtypes.Config{{Peers: base}}, tc.cfgs...)
			for _, c := range cfgs {
				if err := f.ConfigureDevice("tl0", c); err != nil {
					t.Fatalf("ConfigureDevice: %v", err)
				}
			}
			d, err := f.Device("tl0")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, view(t, d)); diff != "" {
				t.Errorf("peers (-want +got):\n%s", diff)
			}
			if got := f.ConfigureCalls(); got != len(cfgs) {
				t.Errorf("ConfigureCalls = %d, want %d", got, len(cfgs))
			}
		})
	}
}

func TestFakeDeviceFields(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	// A peer with the device's own public key is removed by setting the
	// key, and ignored when added afterwards.
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: priv.PublicKey()}, {PublicKey: key(1)}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.ConfigureDevice("tl0", wgtypes.Config{PrivateKey: &priv, ListenPort: ptr(51820), FirewallMark: ptr(7)}); err != nil {
		t.Fatal(err)
	}
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: priv.PublicKey()}}}); err != nil {
		t.Fatal(err)
	}
	// nil device fields stay.
	if err := f.ConfigureDevice("tl0", wgtypes.Config{}); err != nil {
		t.Fatal(err)
	}
	d, err := f.Device("tl0")
	if err != nil {
		t.Fatal(err)
	}
	if d.PrivateKey != priv || d.PublicKey != priv.PublicKey() || d.ListenPort != 51820 || d.FirewallMark != 7 {
		t.Errorf("device = key %v port %d mark %d, want the configured ones", d.PublicKey == priv.PublicKey(), d.ListenPort, d.FirewallMark)
	}
	if diff := cmp.Diff([]peerView{{Key: 1, Allowed: []string{}}}, view(t, d)); diff != "" {
		t.Errorf("peers (-want +got):\n%s", diff)
	}
}

func TestFakeErrors(t *testing.T) {
	f := wg.NewFake()
	if _, err := f.Device("nope"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Device(missing) = %v, want os.ErrNotExist", err)
	}
	if err := f.ConfigureDevice("nope", wgtypes.Config{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ConfigureDevice(missing) = %v, want os.ErrNotExist", err)
	}
	f.AddDevice("tl0")
	bad := net.IPNet{IP: net.IPv4(10, 0, 0, 1).To4(), Mask: net.CIDRMask(64, 128)}
	err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: key(1)}, {PublicKey: key(2), AllowedIPs: []net.IPNet{bad}}}})
	if err == nil {
		t.Fatal("ConfigureDevice with a bad mask succeeded")
	}
	if n := f.PeerCount("tl0"); n != 0 {
		t.Errorf("a failed config left %d peers; Fake applies all or nothing", n)
	}
	boom := errors.New("boom")
	f.FailConfigure(boom)
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: key(1)}}}); !errors.Is(err, boom) {
		t.Errorf("ConfigureDevice = %v, want the injected error", err)
	}
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: key(1)}}}); err != nil {
		t.Errorf("after the injected failure: %v", err)
	}
	if err := f.SetTraffic("tl0", key(5), wg.Traffic{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SetTraffic(unknown peer) = %v, want os.ErrNotExist", err)
	}
	// Classified errors say whether they are retryable.
	c := wg.Classified(f)
	if _, err := c.Device("nope"); err == nil || wg.IsRetryable(err) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("classified Device(missing) = %v (retryable %v), want a non-retryable ErrNotExist", err, wg.IsRetryable(err))
	}
	f.FailConfigure(os.NewSyscallError("read", errors.New("wguser: errno=-11")))
	if err := c.ConfigureDevice("tl0", wgtypes.Config{}); !wg.IsRetryable(err) {
		t.Errorf("classified transient failure = %v, want retryable", err)
	}
}

func TestFakeTraffic(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: key(1), AllowedIPs: cidrs("10.64.0.2/32")}}}); err != nil {
		t.Fatal(err)
	}
	hs := time.Unix(1700000000, 5)
	if err := f.SetTraffic("tl0", key(1), wg.Traffic{Endpoint: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4444}, LastHandshake: hs, ReceiveBytes: 10, TransmitBytes: 20}); err != nil {
		t.Fatal(err)
	}
	d, _ := f.Device("tl0")
	p := d.Peers[0]
	if p.Endpoint.String() != "127.0.0.1:4444" || !p.LastHandshakeTime.Equal(hs) || p.ReceiveBytes != 10 || p.TransmitBytes != 20 {
		t.Fatalf("peer traffic not reported: %+v", p)
	}
	// Updating the peer keeps its traffic; removing and re-adding it in
	// one call forgets it.
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: key(1), ReplaceAllowedIPs: true, AllowedIPs: cidrs("10.64.0.2/32")}}}); err != nil {
		t.Fatal(err)
	}
	d, _ = f.Device("tl0")
	if d.Peers[0].Endpoint == nil {
		t.Fatal("an update forgot the endpoint")
	}
	if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: key(1), Remove: true}, {PublicKey: key(1), AllowedIPs: cidrs("10.64.0.2/32")}}}); err != nil {
		t.Fatal(err)
	}
	d, _ = f.Device("tl0")
	p = d.Peers[0]
	if p.Endpoint != nil || !p.LastHandshakeTime.IsZero() || p.ReceiveBytes != 0 || p.TransmitBytes != 0 || len(p.AllowedIPs) != 1 {
		t.Errorf("re-added peer remembers traffic: %+v", p)
	}
}

func TestFakeConcurrent(t *testing.T) {
	f := wg.NewFake()
	f.AddDevice("tl0")
	var wgp sync.WaitGroup
	for i := range 8 {
		wgp.Add(1)
		go func() {
			defer wgp.Done()
			for j := range 50 {
				k := key(byte(i*50 + j))
				_ = f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: k}}})
				_, _ = f.Device("tl0")
				_ = f.SetTraffic("tl0", k, wg.Traffic{ReceiveBytes: 1})
			}
		}()
	}
	wgp.Wait()
	if n := f.PeerCount("tl0"); n != 256 {
		t.Errorf("PeerCount = %d, want 256 distinct keys", n)
	}
}

func TestFakeLinks(t *testing.T) {
	l := wg.NewFakeLinks(true)
	if err := l.AddWireGuard("tl0"); !errors.Is(err, wg.ErrNoKernel) {
		t.Errorf("AddWireGuard without kernel = %v, want ErrNoKernel", err)
	}
	l = wg.NewFakeLinks(false)
	if _, err := l.Kind("tl0"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Kind(missing) = %v", err)
	}
	if err := l.AddWireGuard("tl0"); err != nil {
		t.Fatal(err)
	}
	if err := l.AddWireGuard("tl0"); !errors.Is(err, os.ErrExist) {
		t.Errorf("second AddWireGuard = %v, want os.ErrExist", err)
	}
	addrs := []netip.Prefix{netip.MustParsePrefix("10.64.0.1/10")}
	if err := errors.Join(l.SetAddrs("tl0", addrs), l.SetMTU("tl0", 1400), l.Up("tl0")); err != nil {
		t.Fatal(err)
	}
	got, _ := l.Link("tl0")
	if diff := cmp.Diff(wg.FakeLink{Kind: "wireguard", Addrs: addrs, MTU: 1400, Up: true}, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("link (-want +got):\n%s", diff)
	}
	if up, err := l.IsUp("tl0"); !up || err != nil {
		t.Errorf("IsUp = %v, %v", up, err)
	}
	if err := errors.Join(l.Delete("tl0"), l.Delete("tl0")); err != nil {
		t.Errorf("Delete: %v", err)
	}
}

func TestFakeInterface(t *testing.T) {
	f, l := wg.NewFake(), wg.NewFakeLinks(false)
	i := wg.NewFakeInterface("tl0", f, l)
	if i.Existed || i.Backend != wg.BackendFake {
		t.Errorf("first interface: existed %v backend %q", i.Existed, i.Backend)
	}
	if err := i.Client.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: key(1)}}}); err != nil {
		t.Fatal(err)
	}
	if err := i.Close(); err != nil {
		t.Fatal(err)
	}
	i = wg.NewFakeInterface("tl0", f, l)
	if !i.Existed || f.PeerCount("tl0") != 1 {
		t.Errorf("reopened interface: existed %v peers %d, want it kept like a kernel device", i.Existed, f.PeerCount("tl0"))
	}
}
