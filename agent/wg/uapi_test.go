package wg

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestParseUAPI: the lean reader on answers as wireguard-go writes them.
func TestParseUAPI(t *testing.T) {
	const k1 = "0101010101010101010101010101010101010101010101010101010101010101"
	const k2 = "0202020202020202020202020202020202020202020202020202020202020202"
	now := time.Unix(1_000_000, 0)
	answer := "private_key=" + strings.Repeat("11", 32) + "\nlisten_port=51820\n" +
		"public_key=" + k1 + "\npreshared_key=" + strings.Repeat("00", 32) + "\nprotocol_version=1\n" +
		"endpoint=192.0.2.7:4000\nlast_handshake_time_sec=999800\nlast_handshake_time_nsec=0\n" +
		"tx_bytes=100\nrx_bytes=200\npersistent_keepalive_interval=0\n" +
		"allowed_ip=10.64.0.2/32\nallowed_ip=fd00::2/128\n" +
		"public_key=" + k2 + "\nprotocol_version=1\nlast_handshake_time_sec=999900\nlast_handshake_time_nsec=5\n" +
		"tx_bytes=18446744073709551615\nrx_bytes=0\nallowed_ip=::ffff:10.64.0.3/128\n" +
		"errno=0\n\n"
	s := staleScan{now: now, after: 180 * time.Second, recheck: 180 * time.Second}
	d, err := parseUAPI(bufio.NewReader(strings.NewReader(answer)), &s)
	if err != nil {
		t.Fatal(err)
	}
	if d.ListenPort != 51820 || d.PublicKey != d.PrivateKey.PublicKey() || len(d.Peers) != 2 {
		t.Fatalf("device: port %d, %d peers", d.ListenPort, len(d.Peers))
	}
	got := map[byte][]string{}
	for _, p := range d.Peers {
		for _, a := range p.AllowedIPs {
			got[p.PublicKey[0]] = append(got[p.PublicKey[0]], a.String())
		}
	}
	if diff := cmp.Diff(map[byte][]string{1: {"10.64.0.2/32", "fd00::2/128"}, 2: {"10.64.0.3/32"}}, got); diff != "" {
		t.Errorf("allowed IPs (-want +got):\n%s", diff)
	}
	// Peer 1 handshook 200 s ago: stale. Peer 2 100 s ago: due in 80 s.
	if !d.Peers[0].Stale || d.Peers[1].Stale {
		t.Errorf("stale = %v, %v; want true, false", d.Peers[0].Stale, d.Peers[1].Stale)
	}
	if want := 80*time.Second + 5; s.recheck != want {
		t.Errorf("recheck = %v, want %v", s.recheck, want)
	}

	for name, bad := range map[string]string{
		"errno":     "errno=-22\n\n",
		"truncated": "public_key=" + k1 + "\nallowed_ip=10.64.0.2/32\n",
		"bad key":   "public_key=0102\nerrno=0\n\n",
		"bad ip":    "public_key=" + k1 + "\nallowed_ip=10.64.0.2\nerrno=0\n\n",
	} {
		s := staleScan{after: -1}
		if _, err := parseUAPI(bufio.NewReader(strings.NewReader(bad)), &s); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestStaleScanRecheck: the recheck is the time until the earliest fresh
// peer turns stale, at most the threshold; stale peers and peers without
// a handshake do not shorten it.
func TestStaleScanRecheck(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name       string
		handshakes []time.Duration // ago; -1: none
		want       time.Duration
	}{
		{"no peers", nil, 180 * time.Second},
		{"never handshaked", []time.Duration{-1, -1}, 180 * time.Second},
		{"one fresh", []time.Duration{30 * time.Second}, 150 * time.Second},
		{"earliest wins", []time.Duration{30 * time.Second, 170 * time.Second, 5 * time.Second}, 10 * time.Second},
		{"stale ones do not count", []time.Duration{400 * time.Second, 100 * time.Second}, 80 * time.Second},
		{"exactly at the threshold", []time.Duration{180 * time.Second}, 0},
	} {
		s := staleScan{now: now, after: 180 * time.Second, recheck: 180 * time.Second}
		for _, ago := range tc.handshakes {
			var hs time.Time
			if ago >= 0 {
				hs = now.Add(-ago)
			}
			s.peer(hs, false)
		}
		if s.recheck != tc.want {
			t.Errorf("%s: recheck %v, want %v", tc.name, s.recheck, tc.want)
		}
	}
}
