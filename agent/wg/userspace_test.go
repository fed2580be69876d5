package wg_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/internal/roottest"
	"github.com/traceless-vpn/traceless/agent/wg"
)

// needRoot skips a test that needs root and a TUN device, saying why;
// under CI=true it fails instead (roottest.Require).
func needRoot(t *testing.T) {
	t.Helper()
	roottest.Require(t)
}

// devName returns a unique interface name for this test process.
func devName(suffix string) string { return fmt.Sprintf("tltest%d%s", os.Getpid()%1000000, suffix) }

// inNetns runs fn on a thread of its own in a new network namespace, so
// links and addresses it makes never touch the host. The namespace and
// every link in it go away when fn returns.
func inNetns(t *testing.T, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked: it ends with this goroutine, and the
		// namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestUserspaceDevice(t *testing.T) {
	needRoot(t)
	name := devName("u")
	i, err := wg.Open(wg.Config{Name: name, Backend: wg.BackendUserspace})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { i.Close() })
	if i.Backend != wg.BackendUserspace || i.Existed {
		t.Errorf("backend %q existed %v", i.Backend, i.Existed)
	}
	sock := "/var/run/wireguard/" + name + ".sock"
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("UAPI socket %s: %v", sock, err)
	}
	if kind, err := i.Links.Kind(name); err != nil || kind != "tuntap" {
		t.Errorf("Kind = %q, %v; want tuntap", kind, err)
	}
	priv, _ := wgtypes.GeneratePrivateKey()
	var peers []wgtypes.PeerConfig
	for b := range 3 {
		peers = append(peers, wgtypes.PeerConfig{PublicKey: key(byte(b + 1)), AllowedIPs: cidrs(fmt.Sprintf("10.64.0.%d/32", b+2))})
	}
	if err := i.Client.ConfigureDevice(name, wgtypes.Config{PrivateKey: &priv, ListenPort: new(int), Peers: peers}); err != nil {
		t.Fatalf("ConfigureDevice: %v", err)
	}
	d, err := i.Client.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	if d.PublicKey != priv.PublicKey() || len(d.Peers) != 3 {
		t.Errorf("device: right key %v, %d peers", d.PublicKey == priv.PublicKey(), len(d.Peers))
	}
	if raw := mustDevice(t, rawClient(t), name); raw.Type != wgtypes.Userspace {
		t.Errorf("device type %v, want userspace", raw.Type)
	}
	if wgBin, err := exec.LookPath("wg"); err == nil {
		out, err := exec.Command(wgBin, "show", name, "peers").CombinedOutput()
		if err != nil || len(strings.Fields(string(out))) != 3 {
			t.Errorf("wg show %s peers: %v\n%s", name, err, out)
		}
	} else {
		t.Log("wg not installed; skipping the wg(8) check")
	}
	if err := i.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("UAPI socket left after Close: %v", err)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("link %s left after Close", name)
	}
}

// TestUserspaceScrubOneCall proves on wireguard-go what the scrubber
// relies on: removing a peer and adding it again in one ConfigureDevice
// call makes the device forget its endpoint, handshake time and counters.
// A second userspace device plays the client over loopback.
func TestUserspaceScrubOneCall(t *testing.T) {
	needRoot(t)
	srvName, cliName := devName("s"), devName("c")
	srv, err := wg.Open(wg.Config{Name: srvName, Backend: wg.BackendUserspace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := wg.Open(wg.Config{Name: cliName, Backend: wg.BackendUserspace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	srvKey, _ := wgtypes.GeneratePrivateKey()
	cliKey, _ := wgtypes.GeneratePrivateKey()
	allowed := cidrs("10.64.0.2/32", "fd00::2/128")
	must(t, srv.Client.ConfigureDevice(srvName, wgtypes.Config{PrivateKey: &srvKey, ListenPort: new(int),
		Peers: []wgtypes.PeerConfig{{PublicKey: cliKey.PublicKey(), AllowedIPs: allowed}}}))
	must(t, srv.Links.Up(srvName))
	raw := rawClient(t) // the test reads what the agent never sees
	must(t, cli.Links.Up(cliName))
	sd := mustDevice(t, raw, srvName)
	if sd.ListenPort == 0 {
		t.Fatal("server device has no listen port after going up")
	}
	must(t, cli.Client.ConfigureDevice(cliName, wgtypes.Config{PrivateKey: &cliKey, ListenPort: new(int),
		Peers: []wgtypes.PeerConfig{{PublicKey: srvKey.PublicKey(), AllowedIPs: cidrs("10.64.0.1/32"),
			Endpoint:                    &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sd.ListenPort},
			PersistentKeepaliveInterval: ptr(time.Second)}}}))

	deadline := time.Now().Add(15 * time.Second)
	var p wgtypes.Peer
	for {
		p = mustDevice(t, raw, srvName).Peers[0]
		if !p.LastHandshakeTime.IsZero() && p.Endpoint != nil && p.ReceiveBytes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handshake over loopback within 15s: %+v", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The lean reader sees the same: fresh now, due when the handshake is
	// 180 s old, stale after.
	d, recheck, err := srv.Client.DeviceStale(srvName, p.LastHandshakeTime, 180*time.Second)
	if err != nil || len(d.Peers) != 1 || d.Peers[0].Stale || recheck != 180*time.Second {
		t.Errorf("DeviceStale at the handshake: %v, stale %v, recheck %v; want fresh, 180s", err, d != nil && d.Peers[0].Stale, recheck)
	}
	if d, _, err := srv.Client.DeviceStale(srvName, p.LastHandshakeTime.Add(181*time.Second), 180*time.Second); err != nil || !d.Peers[0].Stale {
		t.Errorf("DeviceStale 181 s after the handshake: %v; want stale", err)
	}
	// The client stops talking, then the server scrubs its peer.
	must(t, cli.Client.ConfigureDevice(cliName, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: srvKey.PublicKey(), UpdateOnly: true, PersistentKeepaliveInterval: ptr(time.Duration(0))}}}))
	time.Sleep(200 * time.Millisecond)
	must(t, srv.Client.ConfigureDevice(srvName, wgtypes.Config{Peers: []wgtypes.PeerConfig{
		{PublicKey: cliKey.PublicKey(), Remove: true},
		{PublicKey: cliKey.PublicKey(), AllowedIPs: allowed},
	}}))
	p = mustDevice(t, raw, srvName).Peers[0]
	if p.Endpoint != nil || !p.LastHandshakeTime.IsZero() || p.ReceiveBytes != 0 || p.TransmitBytes != 0 {
		t.Errorf("after remove+add in one call the device remembers: endpoint %v handshake %v rx %d tx %d",
			p.Endpoint != nil, !p.LastHandshakeTime.IsZero(), p.ReceiveBytes, p.TransmitBytes)
	}
	var got []string
	for _, a := range p.AllowedIPs {
		got = append(got, a.String())
	}
	if diff := cmp.Diff([]string{"10.64.0.2/32", "fd00::2/128"}, sortedStrings(got)); diff != "" {
		t.Errorf("allowed IPs after scrub (-want +got):\n%s", diff)
	}
}

// TestUserspaceReader: the reader of a userspace device (the in-process
// read its process answers) reads what wgctrl reads (keys, port, allowed
// IPs in the device's order), marks a peer with an endpoint but no
// handshake stale, and StalePeers returns that peer alone.
func TestUserspaceReader(t *testing.T) {
	needRoot(t)
	name := devName("r")
	i, err := wg.Open(wg.Config{Name: name, Backend: wg.BackendUserspace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { i.Close() })
	if i.PeerLimit != 65536 {
		t.Errorf("PeerLimit = %d, want 65536", i.PeerLimit)
	}
	priv, _ := wgtypes.GeneratePrivateKey()
	var peers []wgtypes.PeerConfig
	for n := range 300 {
		var k wgtypes.Key
		k[0], k[1], k[31] = byte(n>>8), byte(n), 0x77
		var allowed []string
		switch n % 3 {
		case 0:
			allowed = []string{fmt.Sprintf("10.64.%d.%d/32", n>>8, n&0xff), fmt.Sprintf("fd00::%x/128", n+1)}
		case 1:
			allowed = []string{fmt.Sprintf("10.%d.0.0/16", n&0xff), fmt.Sprintf("fd01:%x::/48", n), fmt.Sprintf("192.168.%d.0/24", n&0xff)}
		}
		peers = append(peers, wgtypes.PeerConfig{PublicKey: k, AllowedIPs: cidrs(allowed...)})
	}
	must(t, i.Client.ConfigureDevice(name, wgtypes.Config{PrivateKey: &priv, ListenPort: new(int), Peers: peers}))
	must(t, i.Client.ConfigureDevice(name, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: peers[7].PublicKey, UpdateOnly: true,
		Endpoint: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}}}}))
	raw := mustDevice(t, rawClient(t), name)
	d, recheck, err := i.Client.DeviceStale(name, time.Now(), 180*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.PrivateKey != raw.PrivateKey || d.PublicKey != raw.PublicKey || d.ListenPort != raw.ListenPort || len(d.Peers) != len(raw.Peers) {
		t.Fatalf("device fields or peer count differ from wgctrl's: %d peers, want %d", len(d.Peers), len(raw.Peers))
	}
	if recheck != 180*time.Second {
		t.Errorf("recheck %v with no handshake, want the threshold", recheck)
	}
	byKey := map[wgtypes.Key]wgtypes.Peer{}
	for _, rp := range raw.Peers {
		byKey[rp.PublicKey] = rp
	}
	// wireguard-go lists peers in its map's order, which changes from
	// one read to the next; allowed IPs keep theirs.
	for n, p := range d.Peers {
		rp, ok := byKey[p.PublicKey]
		var want, got []string
		for _, a := range rp.AllowedIPs {
			want = append(want, a.String())
		}
		for _, a := range p.AllowedIPs {
			got = append(got, a.String())
		}
		if !ok || !cmp.Equal(want, got) {
			t.Fatalf("peer %d: (-wgctrl +lean):\n%s", n, cmp.Diff(want, got))
		}
		if p.Stale != (p.PublicKey == peers[7].PublicKey) {
			t.Errorf("peer %d: stale %v", n, p.Stale)
		}
	}
	sd, srecheck, err := i.Client.StalePeers(name, time.Now(), 180*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.Peers) != 1 || sd.Peers[0].PublicKey != peers[7].PublicKey || !sd.Peers[0].Stale || srecheck != recheck ||
		len(sd.Peers[0].AllowedIPs) != 3 || sd.PublicKey != raw.PublicKey {
		t.Errorf("StalePeers: %d peers, recheck %v; want peer 7 alone, its 3 allowed IPs", len(sd.Peers), srecheck)
	}
	if _, err := i.Client.Device(name + "x"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reading a device that is not there: %v, want ErrNotExist", err)
	}
}

// TestNetlinkLinks sets up a userspace device's link in a namespace of
// its own: addresses, MTU, up.
func TestNetlinkLinks(t *testing.T) {
	needRoot(t)
	name := devName("l")
	inNetns(t, func() error {
		i, err := wg.Open(wg.Config{Name: name, Backend: wg.BackendAuto, MTU: 1400})
		if err != nil {
			return fmt.Errorf("Open: %w", err)
		}
		defer i.Close()
		if i.Backend == wg.BackendKernel {
			defer i.Links.Delete(name)
		}
		l := i.Links
		want := []netip.Prefix{netip.MustParsePrefix("10.64.0.1/10"), netip.MustParsePrefix("fd74:6c73:7670:1::1/64")}
		for range 2 { // idempotent
			if err := errors.Join(l.SetAddrs(name, want), l.SetMTU(name, 1380), l.Up(name)); err != nil {
				return err
			}
		}
		if got := addrs(name); !cmp.Equal(sortedStrings(got), []string{"10.64.0.1/10", "fd74:6c73:7670:1::1/64"}) {
			return fmt.Errorf("addresses = %v", got)
		}
		if up, err := l.IsUp(name); !up || err != nil {
			return fmt.Errorf("IsUp = %v, %v", up, err)
		}
		link, err := netlink.LinkByName(name)
		if err != nil || link.Attrs().MTU != 1380 {
			return fmt.Errorf("link MTU: %v %v", link, err)
		}
		// A changed tunnel replaces the old addresses.
		if err := l.SetAddrs(name, want[:1]); err != nil {
			return err
		}
		if got := addrs(name); !cmp.Equal(got, []string{"10.64.0.1/10"}) {
			return fmt.Errorf("addresses after change = %v", got)
		}
		if err := l.AddWireGuard(name + "k"); err == nil {
			l.Delete(name + "k")
		} else if !errors.Is(err, wg.ErrNoKernel) {
			return fmt.Errorf("AddWireGuard: %v, want nil or ErrNoKernel", err)
		}
		if i.Backend == wg.BackendUserspace && wg.KernelAvailable() {
			return errors.New("auto chose userspace although the kernel has WireGuard")
		}
		return nil
	})
}

// addrs lists a link's global addresses.
func addrs(name string) []string {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return []string{err.Error()}
	}
	list, _ := netlink.AddrList(link, netlink.FAMILY_ALL)
	out := []string{}
	for _, a := range list {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.IPNet.String())
	}
	return out
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rawClient is a wgctrl client reading devices unredacted, for checks of
// what a device remembers about clients.
func rawClient(t *testing.T) *wgctrl.Client {
	t.Helper()
	c, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustDevice(t *testing.T, c wg.Client, name string) *wgtypes.Device {
	t.Helper()
	d, err := c.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
