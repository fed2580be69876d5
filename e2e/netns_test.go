//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The real end-to-end test. Two network namespaces joined by a veth pair:
// a node namespace running traceless-agent with the userspace WireGuard
// device, and a client namespace running a WireGuard client (wireguard-go,
// driven in this process). The control plane runs in this process and
// listens on loopback — in the root namespace for the test's own API calls
// and in the node namespace's loopback for the agent. All traffic stays on
// loopback or inside the two namespaces the test creates.

const (
	nodeAddr   = "192.0.2.1" // the node's address on the veth (TEST-NET-1)
	clientAddr = "192.0.2.2" // the client's: must end up stored nowhere
	wgPort     = 51820
	echoPort   = 7777
)

// requireRoot skips without root, ip(8) or /dev/net/tun, except in CI,
// where these tests must run.
func requireRoot(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "ip (iproute2)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing = append(missing, "/dev/net/tun")
	}
	if _, err := exec.LookPath("go"); err != nil {
		missing = append(missing, "go (to build the agent)")
	}
	if len(missing) == 0 {
		return
	}
	msg := "the end-to-end test needs " + strings.Join(missing, ", ") + "; .ci/run provides them"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// killNetns ends the processes left in a namespace (the agent's
// userspace device holder lives on by design) and deletes it.
func killNetns(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	self := fmt.Sprint(os.Getpid())
	for _, pid := range strings.Fields(string(out)) {
		if pid == self {
			continue // this test's own threads visited the namespace
		}
		exec.Command("kill", "-9", pid).Run()
	}
	exec.Command("ip", "netns", "del", ns).Run()
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// inNetns runs f on an OS thread switched into the named namespace. The
// thread is discarded afterwards, so no goroutine ever runs in the wrong
// namespace. Sockets and TUN devices created by f stay in the namespace.
func inNetns(t *testing.T, name string, f func() error) error {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// world is the running installation.
type world struct {
	t         *testing.T
	dir       string
	nodeNS    string
	clientNS  string
	st        *store.Store
	dbPath    string
	cpLog     *lockedBuffer
	api       string // control plane URL in the root namespace
	nodeCP    string // control plane URL inside the node namespace
	servers   []*http.Server
	agentBin  string
	agentCmd  *exec.Cmd
	agentLog  string
	agentIf   string
	clientIf  string
	admin     string
	ownerTok  string
	appID     string
	key       string
	nodeID    string
	nodePub   string
	enrollTok string
	responses bytes.Buffer // every API response body, for the final scan
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	w := &world{t: t, dir: t.TempDir(), nodeNS: "tle2en" + id, clientNS: "tle2ec" + id,
		agentIf: "tln" + id, clientIf: "tlc" + id, cpLog: &lockedBuffer{}}

	// Namespaces and the veth pair between them.
	run(t, "ip", "netns", "add", w.nodeNS)
	t.Cleanup(func() {
		killNetns(w.nodeNS)
		os.Remove("/var/run/wireguard/" + w.agentIf + ".sock") // the killed holder's
	})
	run(t, "ip", "netns", "add", w.clientNS)
	t.Cleanup(func() { killNetns(w.clientNS) })
	run(t, "ip", "-n", w.nodeNS, "link", "add", "vn", "type", "veth", "peer", "name", "vc", "netns", w.clientNS)
	run(t, "ip", "-n", w.nodeNS, "addr", "add", nodeAddr+"/24", "dev", "vn")
	run(t, "ip", "-n", w.clientNS, "addr", "add", clientAddr+"/24", "dev", "vc")
	for _, ns := range []string{w.nodeNS, w.clientNS} {
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", w.nodeNS, "link", "set", "vn", "up")
	run(t, "ip", "-n", w.clientNS, "link", "set", "vc", "up")

	// The control plane.
	w.dbPath = filepath.Join(w.dir, "traceless.db")
	st, err := store.Open(context.Background(), store.Config{Driver: store.DriverSQLite, DSN: w.dbPath})
	if err != nil {
		t.Fatal(err)
	}
	w.st = st
	t.Cleanup(func() { st.Close() })
	srv, err := controlplane.New(controlplane.Options{
		Store: st, Logger: slog.New(slog.NewJSONHandler(w.cpLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Argon2: controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1}, LongPoll: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	lnRoot, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var lnNode net.Listener
	if err := inNetns(t, w.nodeNS, func() (err error) {
		lnNode, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, ln := range []net.Listener{lnRoot, lnNode} {
		hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
		w.servers = append(w.servers, hs)
		go hs.Serve(ln)
	}
	t.Cleanup(w.stopControlPlane)
	w.api = "http://" + lnRoot.Addr().String()
	w.nodeCP = "http://" + lnNode.Addr().String()
	if _, err := srv.Bootstrap(context.Background(), "op@e2e.example", "e2e operator secret", w.api); err != nil {
		t.Fatal(err)
	}

	// An echo server inside the node namespace, reached through the tunnel.
	if err := inNetns(t, w.nodeNS, func() error {
		ln, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", echoPort))
		if err != nil {
			return err
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); io.Copy(c, c) }()
			}
		}()
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// The agent binary.
	w.agentBin = filepath.Join(w.dir, "traceless-agent")
	build := exec.Command("go", "build", "-o", w.agentBin, "github.com/traceless-vpn/traceless/cmd/traceless-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the agent: %v\n%s", err, out)
	}
	w.agentLog = filepath.Join(w.dir, "agent.log")
	return w
}

func (w *world) stopControlPlane() {
	for _, hs := range w.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		hs.Shutdown(ctx)
		cancel()
	}
}

// call does a JSON request against the root-namespace control plane and
// keeps the response body for the final scan.
func (w *world) call(method, path, token string, in, out any) int {
	w.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, w.api+path, body)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	w.responses.Write(b)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			w.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return res.StatusCode
}

func (w *world) mustCall(method, path, token string, in, out any, want int) {
	w.t.Helper()
	if got := w.call(method, path, token, in, out); got != want {
		w.t.Fatalf("%s %s: status %d, want %d", method, path, got, want)
	}
}

// setup makes a pool granted by "pro", an owner on it with an app and a
// key, and an enrollment token.
func (w *world) setup() {
	t := w.t
	var admin api.AuthResponse
	w.mustCall("POST", "/api/v1/auth/login", "", api.Credentials{Email: "op@e2e.example", Password: "e2e operator secret"}, &admin, 200)
	w.admin = admin.Token
	var pool api.Pool
	w.mustCall("POST", "/api/v1/admin/pools", w.admin, api.PoolInput{Name: "e2e", Region: "test", Country: "DE", City: "Berlin"}, &pool, 201)
	pro, err := w.st.GetPlanBySlug(context.Background(), "pro")
	if err != nil {
		t.Fatal(err)
	}
	w.mustCall("PUT", "/api/v1/admin/plans/"+pro.ID, w.admin, api.PlanInput{Slug: "pro", Name: pro.Name, MaxApps: pro.MaxApps,
		MaxDevices: pro.MaxDevices, MaxOwnNodes: pro.MaxOwnNodes, PriceCents: pro.PriceCents, Currency: pro.Currency, Pools: []string{pool.ID}}, nil, 200)
	var owner api.AuthResponse
	w.mustCall("POST", "/api/v1/auth/signup", "", api.Credentials{Email: "own@e2e.example", Password: "tunnel test secret"}, &owner, 201)
	w.ownerTok = owner.Token
	w.mustCall("PUT", "/api/v1/me/plan", w.ownerTok, api.PlanChange{Plan: "pro"}, nil, 200)
	var app api.App
	w.mustCall("POST", "/api/v1/apps", w.ownerTok, api.AppInput{Name: "e2e"}, &app, 201)
	w.appID = app.ID
	var key api.APIKeyCreated
	w.mustCall("POST", "/api/v1/apps/"+app.ID+"/keys", w.ownerTok, api.APIKeyInput{Name: "e2e"}, &key, 201)
	w.key = key.Key
	var et api.EnrollmentToken
	w.mustCall("POST", "/api/v1/admin/pools/"+pool.ID+"/enrollment-tokens", w.admin, nil, &et, 201)
	w.enrollTok = et.Token
}

// startAgent runs traceless-agent inside the node namespace. scrubAfter
// is its idle threshold; below 130 s it also cuts active sessions (which
// re-handshake only every two minutes), so only the scrub step uses one.
func (w *world) startAgent(scrubAfter time.Duration) {
	t := w.t
	logf, err := os.OpenFile(w.agentLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", w.nodeNS, w.agentBin,
		"--server", w.nodeCP,
		"--credential-file", filepath.Join(w.dir, "credential"),
		"--name", "e2e-node",
		"--interface", w.agentIf,
		"--listen-port", fmt.Sprint(wgPort),
		"--endpoint", fmt.Sprintf("%s:%d", nodeAddr, wgPort),
		"--backend", "userspace",
		"--scrub-after", scrubAfter.String(),
		"--allow-short-scrub",
		"--scrub-interval", "1s",
		"--metrics-listen", "",
		"--log-level", "debug",
	)
	cmd.Env = append(os.Environ(), "TRACELESS_AGENT_ENROLL_TOKEN="+w.enrollTok)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.agentCmd = cmd
	t.Cleanup(func() { w.stopAgent() })
}

func (w *world) stopAgent() {
	if w.agentCmd == nil || w.agentCmd.Process == nil {
		return
	}
	w.agentCmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { w.agentCmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		w.agentCmd.Process.Kill()
		<-done
	}
	w.agentCmd = nil
}

// waitNode waits until the node is enrolled and reports itself online.
func (w *world) waitNode() {
	t := w.t
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var nodes api.NodeList
		w.mustCall("GET", "/api/v1/admin/nodes", w.admin, nil, &nodes, 200)
		if len(nodes.Nodes) == 1 && nodes.Nodes[0].Online && nodes.Nodes[0].Status != nil && nodes.Nodes[0].Status.InterfaceUp {
			w.nodeID, w.nodePub = nodes.Nodes[0].ID, nodes.Nodes[0].PublicKey
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(w.agentLog)
	t.Fatalf("the node did not come online; agent log:\n%s", log)
}

// client is the end user's WireGuard device in the client namespace.
type client struct {
	w    *world
	priv wgtypes.Key
	dev  *device.Device
	dc   api.DeviceCreated
}

func (w *world) newClient() *client {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		w.t.Fatal(err)
	}
	c := &client{w: w, priv: k}
	if err := inNetns(w.t, w.clientNS, func() error {
		tdev, err := tun.CreateTUN(w.clientIf, 1420)
		if err != nil {
			return err
		}
		c.dev = device.NewDevice(tdev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
		return c.dev.Up()
	}); err != nil {
		w.t.Fatalf("client device: %v", err)
	}
	w.t.Cleanup(func() { c.dev.Close() })
	run(w.t, "ip", "-n", w.clientNS, "link", "set", w.clientIf, "up")
	run(w.t, "ip", "-n", w.clientNS, "route", "add", "10.64.0.1/32", "dev", w.clientIf)
	return c
}

// configure applies a wg-quick config from the control plane with the
// client's private key: the server never sees the key.
func (c *client) configure(conf string) {
	t := c.w.t
	var addr, peerKey, endpoint string
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " = ")
		if !ok {
			continue
		}
		switch k {
		case "Address":
			addr = strings.TrimSpace(strings.Split(v, ",")[0])
		case "PublicKey":
			peerKey = v
		case "Endpoint":
			endpoint = v
		}
	}
	pk, err := wgtypes.ParseKey(peerKey)
	if err != nil || addr == "" || endpoint == "" {
		t.Fatalf("config %q: key %v", conf, err)
	}
	uapi := fmt.Sprintf("private_key=%x\nreplace_peers=true\npublic_key=%x\nendpoint=%s\nreplace_allowed_ips=true\nallowed_ip=10.64.0.0/10\n",
		c.priv[:], pk[:], endpoint)
	if err := c.dev.IpcSet(uapi); err != nil {
		t.Fatalf("configure client: %v", err)
	}
	exec.Command("ip", "-n", c.w.clientNS, "addr", "flush", "dev", c.w.clientIf).Run()
	run(t, "ip", "-n", c.w.clientNS, "addr", "add", addr, "dev", c.w.clientIf)
	exec.Command("ip", "-n", c.w.clientNS, "route", "replace", "10.64.0.1/32", "dev", c.w.clientIf).Run()
}

// register registers the client's public key and configures the client
// from the returned config.
func (c *client) register() {
	w := c.w
	w.mustCall("POST", "/api/v1/devices", w.key, api.DeviceInput{PublicKey: c.priv.PublicKey().String()}, &c.dc, 201)
	c.configure(w.config(c.dc.ID))
}

func (w *world) config(deviceID string) string {
	req, _ := http.NewRequest("GET", w.api+"/api/v1/devices/"+deviceID+"/config?server="+w.nodeID, nil)
	req.Header.Set("Authorization", "Bearer "+w.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		w.t.Fatalf("config: %d %s", res.StatusCode, b)
	}
	w.responses.Write(b)
	return string(b)
}

// ping sends a line through the tunnel to the echo server in the node
// namespace and reports whether it came back within timeout.
func (w *world) ping(timeout time.Duration) error {
	var err error
	perr := inNetns(w.t, w.clientNS, func() error {
		c, derr := net.DialTimeout("tcp", fmt.Sprintf("10.64.0.1:%d", echoPort), timeout)
		if derr != nil {
			err = derr
			return nil
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		msg := []byte("through the tunnel\n")
		if _, werr := c.Write(msg); werr != nil {
			err = werr
			return nil
		}
		got := make([]byte, len(msg))
		if _, rerr := io.ReadFull(c, got); rerr != nil {
			err = rerr
			return nil
		}
		if !bytes.Equal(got, msg) {
			err = errors.New("echo differs")
		}
		return nil
	})
	if perr != nil {
		w.t.Fatal(perr)
	}
	return err
}

// eventually retries ping until it succeeds (or fails, with want false)
// within d, and returns how long that took.
func (w *world) eventually(want bool, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < d {
		err := w.ping(500 * time.Millisecond)
		if (err == nil) == want {
			return time.Since(start), true
		}
		if !want {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return time.Since(start), false
}

// probeContinuously fails the test unless every probe through the tunnel
// succeeds for d.
func (w *world) probeContinuously(t *testing.T, when string, d time.Duration) {
	t.Helper()
	for start := time.Now(); time.Since(start) < d; time.Sleep(250 * time.Millisecond) {
		if err := w.ping(time.Second); err != nil {
			log, _ := os.ReadFile(w.agentLog)
			t.Fatalf("tunnel broke %v %s: %v; agent log:\n%s", time.Since(start).Round(time.Millisecond), when, err, log)
		}
	}
}

// nodePeer reads the node's WireGuard device through its UAPI socket (the
// socket is a file, reachable from this namespace).
func (w *world) nodePeer(pub wgtypes.Key) (wgtypes.Peer, bool) {
	wc, err := wgctrl.New()
	if err != nil {
		w.t.Fatal(err)
	}
	defer wc.Close()
	d, err := wc.Device(w.agentIf)
	if err != nil {
		w.t.Fatalf("read the node's device: %v", err)
	}
	for _, p := range d.Peers {
		if p.PublicKey == pub {
			return p, true
		}
	}
	return wgtypes.Peer{}, false
}

func TestEndToEnd(t *testing.T) {
	requireRoot(t)
	w := newWorld(t)
	w.setup()
	w.startAgent(3 * time.Minute)
	w.waitNode()

	c := w.newClient()
	c.register()
	if took, ok := w.eventually(true, 15*time.Second); !ok {
		log, _ := os.ReadFile(w.agentLog)
		t.Fatalf("no traffic through the tunnel after %v; agent log:\n%s", took, log)
	} else {
		t.Logf("tunnel up %v after registration", took.Round(time.Millisecond))
	}
	oldPub := c.priv.PublicKey()

	t.Run("rotate", func(t *testing.T) {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		var rot api.DeviceCreated
		w.mustCall("POST", "/api/v1/devices/"+c.dc.ID+"/rotate", w.key, api.RotateInput{PublicKey: k.PublicKey().String()}, &rot, 200)
		if rot.IPv4 == c.dc.IPv4 {
			t.Errorf("rotation kept the address %s", rot.IPv4)
		}
		// The old key stops working.
		if took, ok := w.eventually(false, 3*time.Second); !ok {
			t.Errorf("the old key still works %v after rotation", took)
		}
		c.priv, c.dc = k, rot
		c.configure(w.config(rot.ID))
		if took, ok := w.eventually(true, 15*time.Second); !ok {
			t.Fatalf("the new key does not work after %v", took)
		}
		if _, ok := w.nodePeer(oldPub); ok {
			t.Error("the old key is still on the node")
		}
	})

	t.Run("agent restart", func(t *testing.T) {
		// The userspace device lives in the agent's holder process, so the
		// tunnel keeps working while the agent is down and after it is back:
		// every probe must pass.
		w.stopAgent()
		w.probeContinuously(t, "with the agent stopped", 2*time.Second)
		w.startAgent(3 * time.Minute)
		w.probeContinuously(t, "after the agent restarted", 3*time.Second)
	})

	t.Run("control plane down", func(t *testing.T) {
		w.stopControlPlane()
		// The tunnel keeps working throughout: every probe must pass while
		// the agent finds the control plane gone and retries.
		w.probeContinuously(t, "after the control plane went down", 4*time.Second)
		// Bring it back for the deletion test.
		var ln, lnNode net.Listener
		var err error
		ln, err = net.Listen("tcp", strings.TrimPrefix(w.api, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if err := inNetns(t, w.nodeNS, func() (err error) {
			lnNode, err = net.Listen("tcp", strings.TrimPrefix(w.nodeCP, "http://"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		h := w.servers[0].Handler
		w.servers = nil
		for _, l := range []net.Listener{ln, lnNode} {
			hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			w.servers = append(w.servers, hs)
			go hs.Serve(l)
		}
	})

	t.Run("scrub", func(t *testing.T) {
		// Restart the agent with a short threshold for this step only.
		w.stopAgent()
		w.startAgent(4 * time.Second)
		if _, ok := w.eventually(true, 30*time.Second); !ok {
			t.Fatal("no tunnel after restarting the agent for the scrub")
		}
		pub := c.priv.PublicKey()
		p, ok := w.nodePeer(pub)
		if !ok || p.Endpoint == nil || p.LastHandshakeTime.IsZero() {
			t.Fatalf("after traffic the node's peer = %+v; want an endpoint and a handshake", p)
		}
		// Idle: no traffic. The scrubber (4 s threshold, 1 s tick) must
		// make the device forget the client's endpoint and handshake.
		deadline := time.Now().Add(4*time.Second + 3*time.Second)
		for {
			p, ok = w.nodePeer(pub)
			if ok && p.Endpoint == nil && p.LastHandshakeTime.IsZero() && p.ReceiveBytes == 0 && p.TransmitBytes == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the scrub window the node's peer = endpoint %v, handshake %v, rx %d, tx %d",
					p.Endpoint, p.LastHandshakeTime, p.ReceiveBytes, p.TransmitBytes)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if len(p.AllowedIPs) != 2 {
			t.Errorf("scrubbed peer's allowed IPs = %v; want it re-added with both", p.AllowedIPs)
		}
		if wg, err := exec.LookPath("wg"); err == nil {
			out, _ := exec.Command(wg, "show", w.agentIf, "dump").CombinedOutput()
			if bytes.Contains(out, []byte(clientAddr)) {
				t.Errorf("wg show still lists the client's address:\n%s", out)
			}
		}
		if _, ok := w.eventually(true, 30*time.Second); !ok {
			t.Fatal("the tunnel does not come back after the scrub")
		}
		// Back to the production threshold for the rest.
		w.stopAgent()
		w.startAgent(3 * time.Minute)
		if _, ok := w.eventually(true, 30*time.Second); !ok {
			t.Fatal("no tunnel after restoring the threshold")
		}
	})

	t.Run("delete", func(t *testing.T) {
		// Give the agent time to reconnect to the control plane.
		time.Sleep(2 * time.Second)
		w.mustCall("DELETE", "/api/v1/devices/"+c.dc.ID, w.key, nil, nil, 204)
		start := time.Now()
		took, ok := w.eventually(false, 5*time.Second)
		if !ok {
			t.Fatalf("traffic still flows %v after the deletion", took)
		}
		t.Logf("traffic stopped %v after the deletion answered", time.Since(start).Round(time.Millisecond))
		if took > time.Second+600*time.Millisecond { // one 500 ms probe of slack
			t.Errorf("traffic stopped only %v after the deletion; want within a second", took)
		}
	})

	// The privacy scan: the client's address must be nowhere the control
	// plane or the agent keep or print; the deleted device's keys neither.
	w.stopAgent()
	if err := w.st.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	agentLog, _ := os.ReadFile(w.agentLog)
	cred, _ := os.ReadFile(filepath.Join(w.dir, "credential"))
	db, _ := os.ReadFile(w.dbPath)
	wal, _ := os.ReadFile(w.dbPath + "-wal")
	sources := map[string][]byte{"database": db, "database WAL": wal, "control-plane log": w.cpLog.Bytes(),
		"agent log": agentLog, "agent credential file": cred, "API responses": w.responses.Bytes()}
	canaries := map[string]string{"client address": clientAddr, "client public key": c.priv.PublicKey().String(),
		"rotated-away public key": oldPub.String()}
	for what, canary := range canaries {
		for where, b := range sources {
			if what != "client address" && where == "API responses" {
				continue // responses rightly returned the device's own key while it existed
			}
			if bytes.Contains(b, []byte(canary)) {
				t.Errorf("the %s (%s) appears in the %s", what, canary, where)
			}
		}
	}
	if len(agentLog) == 0 || len(w.cpLog.Bytes()) == 0 {
		t.Error("a log is empty; the scan proved nothing")
	}
}
