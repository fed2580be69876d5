//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// The failover test: real processes only. Three traceless-server
// processes on one PostgreSQL cluster of the test's own, two
// traceless-agent processes (built with the fake WireGuard device, see
// cmd/traceless-agent/fakewg.go) whose --server lists all three, and a
// webhook receiver on loopback. During a registration burst, with alert
// events queued, it SIGKILLs the replica that leads alerts and the one the
// agents poll, starts them again as a supervisor would, and restarts
// PostgreSQL once. Everything listens on 127.0.0.1.

// Bounds the test holds the system to.
const (
	// failoverBound: after the replica the agents poll is killed, a device
	// registered on a surviving replica is on both nodes within this. The
	// agents move to the next URL at once; what can take longer is a
	// revision the killed replica committed but did not live to announce,
	// which the survivor skips after gapGrace (2 s, checked every 0.5 s).
	failoverBound = 5 * time.Second
	// restartBound: after PostgreSQL answers again, a device registered on
	// a replica is on both nodes within this. The agents' polls were
	// refused with 503 by every replica while it restarted, so they wait
	// their retry backoff (1 s doubling, jittered: the third failure
	// waits 2-4 s) before they ask again.
	restartBound = 10 * time.Second
	// listenBound: after PostgreSQL answers again, every replica's LISTEN
	// is back within this.
	listenBound = 5 * time.Second
	// settleBound: after the burst ends, every registration that got a
	// 2xx is on both nodes, and every alert reached the receiver, within
	// this.
	settleBound = 30 * time.Second
	// receiverDelay is how long the webhook receiver takes to answer, so
	// that alert events queue up behind each other.
	receiverDelay = 300 * time.Millisecond
)

const pgBin = "/usr/lib/postgresql/15/bin"

// requireFailover skips without what the test needs, except in CI, where
// it must run: go (it builds the binaries) and PostgreSQL 15's initdb and
// pg_ctl, with a user other than root to run them as when the test runs
// as root.
func requireFailover(t *testing.T) (pgUser *user.User) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("go"); err != nil {
		missing = append(missing, "go (to build traceless-server and traceless-agent)")
	}
	for _, p := range []string{"initdb", "pg_ctl", "pg_isready"} {
		if _, err := os.Stat(filepath.Join(pgBin, p)); err != nil {
			missing = append(missing, filepath.Join(pgBin, p)+" (Debian's postgresql-15)")
		}
	}
	if os.Geteuid() == 0 {
		for _, name := range []string{"postgres", "tracelessci"} {
			if u, err := user.Lookup(name); err == nil {
				pgUser = u
				break
			}
		}
		if pgUser == nil {
			missing = append(missing, "a system user postgres or tracelessci to run PostgreSQL as (not root)")
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			missing = append(missing, "runuser (util-linux)")
		}
	}
	if len(missing) == 0 {
		return pgUser
	}
	msg := "the failover test needs " + strings.Join(missing, ", ") + "; .ci/run provides them"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

// freePort returns a TCP port free on 127.0.0.1 at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// pgCluster is a throwaway PostgreSQL cluster that the test starts,
// restarts and removes.
type pgCluster struct {
	t    *testing.T
	user *user.User // nil: run as this user
	dir  string
	port int
}

func (c *pgCluster) cmd(name string, args ...string) *exec.Cmd {
	bin := filepath.Join(pgBin, name)
	cmd := exec.Command(bin, args...)
	if c.user != nil {
		cmd = exec.Command("runuser", append([]string{"-u", c.user.Username, "--", bin}, args...)...)
	}
	cmd.Dir = c.dir // the checkout may be closed to the PostgreSQL user
	return cmd
}

func (c *pgCluster) run(name string, args ...string) {
	c.t.Helper()
	if out, err := c.cmd(name, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
		c.t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, log)
	}
}

func startPostgres(t *testing.T, u *user.User) *pgCluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "traceless-failover-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{t: t, user: u, dir: dir, port: freePort(t)}
	if u != nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			c.cmd("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop").Run()
		}
		os.RemoveAll(dir)
	})
	c.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale")
	// fsync off: the cluster is thrown away.
	c.run("pg_ctl", "-D", filepath.Join(dir, "data"), "-l", filepath.Join(dir, "postgres.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.port, dir),
		"start")
	return c
}

func (c *pgCluster) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// restart stops the cluster (fast: sessions are cut) and starts it again
// with the same options; it returns when it accepts connections.
func (c *pgCluster) restart() {
	c.t.Helper()
	// -l again: without it the new postmaster writes to pg_ctl's output,
	// which it then holds open.
	c.run("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "postgres.log"), "-m", "fast", "-w", "-t", "60", "restart")
}

// proc is a program the test runs, its output in a file.
type proc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
}

func (p *proc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Should the test binary die (a timeout), the program goes with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	f.Close()
}

func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	p.cmd = nil
}

// tail is the end of the program's output, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// hookReceiver is the owners' webhook receiver: each owner's events arrive
// on /hooks/<owner index>; it answers after receiverDelay.
type failoverReceiver struct {
	srv *http.Server
	url string

	mu  sync.Mutex
	got map[string][]failoverDelivery
}

type failoverDelivery struct {
	key string
	ev  api.AlertEvent
}

func newFailoverReceiver(t *testing.T) *failoverReceiver {
	r := &failoverReceiver{got: map[string][]failoverDelivery{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/{owner}", func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		time.Sleep(receiverDelay)
		var ev api.AlertEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		r.mu.Lock()
		r.got[req.PathValue("owner")] = append(r.got[req.PathValue("owner")], failoverDelivery{key: req.Header.Get(api.AlertIdempotencyHeader), ev: ev})
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	r.srv = &http.Server{Handler: mux}
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// unique returns an owner's test events in the order they first arrived,
// skipping repeats by idempotency key, and how many repeats there were.
func (r *failoverReceiver) unique(owner string) ([]api.AlertEvent, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []api.AlertEvent
	repeats := 0
	for _, d := range r.got[owner] {
		if d.ev.Kind != api.AlertTest {
			continue
		}
		if seen[d.key] {
			repeats++
			continue
		}
		seen[d.key] = true
		out = append(out, d.ev)
	}
	return out, repeats
}

func (r *failoverReceiver) keysMatch() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for o, ds := range r.got {
		for _, d := range ds {
			if d.key == "" || d.key != d.ev.ID {
				return fmt.Errorf("owner %s: Idempotency-Key %q for event %q", o, d.key, d.ev.ID)
			}
		}
	}
	return nil
}

// failoverClient is the test's HTTP client of the replicas.
var failoverClient = &http.Client{Timeout: 5 * time.Second}

func doJSON(base, method, path, token string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := failoverClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return res.StatusCode, err
		}
	}
	return res.StatusCode, nil
}

func mustJSON(t *testing.T, base, method, path, token string, in, out any, want int) {
	t.Helper()
	st, err := doJSON(base, method, path, token, in, out)
	if err != nil || st != want {
		t.Fatalf("%s %s%s: %d, %v; want %d", method, base, path, st, err, want)
	}
}

// metric reads one unlabelled metric of a replica ("" when it cannot).
func metric(base, name string) string {
	res, err := failoverClient.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	return ""
}

// peersOf reads the public keys an agent's fake device holds.
func peersOf(file string) map[string]bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, k := range strings.Fields(string(b)) {
		out[k] = true
	}
	return out
}

func waitUntil(t *testing.T, what string, bound time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > bound {
			t.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func newPublicKey(t *testing.T) string {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().String()
}

// TestFailover: see the comment at the top of the file. It states and
// logs its measurements (failover, LISTEN's return, PostgreSQL's restart,
// repeats the receiver saw); README's replica section quotes them.
func TestFailover(t *testing.T) {
	pgUser := requireFailover(t)
	dir := t.TempDir()

	// The binaries, built as a user would.
	serverBin, agentBin := filepath.Join(dir, "traceless-server"), filepath.Join(dir, "traceless-agent")
	var wg sync.WaitGroup
	var buildErr [2]error
	var buildOut [2][]byte
	for i, b := range [][]string{
		{"build", "-o", serverBin, "github.com/traceless-vpn/traceless/cmd/traceless-server"},
		{"build", "-tags", "traceless_fakewg", "-o", agentBin, "github.com/traceless-vpn/traceless/cmd/traceless-agent"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buildOut[i], buildErr[i] = exec.Command("go", b...).CombinedOutput()
		}()
	}
	pg := startPostgres(t, pgUser)
	wg.Wait()
	for i := range buildErr {
		if buildErr[i] != nil {
			t.Fatalf("go build: %v\n%s", buildErr[i], buildOut[i])
		}
	}

	// Shared keys, as README asks of replicas.
	key := make([]byte, 32)
	for _, f := range []string{"session.key", "secret.key"} {
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const adminEmail, adminPassword = "op@failover.example", "failover operator secret"
	replicas := make([]*proc, 3)
	urls := make([]string, 3)
	for i := range replicas {
		port := freePort(t)
		urls[i] = fmt.Sprintf("http://127.0.0.1:%d", port)
		replicas[i] = &proc{t: t, name: fmt.Sprintf("replica %d", i), bin: serverBin, log: filepath.Join(dir, fmt.Sprintf("replica%d.log", i)),
			args: []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--db", pg.dsn(),
				"--session-key-file", filepath.Join(dir, "session.key"), "--secret-key-file", filepath.Join(dir, "secret.key"),
				"--admin-email", adminEmail, "--admin-password", adminPassword,
				"--alert-allow-private-targets", "--key-rate", "-1"}}
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			r.kill()
		}
	})
	ready := func(i int, bound time.Duration) {
		t.Helper()
		start := time.Now()
		for {
			res, err := failoverClient.Get(urls[i] + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return
				}
			}
			if time.Since(start) > bound || (replicas[i].cmd != nil && replicas[i].cmd.ProcessState != nil) {
				t.Fatalf("%s not ready within %v:\n%s", replicas[i].name, bound, replicas[i].tail())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// All three start together with the operator's credentials (README's
	// advice): each must come up.
	for _, r := range replicas {
		r.start()
	}
	for i := range replicas {
		ready(i, 30*time.Second)
	}

	// The world: a pool granted by "pro", three owners on it with an app,
	// a key and a webhook each, two enrollment tokens.
	var admin api.AuthResponse
	mustJSON(t, urls[0], "POST", "/api/v1/auth/login", "", api.Credentials{Email: adminEmail, Password: adminPassword}, &admin, 200)
	var pool api.Pool
	mustJSON(t, urls[0], "POST", "/api/v1/admin/pools", admin.Token, api.PoolInput{Name: "failover", Region: "test", Country: "DE", City: "Berlin"}, &pool, 201)
	var plans api.PlanList
	mustJSON(t, urls[0], "GET", "/api/v1/admin/plans", admin.Token, nil, &plans, 200)
	var pro api.Plan
	for _, p := range plans.Plans {
		if p.Slug == "pro" {
			pro = p
		}
	}
	mustJSON(t, urls[1], "PUT", "/api/v1/admin/plans/"+pro.ID, admin.Token, api.PlanInput{Slug: "pro", Name: pro.Name, MaxApps: pro.MaxApps,
		MaxDevices: pro.MaxDevices, MaxOwnNodes: pro.MaxOwnNodes, PriceCents: pro.PriceCents, Currency: pro.Currency, Pools: []string{pool.ID}}, nil, 200)
	recv := newFailoverReceiver(t)
	const owners = 3
	ownerTok := make([]string, owners)
	var apiKey string
	for i := range owners {
		base := urls[i%3]
		var o api.AuthResponse
		mustJSON(t, base, "POST", "/api/v1/auth/signup", "", api.Credentials{Email: fmt.Sprintf("owner%d@failover.example", i), Password: "failover owner secret"}, &o, 201)
		ownerTok[i] = o.Token
		mustJSON(t, base, "PUT", "/api/v1/me/plan", o.Token, api.PlanChange{Plan: "pro"}, nil, 200)
		hook := fmt.Sprintf("%s/hooks/%d", recv.url, i)
		mustJSON(t, base, "PUT", "/api/v1/alerts/settings", o.Token, api.AlertSettingsInput{WebhookURL: &hook, Events: &[]string{}}, nil, 200)
		if i == 0 {
			var app api.App
			mustJSON(t, base, "POST", "/api/v1/apps", o.Token, api.AppInput{Name: "failover"}, &app, 201)
			var k api.APIKeyCreated
			mustJSON(t, base, "POST", "/api/v1/apps/"+app.ID+"/keys", o.Token, api.APIKeyInput{Name: "failover"}, &k, 201)
			apiKey = k.Key
		}
	}

	// Which replica leads alerts: it is killed, and so is another, the
	// one the agents poll (the first URL of their --server).
	var leader int
	waitUntil(t, "one replica leading alerts", 10*time.Second, func() bool {
		n := 0
		for i := range urls {
			if metric(urls[i], "traceless_alerts_leader") == "1" {
				leader, n = i, n+1
			}
		}
		return n == 1
	})
	polled, survivor := (leader+1)%3, (leader+2)%3
	t.Logf("replica %d leads alerts; the agents poll replica %d; replica %d survives", leader, polled, survivor)

	agents := make([]*proc, 2)
	peerFiles := make([]string, 2)
	for i := range agents {
		var et api.EnrollmentToken
		mustJSON(t, urls[0], "POST", "/api/v1/admin/pools/"+pool.ID+"/enrollment-tokens", admin.Token, nil, &et, 201)
		adir := filepath.Join(dir, fmt.Sprintf("agent%d", i))
		if err := os.MkdirAll(adir, 0o700); err != nil {
			t.Fatal(err)
		}
		peerFiles[i] = filepath.Join(adir, "peers")
		agents[i] = &proc{t: t, name: fmt.Sprintf("agent %d", i), bin: agentBin, log: filepath.Join(adir, "agent.log"),
			args: []string{"--server", strings.Join([]string{urls[polled], urls[survivor], urls[leader]}, ","),
				"--credential-file", filepath.Join(adir, "credential.json"), "--name", fmt.Sprintf("node%d", i),
				"--endpoint", fmt.Sprintf("192.0.2.%d:51820", 10+i), "--interface", fmt.Sprintf("tlf%d", i),
				"--metrics-listen=", "--harden=false", "--log-level", "debug"},
			env: []string{"TRACELESS_AGENT_ENROLL_TOKEN=" + et.Token, "TRACELESS_AGENT_FAKE_PEERS=" + peerFiles[i]}}
		agents[i].start()
	}
	t.Cleanup(func() {
		for _, a := range agents {
			a.kill()
		}
		if t.Failed() { // the logs go with the temporary directory
			for _, p := range append(slices.Clone(replicas), agents...) {
				t.Logf("%s's log ends:\n%s", p.name, p.tail())
			}
		}
	})
	for i := range agents {
		start := time.Now()
		for peersOf(peerFiles[i]) == nil {
			if time.Since(start) > 20*time.Second {
				t.Fatalf("%s not syncing within 20s:\n%s", agents[i].name, agents[i].tail())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	onBoth := func(k string) bool { return peersOf(peerFiles[0])[k] && peersOf(peerFiles[1])[k] }

	// The registration burst: two workers register devices on the three
	// replicas in turn until told to stop, keeping every key that got a 2xx.
	var regMu sync.Mutex
	var registered []string
	var attempts, refused int
	stop := make(chan struct{})
	var burst sync.WaitGroup
	for w := range 2 {
		burst.Add(1)
		go func() {
			defer burst.Done()
			for n := w; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				k := newPublicKey(t)
				st, err := doJSON(urls[n%3], "POST", "/api/v1/devices", apiKey, api.DeviceInput{PublicKey: k}, nil)
				regMu.Lock()
				attempts++
				if err == nil && st >= 200 && st < 300 {
					registered = append(registered, k)
				} else {
					refused++
					time.Sleep(10 * time.Millisecond) // a dead replica answers at once
				}
				regMu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)

	// Alerts queued: each owner sends test events through the replicas;
	// the receiver's slowness keeps most of them waiting in the outbox.
	const perOwner = 4
	for n := range perOwner {
		for i := range owners {
			var res api.AlertTestResult
			mustJSON(t, urls[(i+n)%3], "POST", "/api/v1/alerts/test", ownerTok[i], nil, &res, 202)
		}
	}
	time.Sleep(receiverDelay)

	// SIGKILL the leader and the polled replica.
	killed := time.Now()
	replicas[leader].kill()
	replicas[polled].kill()
	probe := newPublicKey(t)
	mustJSON(t, urls[survivor], "POST", "/api/v1/devices", apiKey, api.DeviceInput{PublicKey: probe}, nil, 201)
	probed := time.Since(killed)
	waitUntil(t, "a device registered on the survivor reaching both nodes after the kill", failoverBound, func() bool { return onBoth(probe) })
	failover := time.Since(killed)
	regMu.Lock()
	registered = append(registered, probe)
	regMu.Unlock()
	waitUntil(t, "the survivor leading alerts", 10*time.Second, func() bool { return metric(urls[survivor], "traceless_alerts_leader") == "1" })
	leaderMoved := time.Since(killed)
	t.Logf("failover: after the SIGKILLs, a device registered on the survivor at +%v was on both nodes at +%v (bound %v); the survivor led alerts at +%v",
		probed.Round(time.Millisecond), failover.Round(time.Millisecond), failoverBound, leaderMoved.Round(time.Millisecond))

	// A supervisor starts them again.
	replicas[leader].start()
	replicas[polled].start()
	ready(leader, 30*time.Second)
	ready(polled, 30*time.Second)
	time.Sleep(500 * time.Millisecond)

	// PostgreSQL restarts once.
	before := make([]int, 3)
	for i := range urls {
		before[i], _ = strconv.Atoi(metric(urls[i], "traceless_sync_listen_reconnects_total"))
	}
	pgStart := time.Now()
	pg.restart()
	pgDown := time.Since(pgStart)
	pgUp := time.Now()
	var listenBack [3]time.Duration
	for i := range urls {
		waitUntil(t, fmt.Sprintf("replica %d's LISTEN back after the PostgreSQL restart", i), listenBound, func() bool {
			n, _ := strconv.Atoi(metric(urls[i], "traceless_sync_listen_reconnects_total"))
			if n > before[i] && metric(urls[i], "traceless_sync_listen_up") == "1" {
				listenBack[i] = time.Since(pgUp)
				return true
			}
			return false
		})
	}
	afterPG := newPublicKey(t)
	var st int
	waitUntil(t, "a registration accepted after the PostgreSQL restart", 10*time.Second, func() bool {
		st, _ = doJSON(urls[survivor], "POST", "/api/v1/devices", apiKey, api.DeviceInput{PublicKey: afterPG}, nil)
		return st == http.StatusCreated
	})
	regAt := time.Since(pgUp)
	waitUntil(t, "a device registered after the PostgreSQL restart reaching both nodes", restartBound, func() bool { return onBoth(afterPG) })
	onBothAt := time.Since(pgUp)
	regMu.Lock()
	registered = append(registered, afterPG)
	regMu.Unlock()
	for i := range listenBack {
		listenBack[i] = listenBack[i].Round(time.Millisecond)
	}
	t.Logf("PostgreSQL restart: pg_ctl restart took %v; after PostgreSQL answered, LISTEN was back on the replicas at +%v (bound %v); "+
		"a device registered at +%v was on both nodes at +%v (bound %v)", pgDown.Round(time.Millisecond), listenBack, listenBound,
		regAt.Round(time.Millisecond), onBothAt.Round(time.Millisecond), restartBound)

	time.Sleep(time.Second)
	close(stop)
	burst.Wait()

	// Every registration that got a 2xx is on both nodes.
	regMu.Lock()
	regs := slices.Clone(registered)
	regMu.Unlock()
	settled := waitUntil(t, "every 2xx registration on both nodes", settleBound, func() bool {
		p0, p1 := peersOf(peerFiles[0]), peersOf(peerFiles[1])
		for _, k := range regs {
			if !p0[k] || !p1[k] {
				return false
			}
		}
		return true
	})
	t.Logf("registrations: %d attempts, %d got a 2xx, %d did not (dead replica, PostgreSQL restarting); all %d on both nodes %v after the burst",
		attempts, len(regs), refused, len(regs), settled)

	// Every alert arrived, at least once, in order per owner after
	// skipping repeats by idempotency key.
	repeats := 0
	waitUntil(t, "every alert at the receiver", settleBound, func() bool {
		for i := range owners {
			if evs, _ := recv.unique(strconv.Itoa(i)); len(evs) < perOwner {
				return false
			}
		}
		return true
	})
	for i := range owners {
		evs, rep := recv.unique(strconv.Itoa(i))
		repeats += rep
		if len(evs) != perOwner {
			t.Errorf("owner %d: %d distinct alerts, want %d", i, len(evs), perOwner)
		}
		for j := 1; j < len(evs); j++ {
			if evs[j].OccurredAt.Before(evs[j-1].OccurredAt) {
				t.Errorf("owner %d: alert %s (%v) arrived after %s (%v), out of order", i, evs[j].ID, evs[j].OccurredAt, evs[j-1].ID, evs[j-1].OccurredAt)
			}
		}
	}
	if err := recv.keysMatch(); err != nil {
		t.Error(err)
	}
	t.Logf("alerts: %d events for %d owners all arrived in order; the receiver saw %d repeats (skipped by idempotency key)", owners*perOwner, owners, repeats)

	// The outbox is empty: delivered rows are deleted.
	waitUntil(t, "the alert outbox empty", 10*time.Second, func() bool {
		for i := range owners {
			var set api.AlertSettings
			if st, err := doJSON(urls[i%3], "GET", "/api/v1/alerts/settings", ownerTok[i], nil, &set); err != nil || st != 200 {
				return false
			}
			for _, d := range set.Delivery {
				if d.Pending != 0 {
					return false
				}
			}
		}
		return true
	})

	// Sign-in tokens issued before the kills work on every replica.
	for i := range urls {
		mustJSON(t, urls[i], "GET", "/api/v1/admin/nodes", admin.Token, nil, nil, 200)
		for o := range owners {
			mustJSON(t, urls[i], "GET", "/api/v1/me", ownerTok[o], nil, nil, 200)
		}
	}
	// One leader again.
	waitUntil(t, "exactly one replica leading alerts", 10*time.Second, func() bool {
		n := 0
		for i := range urls {
			if metric(urls[i], "traceless_alerts_leader") == "1" {
				n++
			}
		}
		return n == 1
	})
}
