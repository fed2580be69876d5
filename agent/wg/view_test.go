package wg_test

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
)

// TestDeviceStale: the scrub threshold's comparison, through the
// redacted view.
func TestDeviceStale(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ep := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	for _, tc := range []struct {
		name    string
		traffic wg.Traffic
		stale   bool
	}{
		{"handshake 181s ago", wg.Traffic{Endpoint: ep, LastHandshake: now.Add(-181 * time.Second), ReceiveBytes: 1000, TransmitBytes: 2000}, true},
		{"handshake 179s ago", wg.Traffic{Endpoint: ep, LastHandshake: now.Add(-179 * time.Second), ReceiveBytes: 1000, TransmitBytes: 2000}, false},
		{"handshake exactly 180s ago", wg.Traffic{Endpoint: ep, LastHandshake: now.Add(-180 * time.Second)}, false},
		{"never handshaked, no endpoint", wg.Traffic{}, false},
		{"never handshaked, endpoint", wg.Traffic{Endpoint: ep}, true},
		{"never handshaked, received bytes", wg.Traffic{ReceiveBytes: 148}, true},
		{"never handshaked, sent bytes", wg.Traffic{TransmitBytes: 148}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := wg.NewFake()
			f.AddDevice("tl0")
			if err := f.ConfigureDevice("tl0", wgtypes.Config{Peers: []wgtypes.PeerConfig{
				{PublicKey: key(1), AllowedIPs: cidrs("10.64.0.2/32")}, {PublicKey: key(2), AllowedIPs: cidrs("10.64.0.3/32")}}}); err != nil {
				t.Fatal(err)
			}
			if err := f.SetTraffic("tl0", key(1), tc.traffic); err != nil {
				t.Fatal(err)
			}
			c := wg.NewControl(f)
			d, _, err := c.DeviceStale("tl0", now, 180*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range d.Peers {
				want := tc.stale && p.PublicKey == key(1)
				if p.Stale != want {
					t.Errorf("peer %d: stale %v, want %v", p.PublicKey[0], p.Stale, want)
				}
				if len(p.AllowedIPs) != 1 {
					t.Errorf("peer %d: allowed IPs %v", p.PublicKey[0], p.AllowedIPs)
				}
			}
			plain, err := c.Device("tl0")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range plain.Peers {
				if p.Stale {
					t.Error("Device marks a peer stale; only DeviceStale does")
				}
			}
		})
	}
}

// TestViewHoldsNoTraffic: the view's types have no field that could hold
// an endpoint, a time or a counter, whatever its name.
func TestViewHoldsNoTraffic(t *testing.T) {
	allowed := map[reflect.Type]bool{
		reflect.TypeOf(wgtypes.Key{}): true, reflect.TypeOf(0): true, reflect.TypeOf(false): true,
		reflect.TypeOf([]netip.Prefix{}): true, reflect.TypeOf([]wg.Peer{}): true,
	}
	for _, v := range []any{wg.Device{}, wg.Peer{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			f := typ.Field(i)
			lower := strings.ToLower(f.Name)
			if !allowed[f.Type] || strings.Contains(lower, "endpoint") || strings.Contains(lower, "handshake") || strings.Contains(lower, "bytes") {
				t.Errorf("%s.%s (%s) may carry client traffic state", typ.Name(), f.Name, f.Type)
			}
		}
	}
}
