package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

const swapsHeader = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

func TestPosture(t *testing.T) {
	good := func() fstest.MapFS {
		return fstest.MapFS{
			"proc/swaps": {Data: []byte(swapsHeader)},
			"proc/sys/net/netfilter/nf_conntrack_acct":      {Data: []byte("0\n")},
			"proc/sys/net/netfilter/nf_conntrack_timestamp": {Data: []byte("0\n")},
			"var/lib/traceless-agent/credential.json":       {Data: []byte("{}"), Mode: 0o600},
		}
	}
	all := api.Posture{ConntrackAccountingOff: true, ConntrackTimestampsOff: true, NoLogRules: true, SwapOff: true,
		NotDumpable: true, CoreSizeZero: true, NoStateOnDisk: true}
	with := func(f func(p *api.Posture)) api.Posture {
		p := all
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name     string
		fs       func(m fstest.MapFS)
		fw       *fakeFirewall
		iptables string // iptables-save output; "" = not installed
		iptErr   error
		proc     *fakeProcess
		want     api.Posture
		failed   []string
	}{
		{name: "all good", want: all},
		{name: "conntrack not loaded", fs: func(m fstest.MapFS) {
			delete(m, "proc/sys/net/netfilter/nf_conntrack_acct")
			delete(m, "proc/sys/net/netfilter/nf_conntrack_timestamp")
		}, want: all},
		{name: "conntrack accounting on", fs: func(m fstest.MapFS) { m["proc/sys/net/netfilter/nf_conntrack_acct"].Data = []byte("1\n") },
			want: with(func(p *api.Posture) { p.ConntrackAccountingOff = false }), failed: []string{"conntrack_accounting_off"}},
		{name: "conntrack timestamps on", fs: func(m fstest.MapFS) { m["proc/sys/net/netfilter/nf_conntrack_timestamp"].Data = []byte("1") },
			want: with(func(p *api.Posture) { p.ConntrackTimestampsOff = false }), failed: []string{"conntrack_timestamps_off"}},
		{name: "nftables log rule", fw: &fakeFirewall{logRules: 1},
			want: with(func(p *api.Posture) { p.NoLogRules = false }), failed: []string{"no_log_rules"}},
		{name: "nftables unreadable", fw: &fakeFirewall{err: errors.New("operation not permitted")},
			want: with(func(p *api.Posture) { p.NoLogRules = false }), failed: []string{"no_log_rules"}},
		{name: "iptables LOG target", iptables: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j LOG --log-prefix x\nCOMMIT\n",
			want: with(func(p *api.Posture) { p.NoLogRules = false }), failed: []string{"no_log_rules"}},
		{name: "iptables NFLOG target", iptables: "*raw\n-A PREROUTING -j NFLOG --nflog-group 2\nCOMMIT\n",
			want: with(func(p *api.Posture) { p.NoLogRules = false }), failed: []string{"no_log_rules"}},
		{name: "iptables without logging", iptables: "*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\n-A X -m comment --comment LOG -j ACCEPT\nCOMMIT\n", want: all},
		{name: "iptables-save fails", iptables: "x", iptErr: errors.New("exit status 1"),
			want: with(func(p *api.Posture) { p.NoLogRules = false }), failed: []string{"no_log_rules"}},
		{name: "swap file", fs: func(m fstest.MapFS) { m["proc/swaps"].Data = []byte(swapsHeader + "/swapfile file 1048572 0 -2\n") },
			want: with(func(p *api.Posture) { p.SwapOff = false }), failed: []string{"swap_off"}},
		{name: "zram swap", fs: func(m fstest.MapFS) {
			m["proc/swaps"].Data = []byte(swapsHeader + "/dev/zram0 partition 4194300 0 100\n")
		}, want: all},
		{name: "dm-crypt swap by mapper name", fs: func(m fstest.MapFS) {
			m["proc/swaps"].Data = []byte(swapsHeader + "/dev/mapper/cryptswap partition 4194300 0 -2\n")
			m["sys/block/dm-0/dm/name"] = &fstest.MapFile{Data: []byte("root\n")}
			m["sys/block/dm-0/dm/uuid"] = &fstest.MapFile{Data: []byte("LVM-abc\n")}
			m["sys/block/dm-1/dm/name"] = &fstest.MapFile{Data: []byte("cryptswap\n")}
			m["sys/block/dm-1/dm/uuid"] = &fstest.MapFile{Data: []byte("CRYPT-PLAIN-cryptswap\n")}
		}, want: all},
		{name: "plain device-mapper swap", fs: func(m fstest.MapFS) {
			m["proc/swaps"].Data = []byte(swapsHeader + "/dev/dm-0 partition 4194300 0 -2\n")
			m["sys/block/dm-0/dm/uuid"] = &fstest.MapFile{Data: []byte("LVM-abc\n")}
		}, want: with(func(p *api.Posture) { p.SwapOff = false }), failed: []string{"swap_off"}},
		{name: "dumpable", proc: &fakeProcess{dumpable: true},
			want: with(func(p *api.Posture) { p.NotDumpable = false }), failed: []string{"not_dumpable"}},
		{name: "core size", proc: &fakeProcess{core: 1},
			want: with(func(p *api.Posture) { p.CoreSizeZero = false }), failed: []string{"core_size_zero"}},
		{name: "another file beside the credential", fs: func(m fstest.MapFS) {
			m["var/lib/traceless-agent/peers.cache"] = &fstest.MapFile{Data: []byte("x"), Mode: 0o600}
		}, want: with(func(p *api.Posture) { p.NoStateOnDisk = false }), failed: []string{"no_state_on_disk"}},
		{name: "credential readable by others", fs: func(m fstest.MapFS) { m["var/lib/traceless-agent/credential.json"].Mode = 0o644 },
			want: with(func(p *api.Posture) { p.NoStateOnDisk = false }), failed: []string{"no_state_on_disk"}},
		{name: "nothing on disk yet", fs: func(m fstest.MapFS) { delete(m, "var/lib/traceless-agent/credential.json") }, want: all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			if tc.fs != nil {
				tc.fs(m)
			}
			fw, proc := tc.fw, tc.proc
			if fw == nil {
				fw = &fakeFirewall{}
			}
			if proc == nil {
				proc = &fakeProcess{}
			}
			host := Host{FS: m, Firewall: fw, Process: proc,
				LookPath: func(f string) (string, error) {
					if tc.iptables == "" || f != "iptables-save" {
						return "", errors.New("not found")
					}
					return "/usr/sbin/" + f, nil
				},
				Run: func(_ context.Context, name string, _ ...string) ([]byte, error) {
					if name != "/usr/sbin/iptables-save" {
						t.Errorf("ran %s", name)
					}
					return []byte(tc.iptables), tc.iptErr
				},
			}
			a := &Agent{opts: Options{CredentialFile: "/var/lib/traceless-agent/credential.json"}, host: host.withDefaults(),
				log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
			got, failed := a.checkPosture(context.Background())
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("posture (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.failed, failed); diff != "" {
				t.Errorf("failed checks (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHarden checks that the agent turns conntrack accounting off and
// hardens its process when asked, and that the posture then holds.
func TestHarden(t *testing.T) {
	host, mem, _, proc := cleanHost()
	a := &Agent{opts: Options{CredentialFile: "/nonexistent/credential.json", Harden: true}, host: host.withDefaults(),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	if _, failed := a.checkPosture(context.Background()); !cmp.Equal(failed, []string{"conntrack_accounting_off", "not_dumpable", "core_size_zero"}) {
		t.Fatalf("before hardening, failed = %v", failed)
	}
	a.hardenProcess()
	a.hardenSysctls()
	if got := mem.read("proc/sys/net/netfilter/nf_conntrack_acct"); got != "0\n" {
		t.Errorf("nf_conntrack_acct = %q", got)
	}
	if _, failed := a.checkPosture(context.Background()); len(failed) != 0 {
		t.Errorf("after hardening, failed = %v", failed)
	}
	// Hardening that the kernel refuses is logged, and the posture says so.
	proc.dumpable, proc.failSet = true, true
	a.hardenProcess()
	if p, _ := a.checkPosture(context.Background()); p.NotDumpable {
		t.Error("posture claims non-dumpable after a refused prctl")
	}
}

// TestPostureSelf checks the real process: after hardening, it is not
// dumpable and may not dump core. It changes only this test process.
func TestPostureSelf(t *testing.T) {
	a := &Agent{opts: Options{CredentialFile: filepath.Join(t.TempDir(), "credential.json")}, host: Host{}.withDefaults(),
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	a.hardenProcess()
	p, failed := a.checkPosture(context.Background())
	if !p.NotDumpable || !p.CoreSizeZero || !p.NoStateOnDisk {
		t.Errorf("posture of this process = %+v (failed %v)", p, failed)
	}
	t.Logf("this machine: failed checks %v", failed)
}

func TestNoStateOnDiskReal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "credential.json")
	h := Host{}.withDefaults()
	if !noStateOnDisk(h, path) {
		t.Error("an empty directory fails")
	}
	if err := saveCredential(path, &credential{Credential: "tln_x", PrivateKey: "k"}); err != nil {
		t.Fatal(err)
	}
	if !noStateOnDisk(h, path) {
		t.Error("the credential file alone fails")
	}
	os.WriteFile(filepath.Join(dir, "log.txt"), []byte("x"), 0o600)
	if noStateOnDisk(h, path) {
		t.Error("a second file passes")
	}
	if noStateOnDisk(h, "") {
		t.Error("no credential file configured passes")
	}
}

func TestIptablesLogs(t *testing.T) {
	for in, want := range map[string]bool{
		"":                          false,
		"-A INPUT -j LOG":           true,
		"-A INPUT --jump ULOG":      true,
		"-A INPUT -j LOGGING_CHAIN": false,
		"-A INPUT -j DROP # LOG":    false,
		"-A FORWARD -j NFLOG --nflog-group 5\n-A INPUT -j ACCEPT": true,
	} {
		if got := iptablesLogs([]byte(in)); got != want {
			t.Errorf("iptablesLogs(%q) = %v, want %v", in, got, want)
		}
	}
}
