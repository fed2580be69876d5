package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent"
	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// benchHost is a machine the agents may not touch: sysctl writes and
// firewall rules go nowhere, so a benchmark changes nothing on the host.
func benchHost() agent.Host {
	return agent.Host{
		WriteFile: func(string, []byte) error { return nil },
		LookPath:  func(string) (string, error) { return "", errors.New("not looked up in benchmarks") },
		Run: func(context.Context, string, ...string) ([]byte, error) {
			return nil, errors.New("not run in benchmarks")
		},
		Firewall: noFirewall{},
	}
}

type noFirewall struct{}

func (noFirewall) Apply(agent.FirewallRules) error { return nil }
func (noFirewall) LogRules() (int, error)          { return 0, nil }

func agentLogger(verbose bool) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// fakeNode is one in-process agent on the fake WireGuard backend.
type fakeNode struct {
	dev *wg.Fake
}

func (n *fakeNode) has(pub wgtypes.Key) bool { return n.dev.HasPeer("tl0", pub) }

// runPropagation measures the time from a registration's response to the
// peer being applied on every one of N agents.
func runPropagation(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("propagation", flag.ContinueOnError)
	agents := fs.Int("agents", 50, "agents (fake WireGuard backend, in process)")
	regs := fs.Int("registrations", 200, "registrations to time, one after another")
	seed := fs.Int("devices", 0, "devices in the pool before the agents start (seeded through the store)")
	verbose := fs.Bool("v", false, "print the agents' logs (aggregates only) to standard error")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the measured phase to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := newBench(ctx)
	if err != nil {
		return err
	}
	defer b.close()
	c := &http.Client{Timeout: 30 * time.Second}
	admin, pool, err := b.sharedPool(ctx)
	if err != nil {
		return err
	}
	if *seed > 0 {
		if err := b.seed(ctx, *seed); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wgRun sync.WaitGroup
	nodes := make([]*fakeNode, *agents)
	for i := range nodes {
		var et api.EnrollmentToken
		if err := call(ctx, c, "POST", b.url+"/api/v1/admin/pools/"+pool+"/enrollment-tokens", admin, nil, &et); err != nil {
			return err
		}
		n := &fakeNode{dev: wg.NewFake()}
		nodes[i] = n
		links := wg.NewFakeLinks(true)
		a, err := agent.New(agent.Options{
			Servers: []string{b.url}, EnrollToken: et.Token,
			CredentialFile: filepath.Join(b.dir, fmt.Sprintf("agent-%d", i), "credential.json"),
			Name:           fmt.Sprintf("bench-%d", i), NodeEndpoint: fmt.Sprintf("192.0.2.%d:51820", i%250+1), ListenPort: 51820,
			Open:   func() (*wg.Interface, error) { return wg.NewFakeInterface("tl0", n.dev, links), nil },
			Host:   benchHost(),
			Logger: agentLogger(*verbose),
		})
		if err != nil {
			return err
		}
		wgRun.Add(1)
		go func() { defer wgRun.Done(); a.Run(ctx) }()
	}
	defer wgRun.Wait()
	defer cancel()
	if err := b.waitOnline(ctx, admin, *agents); err != nil {
		return err
	}
	if *seed > 0 {
		t0 := time.Now()
		for _, n := range nodes {
			for n.dev.PeerCount("tl0") < *seed {
				if time.Since(t0) > 10*time.Minute {
					return errors.New("agents did not apply the seeded pool within 10 minutes")
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		fmt.Printf("every agent holds the %d seeded devices (%v after coming online)\n", *seed, time.Since(t0).Round(time.Millisecond))
	}
	fmt.Printf("%d agents enrolled and online (fake WireGuard backend, in process, long-polling over loopback HTTP), load %s\n", *agents, loadAvg())

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var regLat, prop []time.Duration
	for i := 0; i < *regs; i++ {
		k, _ := wgtypes.GeneratePrivateKey()
		pub := k.PublicKey()
		t0 := time.Now()
		if err := call(ctx, c, "POST", b.url+"/api/v1/devices", b.key, api.DeviceInput{PublicKey: pub.String()}, nil); err != nil {
			return err
		}
		answered := time.Now()
		regLat = append(regLat, answered.Sub(t0))
		pending := append([]*fakeNode(nil), nodes...)
		deadline := answered.Add(30 * time.Second)
		for len(pending) > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("registration %d: %d agents did not apply the peer within 30 s", i, len(pending))
			}
			kept := pending[:0]
			for _, n := range pending {
				if !n.has(pub) {
					kept = append(kept, n)
				}
			}
			pending = kept
			if len(pending) > 0 {
				time.Sleep(500 * time.Microsecond)
			}
		}
		prop = append(prop, time.Since(answered))
	}
	sort.Slice(regLat, func(i, j int) bool { return regLat[i] < regLat[j] })
	sort.Slice(prop, func(i, j int) bool { return prop[i] < prop[j] })
	q := func(d []time.Duration, p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	fmt.Printf("registration request (baseline)       p50 %7.2f ms  p99 %7.2f ms\n", ms(q(regLat, .5)), ms(q(regLat, .99)))
	fmt.Printf("response -> applied on all %d agents  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%d registrations)\n",
		*agents, ms(q(prop, .5)), ms(q(prop, .99)), ms(prop[len(prop)-1]), len(prop))
	fmt.Printf("p99 propagation = %.1f x the p99 registration request; pool of %d devices; load %s\n",
		float64(q(prop, .99))/float64(q(regLat, .99)), *seed+*regs, loadAvg())
	return nil
}

// sharedPool makes a shared pool granted by the bench plan and returns an
// operator token and the pool ID.
func (b *bench) sharedPool(ctx context.Context) (string, string, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	var admin api.AuthResponse
	if err := call(ctx, c, "POST", b.url+"/api/v1/auth/login", "", api.Credentials{Email: "op@bench.invalid", Password: "load test operator pass"}, &admin); err != nil {
		return "", "", err
	}
	var pool api.Pool
	if err := call(ctx, c, "POST", b.url+"/api/v1/admin/pools", admin.Token, api.PoolInput{Name: "bench", Region: "bench", Country: "DE", City: "Berlin"}, &pool); err != nil {
		return "", "", err
	}
	var plans api.PlanList
	if err := call(ctx, c, "GET", b.url+"/api/v1/admin/plans", admin.Token, nil, &plans); err != nil {
		return "", "", err
	}
	for _, p := range plans.Plans {
		if p.Slug == "bench" {
			in := api.PlanInput{Slug: p.Slug, Name: p.Name, MaxApps: p.MaxApps, MaxDevices: p.MaxDevices, Currency: p.Currency, Pools: []string{pool.ID}}
			if err := call(ctx, c, "PUT", b.url+"/api/v1/admin/plans/"+p.ID, admin.Token, in, nil); err != nil {
				return "", "", err
			}
		}
	}
	return admin.Token, pool.ID, nil
}

// sharedPoolExisting returns an operator token and the pool made by
// enrollNode or sharedPool.
func (b *bench) sharedPoolExisting(ctx context.Context) (string, string, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	var admin api.AuthResponse
	if err := call(ctx, c, "POST", b.url+"/api/v1/auth/login", "", api.Credentials{Email: "op@bench.invalid", Password: "load test operator pass"}, &admin); err != nil {
		return "", "", err
	}
	var pools api.PoolList
	if err := call(ctx, c, "GET", b.url+"/api/v1/admin/pools", admin.Token, nil, &pools); err != nil {
		return "", "", err
	}
	if len(pools.Pools) == 0 {
		return "", "", errors.New("no pool yet")
	}
	return admin.Token, pools.Pools[0].ID, nil
}

// waitOnline waits until n nodes report themselves online.
func (b *bench) waitOnline(ctx context.Context, admin string, n int) error {
	c := &http.Client{Timeout: 30 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var nodes api.NodeList
		if err := call(ctx, c, "GET", b.url+"/api/v1/admin/nodes", admin, nil, &nodes); err != nil {
			return err
		}
		online := 0
		for _, nd := range nodes.Nodes {
			if nd.Online {
				online++
			}
		}
		if online == n {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("agents did not all come online within 60 s")
}
