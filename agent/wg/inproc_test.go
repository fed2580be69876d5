package wg

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/traceless-vpn/traceless/agent/internal/roottest"
)

// TestInprocLayout: the wireguard-go this module builds with has every
// field the in-process reader needs, with the expected types. A
// wireguard-go upgrade that renames or retypes one fails here (the
// reader would fall back to the UAPI "get" in production).
func TestInprocLayout(t *testing.T) {
	if layoutErr != nil {
		t.Fatal(layoutErr)
	}
}

// channelDevice is a wireguard-go device on a channel TUN (no root, no
// link), with n peers: peer i has allowed IPs 10.64.x.y/32 and
// fd00::i/128, and some have an extra IPv4 network.
func channelDevice(t *testing.T, n int) *device.Device {
	t.Helper()
	dev := device.NewDevice(tuntest.NewChannelTUN().TUN(), conn.NewDefaultBind(), discard)
	t.Cleanup(dev.Close)
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=0\n", strings.Repeat("11", 32))
	for i := range n {
		fmt.Fprintf(&b, "public_key=%064x\nallowed_ip=10.64.%d.%d/32\nallowed_ip=fd00::%x/128\n", i+1, i>>8, i&0xff, i+1)
		if i%7 == 3 {
			fmt.Fprintf(&b, "allowed_ip=10.%d.0.0/16\n", 100+i%100)
		}
	}
	if err := dev.IpcSet(b.String()); err != nil {
		t.Fatal(err)
	}
	return dev
}

// peerOf returns the device's peer with key index i (as channelDevice
// numbers them).
func peerOf(t *testing.T, dev *device.Device, i int) *device.Peer {
	t.Helper()
	var k device.NoisePublicKey
	k[31], k[30] = byte(i+1), byte((i+1)>>8)
	p := dev.LookupPeer(k)
	if p == nil {
		t.Fatalf("no peer %d", i)
	}
	return p
}

// inprocRead runs the operation's two halves through a buffer.
func inprocRead(t *testing.T, dev *device.Device, now time.Time, after time.Duration, staleOnly bool) (*Device, time.Duration) {
	t.Helper()
	var buf bytes.Buffer
	s := staleScan{now: now, after: after, recheck: after}
	if err := writeInproc(bufio.NewWriter(&buf), dev, &s, staleOnly); err != nil {
		t.Fatal(err)
	}
	s = staleScan{now: now, after: after, recheck: after}
	d, err := parseInproc(bufio.NewReader(&buf), &s)
	if err != nil {
		t.Fatal(err)
	}
	return d, s.recheck
}

// summary is a device's peers as sorted strings: key, allowed IPs, stale.
func summary(d *Device) []string {
	var out []string
	for _, p := range d.Peers {
		out = append(out, fmt.Sprintf("%x %v %v", p.PublicKey[:], p.AllowedIPs, p.Stale))
	}
	slices.Sort(out)
	return out
}

// TestInprocRead: the in-process read answers what the UAPI "get" read
// by the lean reader answers for the same device — identity, keys,
// allowed IPs in the device's order, stale marks and recheck — with the
// traffic state set as a handshake and packets would set it; with
// staleOnly, the stale peers alone.
func TestInprocRead(t *testing.T) {
	dev := channelDevice(t, 500)
	now := time.Now()
	const after = 180 * time.Second
	// Peer 3: handshake 181 s ago (stale). Peer 4: 170 s ago (fresh,
	// turns stale in 10 s: the recheck). Peer 5: no handshake, an
	// endpoint. Peer 6: no handshake, received bytes.
	at[atomic.Int64](unsafe.Pointer(peerOf(t, dev, 3)), layout.handshake).Store(now.Add(-181 * time.Second).UnixNano())
	at[atomic.Int64](unsafe.Pointer(peerOf(t, dev, 4)), layout.handshake).Store(now.Add(-170 * time.Second).UnixNano())
	if err := dev.IpcSet(fmt.Sprintf("public_key=%064x\nupdate_only=true\nendpoint=127.0.0.1:9\n", 6)); err != nil {
		t.Fatal(err)
	}
	at[atomic.Uint64](unsafe.Pointer(peerOf(t, dev, 6)), layout.rx).Store(148)

	get, err := dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	s := staleScan{now: now, after: after, recheck: after}
	want, err := parseUAPI(bufio.NewReader(strings.NewReader(get+"\n")), &s)
	if err != nil {
		t.Fatal(err)
	}
	got, recheck := inprocRead(t, dev, now, after, false)
	if got.PrivateKey != want.PrivateKey || got.PublicKey != want.PublicKey || got.ListenPort != want.ListenPort {
		t.Errorf("identity differs from the UAPI get's")
	}
	if diff := cmp.Diff(summary(want), summary(got)); diff != "" {
		t.Errorf("peers (-uapi +inproc):\n%s", diff)
	}
	if recheck != s.recheck || recheck > 10*time.Second || recheck < 9*time.Second {
		t.Errorf("recheck %v, the UAPI get's %v; want 10 s", recheck, s.recheck)
	}
	stale, _ := inprocRead(t, dev, now, after, true)
	var keys []byte
	for _, p := range stale.Peers {
		if !p.Stale {
			t.Errorf("staleOnly answer holds a fresh peer")
		}
		keys = append(keys, p.PublicKey[31])
	}
	slices.Sort(keys)
	if !bytes.Equal(keys, []byte{4, 6, 7}) { // peers 3, 5 and 6
		t.Errorf("stale peers %v, want key bytes 4, 6, 7", keys)
	}
	plain, recheck := inprocRead(t, dev, time.Time{}, -1, false)
	if len(plain.Peers) != 500 || recheck >= 0 {
		t.Errorf("a plain read: %d peers, recheck %v", len(plain.Peers), recheck)
	}
	for _, p := range plain.Peers {
		if p.Stale {
			t.Fatal("a plain read marks a peer stale")
		}
	}
}

// TestInprocReadDuringUAPIGet: the in-process read does not wait for
// wireguard-go's configuration lock. A UAPI "get" whose reader does not
// read holds that lock (as a get of a large device does while it formats
// its answer); the in-process read still answers, while a "set" waits,
// which shows the lock is held.
func TestInprocReadDuringUAPIGet(t *testing.T) {
	dev := channelDevice(t, 3000)
	pr, pw := io.Pipe()
	got := make(chan error, 1)
	go func() { got <- dev.IpcGetOperation(pw) }()
	t.Cleanup(func() { pr.Close(); <-got })
	// The get is now blocked writing its answer, holding the lock.
	set := make(chan error, 1)
	time.Sleep(50 * time.Millisecond)
	go func() { set <- dev.IpcSet(fmt.Sprintf("public_key=%064x\nallowed_ip=10.99.0.1/32\n", 99999)) }()
	select {
	case err := <-set:
		t.Fatalf("a set went through while a get held the lock (%v): the test's premise fails", err)
	case <-time.After(200 * time.Millisecond):
	}
	read := make(chan int, 1)
	go func() {
		var buf bytes.Buffer
		s := staleScan{now: time.Now(), after: 180 * time.Second, recheck: 180 * time.Second}
		writeInproc(bufio.NewWriter(&buf), dev, &s, false)
		d, err := parseInproc(bufio.NewReader(&buf), &s)
		if err != nil {
			read <- -1
			return
		}
		read <- len(d.Peers)
	}()
	select {
	case n := <-read:
		if n != 3000 {
			t.Errorf("in-process read: %d peers, want 3000", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the in-process read waited for the UAPI get's lock")
	}
	pr.Close()
	if err := <-set; err != nil {
		t.Errorf("set after the get: %v", err)
	}
}

// TestInprocFallback: a device process that does not know the in-process
// read (a holder of an older version, which closes the connection on an
// unknown operation) is read through the UAPI "get", and the Control
// stops asking.
func TestInprocFallback(t *testing.T) {
	roottest.Require(t)
	name := fmt.Sprintf("tlfb%d", os.Getpid()%1000000)
	if err := os.MkdirAll(socketDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(socketDir, name+".sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); os.Remove(path) })
	dev := channelDevice(t, 20)
	var ops atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			ops.Add(1)
			go dev.IpcHandle(c) // what an older holder runs
		}
	}()
	wc, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	c := newUserspaceControl(wc)
	t.Cleanup(func() { c.Close() })
	for range 2 {
		d, recheck, err := c.DeviceStale(name, time.Now(), 180*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Peers) != 20 || recheck != 180*time.Second {
			t.Fatalf("%d peers, recheck %v", len(d.Peers), recheck)
		}
	}
	if !c.noInproc.Load() {
		t.Error("the Control still asks for the in-process read")
	}
	if n := ops.Load(); n != 3 {
		t.Errorf("%d connections for two reads, want 3 (one refused in-process read, two gets)", n)
	}
}

// TestCollectByGrowth: with the runtime's pacing off, the collector
// collects once the heap allocated since the last collection reaches the
// live heap, and not while nothing is allocated.
func TestCollectByGrowth(t *testing.T) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { collectByGrowth(10*time.Millisecond, stop); close(done) }()
	defer func() { close(stop); <-done }()
	time.Sleep(50 * time.Millisecond)
	if pct := debug.SetGCPercent(-1); pct != -1 {
		t.Errorf("GC percent %d while the collector runs: the runtime still paces (and forces) collections", pct)
	}
	gcs := func() uint32 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.NumGC
	}
	n0 := gcs()
	time.Sleep(300 * time.Millisecond)
	if n := gcs(); n != n0 {
		t.Errorf("%d collections with nothing allocated", n-n0)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	var keep [][]byte
	for range (m.HeapAlloc + minGrowth) / (64 << 10) * 2 {
		keep = append(keep[:0], make([]byte, 64<<10))
	}
	_ = keep
	for deadline := time.Now().Add(5 * time.Second); gcs() == n0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no collection after the heap grew by twice the live heap")
		}
	}
}

// TestStartCollector: the runtime's pacing stays off while any in-process
// device is open and comes back when the last one closes.
func TestStartCollector(t *testing.T) {
	pacing := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }
	before := pacing()
	stop1 := startCollector()
	stop2 := startCollector()
	time.Sleep(20 * time.Millisecond)
	stop1()
	stop1()
	if p := pacing(); p != -1 {
		t.Errorf("GC percent %d with a device still open, want -1", p)
	}
	stop2()
	if p := pacing(); p != before {
		t.Errorf("GC percent %d after the last device closed, want %d", p, before)
	}
}

// BenchmarkInprocRead60k: the in-process read of a 60,000-peer device on
// a channel TUN, both halves (the device's process writing the answer,
// the reader parsing it), full and stale-only, against wireguard-go's
// UAPI dump read by the lean UAPI reader.
//
//	go test ./agent/wg -run '^$' -bench InprocRead60k -benchtime 10x
func BenchmarkInprocRead60k(b *testing.B) {
	t := &testing.T{}
	dev := channelDevice(t, 60000)
	if t.Failed() {
		b.Fatal("device setup failed")
	}
	now := time.Now()
	var buf bytes.Buffer
	for _, c := range []struct {
		name string
		read func()
	}{
		{"full", func() {
			buf.Reset()
			s := staleScan{now: now, after: 180 * time.Second, recheck: 180 * time.Second}
			writeInproc(bufio.NewWriter(&buf), dev, &s, false)
			if d, err := parseInproc(bufio.NewReader(&buf), &s); err != nil || len(d.Peers) != 60000 {
				b.Fatal(err)
			}
		}},
		{"stale-only", func() {
			buf.Reset()
			s := staleScan{now: now, after: 180 * time.Second, recheck: 180 * time.Second}
			writeInproc(bufio.NewWriter(&buf), dev, &s, true)
			if _, err := parseInproc(bufio.NewReader(&buf), &s); err != nil {
				b.Fatal(err)
			}
		}},
		{"uapi-dump", func() {
			buf.Reset()
			if err := dev.IpcGetOperation(&buf); err != nil {
				b.Fatal(err)
			}
			buf.WriteString("\n")
			s := staleScan{now: now, after: 180 * time.Second, recheck: 180 * time.Second}
			if d, err := parseUAPI(bufio.NewReader(&buf), &s); err != nil || len(d.Peers) != 60000 {
				b.Fatal(err)
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				c.read()
			}
		})
	}
}
