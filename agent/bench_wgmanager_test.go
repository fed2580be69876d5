package agent

import (
	"net"
	"sort"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// wgManagerSync is the baseline of BenchmarkFullDiffAt60k: a
// reimplementation of the full peer sync of Mullvad's relay agent,
// mullvad/wg-manager (github.com/mullvad/wg-manager, commit bba18b4:
// Wireguard.UpdatePeers in wireguard/wireguard.go with parsePeer,
// mapPeers, mapExistingPeers, and iputil.EqualIPNet). wg-manager is
// GPL-3.0; this is the same algorithm written anew, not its code, for one
// interface:
//
//  1. map the API's peers by key, parsing each key (wgtypes.ParseKey) and
//     its IPv4 and IPv6 network (net.ParseCIDR), skipping bad ones;
//  2. read the device through wgctrl and map its peers by key;
//  3. for each API peer missing on the device, or whose allowed IPs
//     differ, a config that sets them (ReplaceAllowedIPs); the comparison
//     sorts both lists by their String() form and compares String()s;
//  4. for each device peer the API lacks, a Remove;
//  5. one ConfigureDevice with all of them, if any.
func wgManagerSync(c *wgctrl.Client, name string, peers []wgmPeer) error {
	want := make(map[wgtypes.Key][]net.IPNet)
	for _, p := range peers {
		k, err := wgtypes.ParseKey(p.Pubkey)
		if err != nil {
			continue
		}
		_, v4, err := net.ParseCIDR(p.IPv4)
		if err != nil {
			continue
		}
		_, v6, err := net.ParseCIDR(p.IPv6)
		if err != nil {
			continue
		}
		want[k] = []net.IPNet{*v4, *v6}
	}
	dev, err := c.Device(name)
	if err != nil {
		return err
	}
	have := make(map[wgtypes.Key]wgtypes.Peer)
	for _, p := range dev.Peers {
		have[p.PublicKey] = p
	}
	changes := []wgtypes.PeerConfig{}
	for k, allowed := range want {
		if p, ok := have[k]; !ok || !wgmSameNets(allowed, p.AllowedIPs) {
			changes = append(changes, wgtypes.PeerConfig{PublicKey: k, ReplaceAllowedIPs: true, AllowedIPs: allowed})
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok {
			changes = append(changes, wgtypes.PeerConfig{PublicKey: k, Remove: true})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	return c.ConfigureDevice(name, wgtypes.Config{Peers: changes})
}

// wgmPeer is what wg-manager's sync reads of a peer from its API.
type wgmPeer struct{ IPv4, IPv6, Pubkey string }

// wgmSameNets compares as iputil.EqualIPNet does: nil-ness, length, then
// both sorted by String() and compared by String().
func wgmSameNets(a, b []net.IPNet) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	sort.Slice(a, func(i, j int) bool { return a[i].String() < a[j].String() })
	sort.Slice(b, func(i, j int) bool { return b[i].String() < b[j].String() })
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}
