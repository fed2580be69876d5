package agent

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// trafficFields are the wgtypes.Peer fields that describe a client's
// traffic. Only the scrubber may read them.
var trafficFields = map[string]bool{"LastHandshakeTime": true, "Endpoint": true, "ReceiveBytes": true, "TransmitBytes": true}

// trafficUses lists, for one Go source, the uses of traffic fields: as a
// selector (x.Endpoint) or a composite-literal key (T{Endpoint: …}). The
// one exception is the Endpoint key of api.EnrollRequest, which is the
// node's own public address, not a client's.
func trafficUses(fset *token.FileSet, f *ast.File) []string {
	var uses []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if trafficFields[n.Sel.Name] {
				uses = append(uses, fset.Position(n.Pos()).String()+": ."+n.Sel.Name)
			}
		case *ast.CompositeLit:
			enroll := false
			if sel, ok := n.Type.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "api" && sel.Sel.Name == "EnrollRequest" {
					enroll = true
				}
			}
			for _, e := range n.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				if k, ok := kv.Key.(*ast.Ident); ok && trafficFields[k.Name] && !(enroll && k.Name == "Endpoint") {
					uses = append(uses, fset.Position(k.Pos()).String()+": "+k.Name+":")
				}
			}
		}
		return true
	})
	return uses
}

// TestPrivacySource enforces that scrub.go is the only non-test source of
// the agent that reads a peer's endpoint, handshake time or counters.
func TestPrivacySource(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	scrubUses := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		uses := trafficUses(fset, f)
		if name == "scrub.go" {
			scrubUses = len(uses)
			continue
		}
		for _, u := range uses {
			t.Errorf("%s: only scrub.go may read a peer's endpoint, handshake time or counters", u)
		}
	}
	if scrubUses == 0 {
		t.Error("scrub.go reads no traffic field; is the check still looking at the right code?")
	}
}

// TestPrivacySourceCatches checks the checker on code that breaks the rule.
func TestPrivacySourceCatches(t *testing.T) {
	src := `package agent
func leak(p wgtypes.Peer) (any, any) {
	x := wgtypes.PeerConfig{Endpoint: nil}
	_ = api.EnrollRequest{Endpoint: "vpn.example.net:51820"}
	return p.Endpoint, p.LastHandshakeTime.Unix() + p.ReceiveBytes + x.TransmitBytes
}`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "leak.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if uses := trafficUses(fset, f); len(uses) != 5 {
		t.Errorf("found %d uses, want 5:\n%s", len(uses), strings.Join(uses, "\n"))
	}
}

// TestLogsNamePeers runs the agent through enrollment, a snapshot,
// deltas (one malformed), scrubbing, a resync, a configure failure and an
// outage with debug logging, then checks that no log line holds a peer's
// key, allowed IP or endpoint, or a secret.
func TestLogsNamePeers(t *testing.T) {
	cp := newFakeCP(t)
	peers := testPeers(0, 40)
	cp.upsert(peers...)
	h := newHarness(t, []string{cp.URL()}, func(o *Options) { o.ScrubAfter = time.Second })
	h.start()
	h.waitFor("the snapshot", func() bool { return h.inStep(cp) && h.reported(cp) })

	extra := testPeers(100, 110)
	cp.upsert(extra...)
	cp.remove(peers[0].PublicKey, peers[1].PublicKey)
	bad := api.Peer{PublicKey: "!!" + peers[5].PublicKey, AllowedIPs: []string{"10.64.77.77"}}
	cp.upsert(bad)
	h.waitFor("deltas", func() bool { return h.fake.PeerCount("tl0") == 48 })
	cp.remove(bad.PublicKey) // malformed in removes too

	endpoint := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40123}
	for i := 2; i < 12; i++ {
		if err := h.fake.SetTraffic("tl0", testKey(i), wg.Traffic{Endpoint: endpoint, LastHandshake: time.Now().Add(-time.Hour), ReceiveBytes: 4242, TransmitBytes: 2424}); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("the scrub", func() bool { return metricValue(h.a.metrics.scrubbed) >= 10 })

	h.fake.FailConfigure(os.NewSyscallError("write", os.ErrDeadlineExceeded))
	cp.with(func(cp *fakeCP) { cp.forceResync = true })
	cp.upsert(testPeer(200))
	cp.with(func(cp *fakeCP) { cp.down = true })
	time.Sleep(200 * time.Millisecond)
	cp.with(func(cp *fakeCP) { cp.down = false })
	cp.upsert(testPeer(201))
	h.waitFor("recovery", func() bool { return h.fake.PeerCount("tl0") == 50 })
	h.stop()

	logs := h.logs.String()
	var secrets []string
	all := append(append(append([]api.Peer(nil), peers...), extra...), bad, testPeer(200), testPeer(201))
	for _, p := range all {
		secrets = append(secrets, p.PublicKey)
		for _, a := range p.AllowedIPs {
			secrets = append(secrets, a, strings.SplitN(a, "/", 2)[0])
		}
	}
	dev, _ := h.fake.Device("tl0")
	secrets = append(secrets, endpoint.String(), dev.PrivateKey.String(), dev.PublicKey.String(), cp.credential, "ntk_")
	sort.Strings(secrets)
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q", s)
		}
	}
	for _, want := range []string{"applied snapshot", "applied delta", "scrubbed idle peers", "skipped malformed peers"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q; the scenario did not run through", want)
		}
	}
	if t.Failed() || os.Getenv("TRACELESS_SHOW_LOGS") != "" {
		t.Logf("logs:\n%s", logs)
	}
}
