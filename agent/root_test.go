package agent

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/internal/roottest"
	"github.com/traceless-vpn/traceless/agent/wg"
)

// needRoot skips a test that needs root and a TUN device, saying why;
// under CI=true it fails instead (roottest.Require).
func needRoot(tb testing.TB) {
	tb.Helper()
	roottest.Require(tb)
}

// netns is a network namespace of the test's own, kept alive by a locked
// thread that runs functions in it. Links, addresses, sysctls and
// nftables made through it never touch the host; the namespace and all
// in it go away at cleanup.
type netns struct {
	work chan func()
	done chan struct{}
}

func newNetns(tb testing.TB) *netns {
	tb.Helper()
	ns := &netns{work: make(chan func()), done: make(chan struct{})}
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and the
		// namespace with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ready <- err
			return
		}
		ready <- nil
		defer close(ns.done)
		for f := range ns.work {
			f()
		}
	}()
	if err := <-ready; err != nil {
		tb.Fatalf("unshare network namespace: %v", err)
	}
	tb.Cleanup(func() {
		close(ns.work)
		<-ns.done
	})
	return ns
}

// do runs f on the namespace's thread.
func (ns *netns) do(f func() error) error {
	errc := make(chan error, 1)
	ns.work <- func() { errc <- f() }
	return <-errc
}

func devName(suffix string) string { return fmt.Sprintf("tltest%d%s", os.Getpid()%1000000, suffix) }

// TestRealDevice runs the agent on a real userspace WireGuard device (in
// a namespace of its own) against the fake control plane: 1,000 peers
// through the agent, read back with wgctrl and wg(8), a delta, a scrub,
// and the device gone after Close.
func TestRealDevice(t *testing.T) {
	needRoot(t)
	ns := newNetns(t)
	name := devName("a")
	cp := newFakeCP(t)
	cp.upsert(testPeers(0, 1000)...)
	h := newHarness(t, []string{cp.URL()}, func(o *Options) {
		o.ListenPort = 0 // a free port
		o.ScrubAfter = time.Second
		o.Open = func() (*wg.Interface, error) {
			var i *wg.Interface
			err := ns.do(func() (err error) {
				i, err = wg.Open(wg.Config{Name: name, Backend: wg.BackendUserspace})
				return err
			})
			return i, err
		}
	})
	h.start()
	h.waitFor("1,000 peers applied and reported", func() bool { return h.reported(cp) })

	c, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dev, err := c.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.Peers) != 1000 || dev.Type != wgtypes.Userspace {
		t.Fatalf("device has %d peers (type %v), want 1000 userspace", len(dev.Peers), dev.Type)
	}
	want := cp.snapshot()
	for _, p := range dev.Peers {
		w, ok := want[p.PublicKey.String()]
		if !ok || len(p.AllowedIPs) != 2 {
			t.Fatalf("unexpected peer on the device")
		}
		for _, a := range p.AllowedIPs {
			if a.String() != w.AllowedIPs[0] && a.String() != w.AllowedIPs[1] {
				t.Fatalf("peer has allowed IP %s, want %v", a.String(), w.AllowedIPs)
			}
		}
	}
	if up, err := h.a.iface.Links.IsUp(name); !up || err != nil {
		t.Errorf("interface up = %v, %v", up, err)
	}
	if bin, err := exec.LookPath("wg"); err == nil {
		out, err := exec.Command(bin, "show", name, "peers").Output()
		if n := len(strings.Fields(string(out))); err != nil || n != 1000 {
			t.Errorf("wg show %s peers: %d peers, %v", name, n, err)
		}
	} else {
		t.Log("wg(8) not installed; skipping its check")
	}

	// A delta, then a peer that gains an endpoint without a handshake is
	// scrubbed.
	cp.remove(testPeer(0).PublicKey)
	cp.upsert(testPeer(5000))
	h.waitFor("the delta", func() bool { return h.reported(cp) })
	target := testKey(7)
	if err := c.ConfigureDevice(name, wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: target, UpdateOnly: true,
		Endpoint: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}}}}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the scrub", func() bool {
		d, err := c.Device(name)
		if err != nil {
			return false
		}
		for _, p := range d.Peers {
			if p.PublicKey == target {
				return p.Endpoint == nil && len(p.AllowedIPs) == 2
			}
		}
		return false
	})
	if n := metricValue(h.a.metrics.scrubbed); n < 1 {
		t.Errorf("scrubbed_total = %v", n)
	}
	h.stop()
	if _, err := c.Device(name); err == nil {
		t.Error("userspace device still there after Close")
	}
	if _, err := os.Stat("/var/run/wireguard/" + name + ".sock"); !os.IsNotExist(err) {
		t.Errorf("UAPI socket left: %v", err)
	}
}

// TestNFTables installs the agent's table in a namespace of its own and
// scans for log rules.
func TestNFTables(t *testing.T) {
	needRoot(t)
	ns := newNetns(t)
	fw := NewNFTables()
	rules := FirewallRules{ListenPort: 51820, Egress: "eth9", Sources: []netip.Prefix{netip.MustParsePrefix("10.64.0.0/10"), netip.MustParsePrefix("fd74:6c73:7670:1::/64")}}
	err := ns.do(func() error {
		for range 2 { // idempotent
			if err := fw.Apply(rules); err != nil {
				return err
			}
		}
		c, err := nftables.New()
		if err != nil {
			return err
		}
		chains, err := c.ListChains()
		if err != nil {
			return err
		}
		counts := map[string]int{}
		for _, ch := range chains {
			if ch.Table.Name != tableName {
				return fmt.Errorf("unexpected chain %s in table %s", ch.Name, ch.Table.Name)
			}
			rs, err := c.GetRules(ch.Table, ch)
			if err != nil {
				return err
			}
			counts[ch.Name] = len(rs)
		}
		if fmt.Sprint(counts) != "map[nat-postrouting:2 raw-output:1 raw-prerouting:1]" {
			return fmt.Errorf("chains and rule counts = %v", counts)
		}
		if n, err := fw.LogRules(); n != 0 || err != nil {
			return fmt.Errorf("LogRules = %d, %v; want 0", n, err)
		}
		// Someone adds a log rule elsewhere.
		tb := c.AddTable(&nftables.Table{Name: "other", Family: nftables.TableFamilyIPv4})
		ch := c.AddChain(&nftables.Chain{Name: "in", Table: tb, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{&expr.Log{}}})
		if err := c.Flush(); err != nil {
			return err
		}
		if n, err := fw.LogRules(); n != 1 || err != nil {
			return fmt.Errorf("LogRules = %d, %v; want 1", n, err)
		}
		// Without egress the table keeps only the notrack rules.
		if err := fw.Apply(FirewallRules{ListenPort: 51820}); err != nil {
			return err
		}
		chains, _ = c.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if len(chains) != 2 {
			return fmt.Errorf("%d chains without egress, want 2", len(chains))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
