package agent

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// trafficFields are the wgtypes.Peer fields (and the Fake's Traffic
// fields) that describe a client's traffic.
var trafficFields = map[string]bool{"LastHandshakeTime": true, "LastHandshake": true, "Endpoint": true, "ReceiveBytes": true, "TransmitBytes": true}

// trafficReaders are the only non-test sources, under agent/ and
// cmd/traceless-agent, that may name a traffic field, and why.
var trafficReaders = map[string]string{
	"wg/view.go": "the redaction: stale compares a peer's traffic with the scrub threshold and with zero",
	"wg/fake.go": "the fake device keeps the traffic tests give it, as a device does",
	"wg/uapi.go": "the userspace reader hands each peer's traffic lines to the redaction's staleness check as it parses them",
	"wg/inproc.go": "the in-process reader hands each peer's traffic state to the redaction's staleness check in the device's " +
		"own process and answers keys, allowed IPs and a stale bit",
}

// wireguardGoTraffic are the names of wireguard-go's unexported peer
// fields (and UAPI keys) that hold a client's traffic; code that reaches
// them by name (reflection, a UAPI line) counts as reading them.
var wireguardGoTraffic = map[string]bool{`"lastHandshakeNano"`: true, `"rxBytes"`: true, `"txBytes"`: true, `"endpoint"`: true}

// agentSources are the directories the field-name check covers, relative
// to agent/: the agent and its WireGuard backends. The command is covered
// by TestPrivacyTypes, which tells a peer's Endpoint from the node's own
// --endpoint setting.
var agentSources = []string{".", "wg"}

// trafficUses lists, for one Go source, the uses of traffic fields: as a
// selector (x.Endpoint), a composite-literal key (T{Endpoint: …}) or a
// string naming a wireguard-go traffic field (wireguardGoTraffic). The
// one exception is the Endpoint key of api.EnrollRequest, which is the
// node's own public address, not a client's.
func trafficUses(fset *token.FileSet, f *ast.File) []string {
	var uses []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			if wireguardGoTraffic[n.Value] {
				uses = append(uses, fset.Position(n.Pos()).String()+": "+n.Value)
			}
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

// TestPrivacySource enforces that only agent/wg's redaction (and its
// Fake) reads a peer's endpoint, handshake time or counters: not the rest
// of the agent, not the scrubber, not the command.
func TestPrivacySource(t *testing.T) {
	fset := token.NewFileSet()
	readerUses := map[string]int{}
	for _, dir := range agentSources {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			uses := trafficUses(fset, f)
			if _, ok := trafficReaders[filepath.ToSlash(name)]; ok {
				readerUses[filepath.ToSlash(name)] = len(uses)
				continue
			}
			for _, u := range uses {
				t.Errorf("%s: only agent/wg's redaction reads a peer's endpoint, handshake time or counters", u)
			}
		}
	}
	for name, why := range trafficReaders {
		if readerUses[name] == 0 {
			t.Errorf("%s (%s) reads no traffic field; is the check still looking at the right code?", name, why)
		}
	}
}

// rawTypes are wgctrl's device types, which carry clients' traffic. They
// stay inside agent/wg.
var rawTypes = map[string]bool{
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes.Device": true,
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes.Peer":   true,
	module + "/agent/wg.Traffic":                       true, // the Fake's, for tests
}

// unloggable are the types no log line may carry as a whole value
// (slog.Any, slog.Group, a logger's loose arguments): devices, peers,
// keys, addresses and what holds them. Their fields would print peers'
// keys, allowed IPs or endpoints.
var unloggable = map[string]bool{
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes.Device": true, "golang.zx2c4.com/wireguard/wgctrl/wgtypes.Peer": true,
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes.Config": true, "golang.zx2c4.com/wireguard/wgctrl/wgtypes.PeerConfig": true,
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes.Key": true,
	module + "/agent/wg.Device":                     true, module + "/agent/wg.Peer": true, module + "/agent/wg.Traffic": true,
	module + "/agent/wg.Interface": true, module + "/agent/wg.Fake": true, module + "/agent/wg.Control": true,
	module + "/agent.device": true, module + "/agent.peerSet": true, module + "/agent.peerSpec": true,
	module + "/agent.peerState": true, module + "/agent.setBuilder": true, module + "/agent.peersAnswer": true,
	module + "/agent.credential": true, module + "/agent.Agent": true,
	module + "/controlplane/api.Peer": true, module + "/controlplane/api.PeersResponse": true,
	"net.UDPAddr": true, "net.IPNet": true, "net.IP": true, "net/netip.Addr": true, "net/netip.Prefix": true, "net/netip.AddrPort": true,
}

const module = "github.com/traceless-vpn/traceless"

// typeViolations type-checks a package's files and lists (a) expressions
// of a raw wgctrl device type, unless rawOK, and (b) log calls given a
// whole value of an unloggable type.
func typeViolations(t *testing.T, fset *token.FileSet, imp types.Importer, path string, files []*ast.File, rawOK bool) []string {
	t.Helper()
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: imp}
	if _, err := conf.Check(path, fset, files, info); err != nil {
		t.Fatalf("type-check %s: %v", path, err)
	}
	var out []string
	if !rawOK {
		for e, tv := range info.Types {
			if name := mentions(tv.Type, rawTypes); name != "" {
				out = append(out, fmt.Sprintf("%s: a %s outside agent/wg", fset.Position(e.Pos()), name))
			}
		}
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			fn := calledFunc(info, call)
			if fn == nil || fn.Pkg() == nil || fn.Pkg().Path() != "log/slog" {
				return true
			}
			sig := fn.Type().(*types.Signature)
			for i, arg := range call.Args {
				var param types.Type
				if sig.Variadic() && i >= sig.Params().Len()-1 {
					param = sig.Params().At(sig.Params().Len() - 1).Type().(*types.Slice).Elem()
				} else if i < sig.Params().Len() {
					param = sig.Params().At(i).Type()
				}
				if param == nil || !types.IsInterface(param) {
					continue // typed constructors: slog.String takes a string
				}
				if name := mentions(info.TypeOf(arg), unloggable); name != "" {
					out = append(out, fmt.Sprintf("%s: slog.%s logs a whole %s", fset.Position(arg.Pos()), fn.Name(), name))
				}
			}
			return true
		})
	}
	sort.Strings(out)
	return out
}

// calledFunc returns the function or method a call calls, if static.
func calledFunc(info *types.Info, call *ast.CallExpr) *types.Func {
	var id *ast.Ident
	switch f := call.Fun.(type) {
	case *ast.Ident:
		id = f
	case *ast.SelectorExpr:
		id = f.Sel
	default:
		return nil
	}
	fn, _ := info.Uses[id].(*types.Func)
	return fn
}

// mentions returns the first of names that typ is or holds (through
// pointers, slices, arrays, maps, channels and struct fields), or "".
func mentions(typ types.Type, names map[string]bool) string {
	seen := map[types.Type]bool{}
	var walk func(types.Type) string
	walk = func(typ types.Type) string {
		if typ == nil || seen[typ] {
			return ""
		}
		seen[typ] = true
		switch t := typ.(type) {
		case *types.Named:
			if obj := t.Obj(); obj.Pkg() != nil && names[obj.Pkg().Path()+"."+obj.Name()] {
				return obj.Pkg().Path() + "." + obj.Name()
			}
			return walk(t.Underlying())
		case *types.Alias:
			return walk(types.Unalias(t))
		case *types.Pointer:
			return walk(t.Elem())
		case *types.Slice:
			return walk(t.Elem())
		case *types.Array:
			return walk(t.Elem())
		case *types.Chan:
			return walk(t.Elem())
		case *types.Map:
			if n := walk(t.Key()); n != "" {
				return n
			}
			return walk(t.Elem())
		case *types.Tuple:
			for i := range t.Len() {
				if n := walk(t.At(i).Type()); n != "" {
					return n
				}
			}
		case *types.Struct:
			for i := range t.NumFields() {
				if n := walk(t.Field(i).Type()); n != "" {
					return n
				}
			}
		}
		return ""
	}
	return walk(typ)
}

// exportImporter imports packages from the export data the go command
// builds for the agent's dependencies.
func exportImporter(t *testing.T, fset *token.FileSet) types.Importer {
	t.Helper()
	needGo(t)
	cmd := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", ".", "./wg", "../cmd/traceless-agent")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, stderr.String())
	}
	exports := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if path, file, ok := strings.Cut(line, "\t"); ok && file != "" {
			exports[path] = file
		}
	}
	return importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})
}

func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: the go command is needed to type-check the agent's sources: %v", err)
		}
		t.Skipf("type-checking the agent's sources needs the go command: %v", err)
	}
}

// parseDir parses a directory's non-test Go files that a release build
// compiles: a file only built with a tag (cmd/traceless-agent's
// fakewg.go, a fake device for tests, under traceless_fakewg) is not
// part of the program.
func parseDir(t *testing.T, fset *token.FileSet, dir string) []*ast.File {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ok, err := build.Default.MatchFile(dir, filepath.Base(name)); err != nil || !ok {
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// TestPrivacyTypes type-checks the agent, agent/wg and the command: no
// wgtypes.Device or wgtypes.Peer (which carry endpoints, handshake times
// and counters) reaches code outside agent/wg, and no log call is given a
// device, a peer, a key or an address as a whole value.
func TestPrivacyTypes(t *testing.T) {
	fset := token.NewFileSet()
	imp := exportImporter(t, fset)
	for _, p := range []struct {
		dir, path string
		rawOK     bool
	}{
		{".", module + "/agent", false},
		{"wg", module + "/agent/wg", true},
		{"../cmd/traceless-agent", module + "/cmd/traceless-agent", false},
	} {
		for _, v := range typeViolations(t, fset, imp, p.path, parseDir(t, fset, p.dir), p.rawOK) {
			t.Error(v)
		}
	}
}

// TestPrivacySourceCatches checks the checkers on code that breaks the
// rules.
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
		t.Errorf("found %d traffic uses, want 5:\n%s", len(uses), strings.Join(uses, "\n"))
	}

	typed := `package agent

import (
	"log/slog"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
)

func leak(log *slog.Logger, c *wgctrl.Client, v *wg.Control) time.Time {
	raw, _ := c.Device("tl0")
	d, _ := v.Device("tl0")
	log.Info("device", slog.Any("device", d))
	log.Warn("peer", "peer", d.Peers[0], slog.Int("n", len(d.Peers)))
	log.Debug("keys", slog.Group("g", "k", []wgtypes.Key{d.PublicKey}))
	log.Info("fine", slog.Any("err", nil), slog.String("key", "not a value"), slog.Any("failed", []string{"swap_off"}))
	return raw.Peers[0].LastHandshakeTime
}`
	f, err = parser.ParseFile(fset, "typed.go", typed, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := typeViolations(t, fset, exportImporter(t, fset), "example.com/leak", []*ast.File{f}, false)
	var raw, logged int
	for _, v := range got {
		switch {
		case strings.Contains(v, "outside agent/wg"):
			raw++
		case strings.Contains(v, "logs a whole"):
			logged++
		}
		if strings.Contains(v, "typed.go:19:") { // the line of the allowed calls
			t.Errorf("flagged an allowed call: %s", v)
		}
	}
	t.Logf("found:\n%s", strings.Join(got, "\n"))
	// c.Device's result and the expressions reaching raw's peer hold the
	// raw device; d,
	// d.Peers[0] and the keys are logged whole.
	if raw < 2 || logged != 3 {
		t.Errorf("found %d raw-type and %d whole-value violations, want at least 2 and 3:\n%s", raw, logged, strings.Join(got, "\n"))
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
