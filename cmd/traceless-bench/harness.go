package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// bench is a running control plane with one owner, one app and one key on
// a plan large enough for any run.
type bench struct {
	dir   string
	st    *store.Store
	srv   *http.Server
	url   string
	appID string
	key   string
}

func newBench(ctx context.Context) (*bench, error) {
	dir, err := os.MkdirTemp("", "traceless-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{dir: dir}
	b.st, err = store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(dir, "bench.db")})
	if err != nil {
		return nil, err
	}
	cp, err := controlplane.New(controlplane.Options{
		Store: b.st,
		// Password hashing is measured by the auth benchmarks; keep it out
		// of the provisioning figures.
		Argon2:      controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1},
		KeyRate:     -1,
		EnrollBurst: -1, // every agent of a benchmark enrolls from 127.0.0.1
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.url = "http://" + ln.Addr().String()
	b.srv = &http.Server{Handler: cp.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go b.srv.Serve(ln)
	if _, err := cp.Bootstrap(ctx, "op@bench.invalid", "load test operator pass", b.url); err != nil {
		return nil, err
	}
	return b, b.setup(ctx)
}

func (b *bench) setup(ctx context.Context) error {
	c := &http.Client{Timeout: 30 * time.Second}
	var admin api.AuthResponse
	if err := call(ctx, c, "POST", b.url+"/api/v1/auth/login", "", api.Credentials{Email: "op@bench.invalid", Password: "load test operator pass"}, &admin); err != nil {
		return fmt.Errorf("operator login: %w", err)
	}
	if err := call(ctx, c, "POST", b.url+"/api/v1/admin/plans", admin.Token, api.PlanInput{
		Slug: "bench", Name: "Bench", MaxApps: 10, MaxDevices: 100_000_000, Currency: "EUR"}, nil); err != nil {
		return fmt.Errorf("create plan: %w", err)
	}
	var owner api.AuthResponse
	if err := call(ctx, c, "POST", b.url+"/api/v1/auth/signup", "", api.Credentials{Email: "own@bench.invalid", Password: "load test owner pass"}, &owner); err != nil {
		return fmt.Errorf("signup: %w", err)
	}
	if err := call(ctx, c, "PUT", b.url+"/api/v1/admin/owners/"+owner.Owner.ID, admin.Token, map[string]string{"plan": "bench"}, nil); err != nil {
		return fmt.Errorf("assign plan: %w", err)
	}
	var app api.App
	if err := call(ctx, c, "POST", b.url+"/api/v1/apps", owner.Token, api.AppInput{Name: "bench"}, &app); err != nil {
		return fmt.Errorf("create app: %w", err)
	}
	var key api.APIKeyCreated
	if err := call(ctx, c, "POST", b.url+"/api/v1/apps/"+app.ID+"/keys", owner.Token, api.APIKeyInput{Name: "bench"}, &key); err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	b.appID, b.key = app.ID, key.Key
	return nil
}

// seed adds n devices straight through the store, so a run starts from a
// realistic database without waiting on HTTP, and says how long it took.
// seedWorkers registrations at a time keep the store's group commit full,
// as registration under load does.
func (b *bench) seed(ctx context.Context, n int) error {
	t0 := time.Now()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(n, seedWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && failed.Load() == nil {
				if _, err := b.st.RegisterDevice(ctx, b.appID, store.NewDevice{PublicKey: randomKey()}); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return fmt.Errorf("seed: %w", *err)
	}
	if err := b.st.Checkpoint(ctx); err != nil {
		return err
	}
	// The store hands the seed's commits to the server's change hub like
	// any other write, so nodes can sync from here on.
	fmt.Printf("seeded %d devices in %v\n", n, time.Since(t0).Round(time.Millisecond))
	return nil
}

// seedWorkers is how many registrations seed runs at once: twice the
// store's largest group commit.
const seedWorkers = 512

func (b *bench) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.srv.Shutdown(ctx)
	b.st.Close()
	os.RemoveAll(b.dir)
}

func randomKey() string {
	var k [32]byte
	rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// call does one JSON request and decodes a 2xx answer into out.
func call(ctx context.Context, c *http.Client, method, url, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
