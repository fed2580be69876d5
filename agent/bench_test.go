package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// The benchmarks need root: they run a real userspace WireGuard device in
// a network namespace of their own. Run them with a fixed iteration
// count, since each setup applies 60,000 peers:
//
//	go test ./agent -run '^$' -bench Apply60k -benchtime 3x
//	go test ./agent -run '^$' -bench OneChangeAt60k -benchtime 2000x

const benchPeers = 60000

// benchDevice is a userspace device with its link up, and a raw wgctrl
// client for the replay and checks.
type benchDevice struct {
	iface *wg.Interface
	raw   *wgctrl.Client
	key   wgtypes.Key
	port  int
	// holder is the holder process's id; 0 when the device is in this
	// process.
	holder int
}

// procCPU is the CPU time (user + system) of process pid so far, from
// /proc (10 ms resolution); 0 for pid 0.
func procCPU(b *testing.B, pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis: state is the
	// first (field 3), utime and stime are fields 14 and 15.
	f := strings.Fields(string(s[bytes.LastIndexByte(s, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func newBenchDevice(b *testing.B, suffix string) *benchDevice {
	return openBenchDevice(b, suffix, false)
}

// openBenchDevice opens the device in this process, or with held in a
// holder process (the agent's default; the test binary serves as the
// holder, see TestMain), whose id is then bd.holder.
func openBenchDevice(b *testing.B, suffix string, held bool) *benchDevice {
	b.Helper()
	needRoot(b)
	ns := newNetns(b)
	name := devName(suffix)
	bd := &benchDevice{}
	if err := ns.do(func() (err error) {
		bd.iface, err = wg.Open(wg.Config{Name: name, Backend: wg.BackendUserspace, Holder: held})
		if err != nil {
			return err
		}
		return bd.iface.Links.Up(name)
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if held {
			// The holder ends with its link; wait for it to go.
			ns.do(func() error { return bd.iface.Links.Delete(name) })
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if wg.SocketHolder(name) == 0 {
					break
				}
			}
		}
		bd.iface.Close()
	})
	if held {
		if bd.holder = wg.SocketHolder(name); bd.holder == 0 {
			b.Fatal("no holder process answers")
		}
	}
	var err error
	if bd.raw, err = wgctrl.New(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bd.raw.Close() })
	bd.key, _ = wgtypes.GeneratePrivateKey()
	if err := bd.raw.ConfigureDevice(name, wgtypes.Config{PrivateKey: &bd.key, ListenPort: new(int)}); err != nil {
		b.Fatal(err)
	}
	d, err := bd.raw.Device(name)
	if err != nil {
		b.Fatal(err)
	}
	bd.port = d.ListenPort
	return bd
}

func (bd *benchDevice) name() string { return bd.iface.Name }

// clear removes every peer (outside the timed sections).
func (bd *benchDevice) clear(b *testing.B) {
	b.Helper()
	if err := bd.raw.ConfigureDevice(bd.name(), wgtypes.Config{ReplacePeers: true}); err != nil {
		b.Fatal(err)
	}
}

// writeConf writes a wg(8) config holding peers for `wg syncconf`.
func (bd *benchDevice) writeConf(b *testing.B, path string, peers []api.Peer) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "[Interface]\nPrivateKey = %s\nListenPort = %d\n", bd.key, bd.port)
	for _, p := range peers {
		fmt.Fprintf(w, "\n[Peer]\nPublicKey = %s\nAllowedIPs = %s, %s\n", p.PublicKey, p.AllowedIPs[0], p.AllowedIPs[1])
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// syncconf times `wg syncconf` with a config file.
func (bd *benchDevice) syncconf(b *testing.B, wgBin, path string) time.Duration {
	b.Helper()
	start := time.Now()
	if out, err := exec.Command(wgBin, "syncconf", bd.name(), path).CombinedOutput(); err != nil {
		b.Fatalf("wg syncconf: %v\n%s", err, out)
	}
	return time.Since(start)
}

func peerCount(b *testing.B, c *wgctrl.Client, name string) int {
	b.Helper()
	d, err := c.Device(name)
	if err != nil {
		b.Fatal(err)
	}
	return len(d.Peers)
}

// BenchmarkApply60k applies 60,000 peers to an empty userspace device
// through the agent's snapshot path (read the device, reconcile, 60
// batched calls) and, in the same run, a replay: the same 60 batches
// sent straight through wgctrl (not an independent baseline: it re-sends
// the agent's own configs, so agent/replay is about 1 by construction);
// and `wg syncconf` of the same set when wg(8) is installed, the
// independent baseline. ns/op is the agent's time; the metrics give all
// three and the ratios.
func BenchmarkApply60k(b *testing.B) {
	bd := newBenchDevice(b, "b")
	peers := testPeers(0, benchPeers)
	set := newSetBuilder(len(peers))
	for _, p := range peers {
		set.add(p)
	}
	replayCfgs := reconcile(set.set, nil, &wg.Device{}, batchSize)
	wgBin, wgErr := exec.LookPath("wg")
	conf := filepath.Join(b.TempDir(), "peers.conf")
	if wgErr == nil {
		bd.writeConf(b, conf, peers)
	}

	var agentT, replayT, syncT time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		bd.clear(b)
		d := newDevice(bd.iface.Client, bd.name())
		b.StartTimer()
		start := time.Now()
		r, err := d.applyFull(set, 1)
		agentT += time.Since(start)
		b.StopTimer()
		if err != nil || r.calls != 60 || peerCount(b, bd.raw, bd.name()) != benchPeers {
			b.Fatalf("agent apply: %+v, %v", r, err)
		}

		bd.clear(b)
		start = time.Now()
		for _, c := range replayCfgs {
			if err := bd.raw.ConfigureDevice(bd.name(), c); err != nil {
				b.Fatal(err)
			}
		}
		replayT += time.Since(start)

		if wgErr == nil {
			bd.clear(b)
			syncT += bd.syncconf(b, wgBin, conf)
			if peerCount(b, bd.raw, bd.name()) != benchPeers {
				b.Fatal("wg syncconf did not apply every peer")
			}
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(agentT.Milliseconds())/n, "agent-ms/op")
	b.ReportMetric(float64(replayT.Milliseconds())/n, "replay-ms/op")
	b.ReportMetric(float64(agentT)/float64(replayT), "agent/replay")
	if wgErr == nil {
		b.ReportMetric(float64(syncT.Milliseconds())/n, "syncconf-ms/op")
		b.ReportMetric(float64(agentT)/float64(syncT), "agent/syncconf")
	}
}

// BenchmarkOneChangeAt60k adds or removes one peer (alternately) on a
// device holding 60,000 peers through the agent's delta path; one op is
// one change. In the same run it times `wg syncconf` doing the same
// change from a config file of the whole set (a few times, as each reads
// the whole device).
func BenchmarkOneChangeAt60k(b *testing.B) {
	bd := newBenchDevice(b, "c")
	peers := testPeers(0, benchPeers)
	set := newSetBuilder(len(peers))
	for _, p := range peers {
		set.add(p)
	}
	d := newDevice(bd.iface.Client, bd.name())
	if _, err := d.applyFull(set, 1); err != nil {
		b.Fatal(err)
	}
	extra := testPeer(benchPeers + 1)

	rev := int64(1)
	b.ResetTimer()
	for b.Loop() {
		rev++
		var err error
		if rev%2 == 0 {
			_, err = d.applyDelta([]api.Peer{extra}, nil, rev)
		} else {
			_, err = d.applyDelta(nil, []string{extra.PublicKey}, rev)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(perOp.Microseconds())/1000, "agent-ms/op")

	wgBin, err := exec.LookPath("wg")
	if err != nil {
		return
	}
	if rev%2 == 0 { // leave the device at 60,000 peers
		if _, err := d.applyDelta(nil, []string{extra.PublicKey}, rev+1); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	with, without := filepath.Join(dir, "with.conf"), filepath.Join(dir, "without.conf")
	bd.writeConf(b, with, append(append([]api.Peer(nil), peers...), extra))
	bd.writeConf(b, without, peers)
	const rounds = 4
	var syncT time.Duration
	for range rounds {
		syncT += bd.syncconf(b, wgBin, with)
		syncT += bd.syncconf(b, wgBin, without)
	}
	if peerCount(b, bd.raw, bd.name()) != benchPeers {
		b.Fatal("wg syncconf left the wrong peer count")
	}
	syncPerOp := syncT / (2 * rounds)
	b.ReportMetric(float64(syncPerOp.Microseconds())/1000, "syncconf-ms/op")
	b.ReportMetric(float64(syncPerOp)/float64(perOp), "syncconf/agent")
}
