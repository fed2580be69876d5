package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"time"

	"github.com/traceless-vpn/traceless/agent"
	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// enrollNode makes a pool granted by the bench plan and enrolls a node in
// it, returning a node token.
func (b *bench) enrollNode(ctx context.Context) (string, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	var admin api.AuthResponse
	if err := call(ctx, c, "POST", b.url+"/api/v1/auth/login", "", api.Credentials{Email: "op@bench.invalid", Password: "load test operator pass"}, &admin); err != nil {
		return "", err
	}
	var pool api.Pool
	if err := call(ctx, c, "POST", b.url+"/api/v1/admin/pools", admin.Token, api.PoolInput{Name: "bench", Region: "bench", Country: "DE", City: "Berlin"}, &pool); err != nil {
		return "", err
	}
	var plans api.PlanList
	if err := call(ctx, c, "GET", b.url+"/api/v1/admin/plans", admin.Token, nil, &plans); err != nil {
		return "", err
	}
	for _, p := range plans.Plans {
		if p.Slug != "bench" {
			continue
		}
		in := api.PlanInput{Slug: p.Slug, Name: p.Name, MaxApps: p.MaxApps, MaxDevices: p.MaxDevices, Currency: p.Currency, Pools: []string{pool.ID}}
		if err := call(ctx, c, "PUT", b.url+"/api/v1/admin/plans/"+p.ID, admin.Token, in, nil); err != nil {
			return "", err
		}
	}
	var et api.EnrollmentToken
	if err := call(ctx, c, "POST", b.url+"/api/v1/admin/pools/"+pool.ID+"/enrollment-tokens", admin.Token, nil, &et); err != nil {
		return "", err
	}
	var er api.EnrollResponse
	if err := call(ctx, c, "POST", b.url+"/agent/v1/enroll", "", api.EnrollRequest{Token: et.Token, Name: "bench", PublicKey: randomKey(), Endpoint: "192.0.2.1:51820"}, &er); err != nil {
		return "", err
	}
	var nt api.NodeToken
	if err := call(ctx, c, "POST", b.url+"/agent/v1/token", er.Credential, nil, &nt); err != nil {
		return "", err
	}
	return nt.Token, nil
}

// fetchSnapshot downloads a full snapshot and returns its size, the time
// to the last byte, and the number of peers decoded from it.
func fetchSnapshot(ctx context.Context, url, token string, binary bool) (int64, time.Duration, int64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/agent/v1/peers?full=true", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if binary {
		req.Header.Set("Accept", api.SnapshotMediaType)
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer res.Body.Close()
	cr := &countingReader{r: res.Body}
	var peers int64
	if binary {
		br := bufio.NewReaderSize(cr, 64<<10)
		h, err := api.ReadSnapshotHeader(br)
		if err != nil {
			return 0, 0, 0, err
		}
		rec := make([]byte, api.PeerRecordSize)
		for ; peers < h.Count; peers++ {
			if _, err := io.ReadFull(br, rec); err != nil {
				return 0, 0, 0, err
			}
			if _, err := api.ParsePeerRecord(rec); err != nil {
				return 0, 0, 0, err
			}
		}
	} else {
		var pr api.PeersResponse
		if err := jsonDecode(cr, &pr); err != nil {
			return 0, 0, 0, err
		}
		peers = int64(len(pr.Upserts))
	}
	io.Copy(io.Discard, cr)
	return cr.n, time.Since(start), peers, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// runSnapshot measures full snapshots of an N-device pool.
func runSnapshot(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	devices := fs.Int("devices", 1_000_000, "devices in the pool")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := newBench(ctx)
	if err != nil {
		return err
	}
	defer b.close()
	if err := b.seed(ctx, *devices); err != nil {
		return err
	}
	tok, err := b.enrollNode(ctx)
	if err != nil {
		return err
	}
	for _, binary := range []bool{true, false} {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		n, d, peers, err := fetchSnapshot(ctx, b.url, tok, binary)
		if err != nil {
			return err
		}
		if peers != int64(*devices) {
			return fmt.Errorf("snapshot has %d peers; the pool has %d (binary=%v)", peers, *devices, binary)
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		name := "JSON   "
		if binary {
			name = "binary "
		}
		fmt.Printf("%s snapshot: %7.1f MiB on the wire (%5.1f bytes/peer), %6.2f s to the last byte, %8.0f peers/s, %6.1f MiB allocated (server and client)\n",
			name, float64(n)/(1<<20), float64(n)/float64(peers), d.Seconds(), float64(peers)/d.Seconds(),
			float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	}
	return applySnapshot(ctx, b, *devices)
}

// applySnapshot enrolls one agent on the fake WireGuard backend and times
// its first sync — fetching and applying the whole pool — and the memory
// the agent holds for it.
func applySnapshot(ctx context.Context, b *bench, devices int) error {
	admin, pool, err := b.sharedPoolExisting(ctx)
	if err != nil {
		return err
	}
	c := &http.Client{Timeout: 30 * time.Second}
	var et api.EnrollmentToken
	if err := call(ctx, c, "POST", b.url+"/api/v1/admin/pools/"+pool+"/enrollment-tokens", admin, nil, &et); err != nil {
		return err
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	dev := wg.NewFake()
	links := wg.NewFakeLinks(true)
	a, err := agent.New(agent.Options{
		Servers: []string{b.url}, EnrollToken: et.Token, CredentialFile: filepath.Join(b.dir, "snapshot-agent", "credential.json"),
		Name: "snapshot", NodeEndpoint: "192.0.2.1:51820", ListenPort: 51820,
		Open: func() (*wg.Interface, error) { return wg.NewFakeInterface("tl0", dev, links), nil },
		Host: benchHost(),
	})
	if err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); a.Run(actx) }()
	defer func() { cancel(); <-done }()
	for dev.PeerCount("tl0") < devices {
		if time.Since(start) > 30*time.Minute {
			return errors.New("the agent did not apply the snapshot within 30 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	fmt.Printf("agent first sync: enrolled, fetched and applied %d peers in %.1f s (%.0f peers/s) to the fake device; load %s\n",
		devices, took.Seconds(), float64(devices)/took.Seconds(), loadAvg())
	fmt.Printf("process heap growth: %.1f MiB (%.0f bytes/peer): the agent's set, the fake device's copy of every peer and what the "+
		"in-process server still holds; the agent's own share is BenchmarkAgentHeap's (go test ./agent -bench AgentHeap)\n",
		float64(after.HeapInuse-before.HeapInuse)/(1<<20), float64(after.HeapInuse-before.HeapInuse)/float64(devices))
	return nil
}
