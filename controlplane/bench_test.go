//go:build unix

package controlplane_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/store"
)

// The benchmarks below are the figures in BENCHMARKS.md:
//
//	go test ./controlplane -run '^$' -bench . -benchmem -benchtime 3s -count 6
//
// Signup and login go through the real handler over a loopback HTTP
// server with a fresh SQLite store. Each request carries an
// X-Forwarded-For address in a /64 of its own from 2001:db8::/32
// (documentation space, never dialled), and the loopback proxy is trusted,
// so the per-address rate limits never trigger; login spreads its requests
// over enough accounts that the per-email limit never triggers either.

// cpuClock measures the CPU time (user + system, every thread of the
// process: client, server and GC) that b's timed loop uses. On a shared
// machine wall time per operation moves with the neighbours' load; CPU
// time per operation moves much less, so BENCHMARKS.md quotes both.
type cpuClock struct{ start time.Duration }

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU resets b's timer and starts the CPU clock.
func startCPU(b *testing.B) *cpuClock {
	b.ResetTimer()
	return &cpuClock{start: processCPU(b)}
}

// report adds cpu-ns/op and rate (per second of wall time, under unit).
func (c *cpuClock) report(b *testing.B, unit string) {
	cpu := processCPU(b) - c.start
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// benchPassword passes the password policy.
const benchPassword = "correct horse battery staple"

// benchCheapArgon2 is the smallest argon2id cost, to show the HTTP and
// database overhead of a login without the deliberate cost of the hash.
var benchCheapArgon2 = controlplane.Argon2Params{Memory: 8, Time: 1, Threads: 1}

// benchServer is a control plane on a fresh SQLite store behind a loopback
// HTTP server.
type benchServer struct {
	st     *store.Store
	url    string
	client *http.Client
	seq    atomic.Uint64 // numbers forwarded-for addresses and emails
}

func newBenchServer(b *testing.B, p controlplane.Argon2Params) *benchServer {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatalf("store.Open: %v", err)
	}
	b.Cleanup(func() { st.Close() })
	_, loop4, _ := net.ParseCIDR("127.0.0.0/8")
	_, loop6, _ := net.ParseCIDR("::1/128")
	srv, err := controlplane.New(controlplane.Options{
		Store:          st,
		Argon2:         p,
		TrustedProxies: []*net.IPNet{loop4, loop6},
		KeyRate:        -1, // the registration benchmarks use one API key
	})
	if err != nil {
		b.Fatalf("controlplane.New: %v", err)
	}
	// Registered after the store's cleanup, so it runs before it.
	b.Cleanup(func() { srv.Close() })
	if _, err := srv.Bootstrap(ctx, "", "", "http://bench.invalid"); err != nil {
		b.Fatalf("Bootstrap: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	tr := hs.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConns = 64
	tr.MaxIdleConnsPerHost = 64
	client := &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchServer{st: st, url: hs.URL, client: client}
}

// post sends a JSON body from a fresh forwarded-for address and checks the
// status.
func (s *benchServer) post(path string, body any, want int) error {
	return s.call(http.MethodPost, path, "", body, want, nil)
}

// call sends a JSON body (with token as the bearer credential when set)
// from a fresh forwarded-for address, checks the status and decodes the
// answer into out when out is not nil.
func (s *benchServer) call(method, path, token string, body any, want int, out any) error {
	js, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(js))
	if err != nil {
		return err
	}
	n := s.seq.Add(1)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// A /64 of its own: rate limits key IPv6 addresses by their /64.
	req.Header.Set("X-Forwarded-For", fmt.Sprintf("2001:db8:%x:%x::1", n>>16, n&0xffff))
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, msg)
	}
	if out != nil {
		return json.Unmarshal(msg, out)
	}
	return nil
}

type benchCredentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// benchSignup measures POST /api/v1/auth/signup: validate, hash, insert,
// issue a token.
func benchSignup(b *testing.B, p controlplane.Argon2Params) {
	s := newBenchServer(b, p)
	var id atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(2)
	clock := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			email := fmt.Sprintf("signup-%d@bench.example.com", id.Add(1))
			if err := s.post("/api/v1/auth/signup", benchCredentials{email, benchPassword}, http.StatusCreated); err != nil {
				b.Error(err)
				return
			}
		}
	})
	clock.report(b, "signups/s")
}

// benchLogin measures POST /api/v1/auth/login for existing accounts:
// look up, verify, issue a token. One account is signed up over HTTP and
// its stored hash copied to the others, so preparing b.N logins costs one
// hash rather than one per account. Each account is used at most four
// times, under the per-email burst of five.
func benchLogin(b *testing.B, p controlplane.Argon2Params) {
	s := newBenchServer(b, p)
	ctx := context.Background()
	accounts := b.N/4 + 1
	emails := make([]string, accounts)
	emails[0] = "login-0@bench.example.com"
	if err := s.post("/api/v1/auth/signup", benchCredentials{emails[0], benchPassword}, http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	first, err := s.st.GetOwnerByEmail(ctx, emails[0])
	if err != nil {
		b.Fatalf("GetOwnerByEmail: %v", err)
	}
	for i := 1; i < accounts; i++ {
		emails[i] = fmt.Sprintf("login-%d@bench.example.com", i)
		o := store.Owner{Email: emails[i], PasswordHash: first.PasswordHash, Role: first.Role}
		if _, err := s.st.CreateOwner(ctx, o, ""); err != nil {
			b.Fatalf("CreateOwner: %v", err)
		}
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(2)
	clock := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			email := emails[int(next.Add(1)-1)%accounts]
			if err := s.post("/api/v1/auth/login", benchCredentials{email, benchPassword}, http.StatusOK); err != nil {
				b.Error(err)
				return
			}
		}
	})
	clock.report(b, "logins/s")
}

// BenchmarkSignup is signup throughput at the production password cost.
func BenchmarkSignup(b *testing.B) { benchSignup(b, controlplane.DefaultArgon2) }

// BenchmarkLogin is login throughput at the production password cost.
func BenchmarkLogin(b *testing.B) { benchLogin(b, controlplane.DefaultArgon2) }

// BenchmarkLoginCheapHash is login with the cheapest argon2id parameters:
// what HTTP, JSON, SQLite and token signing cost without the hash.
func BenchmarkLoginCheapHash(b *testing.B) { benchLogin(b, benchCheapArgon2) }

// BenchmarkArgon2Hash is one argon2id hash (or verification, which costs
// the same) at DefaultArgon2: the latency a login or signup cannot beat.
func BenchmarkArgon2Hash(b *testing.B) {
	p := controlplane.DefaultArgon2
	salt := make([]byte, 16)
	rand.Read(salt)
	pw := []byte(benchPassword)
	b.ReportAllocs()
	clock := startCPU(b)
	for b.Loop() {
		argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, 32)
	}
	clock.report(b, "hashes/s")
}

// BenchmarkArgon2HashParallel runs GOMAXPROCS hashes at once, as the
// server's hasher allows: the machine's hash throughput.
func BenchmarkArgon2HashParallel(b *testing.B) {
	p := controlplane.DefaultArgon2
	salt := make([]byte, 16)
	rand.Read(salt)
	pw := []byte(benchPassword)
	b.ReportAllocs()
	clock := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			argon2.IDKey(pw, salt, p.Time, p.Memory, p.Threads, 32)
		}
	})
	clock.report(b, "hashes/s")
}

// BenchmarkSHA256Password is the baseline a fast, unsuitable password hash
// would cost: one salted SHA-256.
func BenchmarkSHA256Password(b *testing.B) {
	buf := make([]byte, 16+len(benchPassword))
	rand.Read(buf[:16])
	copy(buf[16:], benchPassword)
	b.ReportAllocs()
	clock := startCPU(b)
	for b.Loop() {
		sha256.Sum256(buf)
	}
	clock.report(b, "hashes/s")
}

// benchApp signs up an owner on a plan allowing 100 million devices,
// creates an app and returns one of its secret keys.
func benchApp(b *testing.B, s *benchServer) string { return benchAppInfo(b, s).key }

// benchAppData is an app of benchAppInfo: its ID, a secret key and its
// owner's sign-in token.
type benchAppData struct{ id, key, token string }

// benchAppInfo signs up an owner on a plan allowing 100 million devices and
// creates an app with a secret key.
func benchAppInfo(b *testing.B, s *benchServer) benchAppData {
	b.Helper()
	ctx := context.Background()
	if err := s.post("/api/v1/auth/signup", benchCredentials{"first@bench.example.com", benchPassword}, http.StatusCreated); err != nil {
		b.Fatal(err)
	}
	first, err := s.st.GetOwnerByEmail(ctx, "first@bench.example.com")
	if err != nil {
		b.Fatalf("GetOwnerByEmail: %v", err)
	}
	plan := store.PlanWithPools{Plan: store.Plan{Slug: "bench", Name: "Bench", MaxApps: 10, MaxDevices: 100_000_000, Currency: "EUR"}}
	if _, err := s.st.CreatePlan(ctx, plan); err != nil {
		b.Fatalf("CreatePlan: %v", err)
	}
	o := store.Owner{Email: "bench@bench.example.com", PasswordHash: first.PasswordHash, Role: first.Role}
	if _, err := s.st.CreateOwner(ctx, o, "bench"); err != nil {
		b.Fatalf("CreateOwner: %v", err)
	}
	var auth struct{ Token string }
	if err := s.call(http.MethodPost, "/api/v1/auth/login", "", benchCredentials{o.Email, benchPassword}, http.StatusOK, &auth); err != nil {
		b.Fatal(err)
	}
	var app struct{ ID string }
	if err := s.call(http.MethodPost, "/api/v1/apps", auth.Token, map[string]string{"name": "bench"}, http.StatusCreated, &app); err != nil {
		b.Fatal(err)
	}
	var key struct{ Key string }
	if err := s.call(http.MethodPost, "/api/v1/apps/"+app.ID+"/keys", auth.Token, map[string]string{"name": "bench"}, http.StatusCreated, &key); err != nil {
		b.Fatal(err)
	}
	return benchAppData{id: app.ID, key: key.Key, token: auth.Token}
}

// benchKeys returns n random WireGuard public keys.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		var k [32]byte
		rand.Read(k[:])
		keys[i] = base64.StdEncoding.EncodeToString(k[:])
	}
	return keys
}

// BenchmarkRegisterDevice is POST /api/v1/devices from 32 concurrent
// clients (16 per core), so registrations are group-committed as under
// load: admission, address allocation, insert, commit and the change
// handed to node sync.
func BenchmarkRegisterDevice(b *testing.B) {
	s := newBenchServer(b, benchCheapArgon2)
	key := benchApp(b, s)
	keys := benchKeys(b.N)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	clock := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			pub := keys[next.Add(1)-1]
			if err := s.call(http.MethodPost, "/api/v1/devices", key, map[string]string{"public_key": pub}, http.StatusCreated, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	clock.report(b, "registrations/s")
}

// BenchmarkRotateDevice is POST /api/v1/devices/{id}/rotate, one client
// at a time over a pool of 1,000 devices: new key and addresses, the old
// key's removal handed to node sync.
func BenchmarkRotateDevice(b *testing.B) {
	s := newBenchServer(b, benchCheapArgon2)
	key := benchApp(b, s)
	ids := make([]string, 1000)
	for i, pub := range benchKeys(len(ids)) {
		var d struct{ ID string }
		if err := s.call(http.MethodPost, "/api/v1/devices", key, map[string]string{"public_key": pub}, http.StatusCreated, &d); err != nil {
			b.Fatal(err)
		}
		ids[i] = d.ID
	}
	keys := benchKeys(b.N)
	b.ReportAllocs()
	clock := startCPU(b)
	for i := 0; i < b.N; i++ {
		path := "/api/v1/devices/" + ids[i%len(ids)] + "/rotate"
		if err := s.call(http.MethodPost, path, key, map[string]string{"public_key": keys[i]}, http.StatusOK, nil); err != nil {
			b.Fatal(err)
		}
	}
	clock.report(b, "rotations/s")
}

// BenchmarkRegisterDeviceBy is BenchmarkRegisterDevice with each of the
// credentials that may register, in the same run, so their figures share
// the machine's conditions:
//
//	go test -c -o /tmp/cp.test ./controlplane && cd controlplane &&
//	for i in 1 2 3 4 5 6 7 8; do /tmp/cp.test -test.run '^$' -test.bench RegisterDeviceBy -test.benchtime 3s -test.benchmem; done
//
// (rounds of the three rather than -count, which would run each
// sub-benchmark's repetitions back to back, under different load).
// secret: the owner's secret key. publishable: a publishable key, under
// the app's hourly cap set to its maximum (so the cap's bookkeeping runs
// and never refuses). ticket: one registration ticket per registration,
// minted before the timer starts; the registration looks the ticket up and
// spends it in the transaction that admits the device. The per-key rate
// limit (Options.KeyRate, by default 50 requests/s per key with a burst
// of 201) is turned off, as in BenchmarkRegisterDevice: one key makes
// every registration here.
func BenchmarkRegisterDeviceBy(b *testing.B) {
	for _, kind := range []string{"secret", "publishable", "ticket"} {
		b.Run(kind, func(b *testing.B) { benchRegisterBy(b, kind) })
	}
}

func benchRegisterBy(b *testing.B, kind string) {
	s := newBenchServer(b, benchCheapArgon2)
	app := benchAppInfo(b, s)
	creds := make([]string, b.N) // the bearer of each registration
	switch kind {
	case "secret":
		for i := range creds {
			creds[i] = app.key
		}
	case "publishable":
		var pub struct{ Key string }
		if err := s.call(http.MethodPost, "/api/v1/apps/"+app.id+"/keys", app.token,
			map[string]string{"name": "shipped", "kind": "publishable"}, http.StatusCreated, &pub); err != nil {
			b.Fatal(err)
		}
		if err := s.call(http.MethodPut, "/api/v1/apps/"+app.id, app.token,
			map[string]int{"registration_cap": store.MaxRegistrationCap}, http.StatusOK, nil); err != nil {
			b.Fatal(err)
		}
		if b.N > store.MaxRegistrationCap {
			b.Fatalf("b.N %d exceeds the hourly cap", b.N)
		}
		for i := range creds {
			creds[i] = pub.Key
		}
	case "ticket":
		ctx := context.Background()
		exp := time.Now().Add(store.MaxTicketTTL)
		for i := range creds {
			var raw [32]byte
			rand.Read(raw[:])
			creds[i] = "tlt_" + base64.RawURLEncoding.EncodeToString(raw[:])
			sum := sha256.Sum256([]byte(creds[i]))
			if _, err := s.st.CreateTicket(ctx, store.RegistrationTicket{Hash: hex.EncodeToString(sum[:]), AppID: app.id, ExpiresAt: exp}); err != nil {
				b.Fatal(err)
			}
		}
		// Minting wrote b.N transactions to the WAL; fold them into the
		// database now, or the checkpoint lands in the timed loop.
		if err := s.st.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
	keys := benchKeys(b.N)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	clock := startCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if err := s.call(http.MethodPost, "/api/v1/devices", creds[i], map[string]string{"public_key": keys[i]}, http.StatusCreated, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	clock.report(b, "registrations/s")
}
