package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// result is one load phase's outcome.
type result struct {
	name      string
	ok, fails int64
	elapsed   time.Duration
	lat       []time.Duration
	cpu       time.Duration // user+system CPU of the whole process (server and clients)
}

// cpuTime is this process's user plus system CPU time so far, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r result) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func (r result) String() string {
	return fmt.Sprintf("%-28s %8d ok %5d failed  %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  CPU %5.3f ms/req",
		r.name, r.ok, r.fails, r.rate(), ms(r.pct(0.50)), ms(r.pct(0.99)), ms(r.pct(0.999)), r.cpuPerReq())
}

// cpuPerReq is the process's CPU milliseconds per successful request: the
// figure that does not depend on what else shares the machine.
func (r result) cpuPerReq() float64 {
	if r.ok == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / 1000 / float64(r.ok)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// load runs clients goroutines, each with its own keep-alive connection,
// issuing requests built by mk until duration passes.
func load(ctx context.Context, name string, clients int, duration time.Duration, mk func(ctx context.Context) *http.Request, want int) result {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var ok, fails atomic.Int64
	lats := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), cpuTime()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}, Timeout: 30 * time.Second}
			for ctx.Err() == nil {
				req := mk(ctx)
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						fails.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					fails.Add(1)
					continue
				}
				ok.Add(1)
				lats[i] = append(lats[i], time.Since(t0))
			}
		}(i)
	}
	wg.Wait()
	r := result{name: name, ok: ok.Load(), fails: fails.Load(), elapsed: time.Since(start), cpu: cpuTime() - cpu0}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	return r
}

func runRegister(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	devices := fs.Int("devices", 100_000, "devices already present before measuring")
	clients := fs.Int("clients", 32, "concurrent HTTP clients")
	duration := fs.Duration("duration", 20*time.Second, "length of each measured phase")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the registration phase to this file")
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
	fmt.Printf("%d clients, %v per phase, loopback HTTP/1.1 keep-alive, server and clients on the same machine; load %s\n", *clients, *duration, loadAvg())
	fmt.Printf("the per-key rate limit is off (one key makes every registration); its default is 50 requests/s per key, burst 4x\n\n")

	health := load(ctx, "baseline GET /healthz", *clients, *duration, func(ctx context.Context) *http.Request {
		req, _ := http.NewRequestWithContext(ctx, "GET", b.url+"/healthz", nil)
		return req
	}, http.StatusOK)
	fmt.Println(health)

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	reg := load(ctx, "POST /api/v1/devices", *clients, *duration, func(ctx context.Context) *http.Request {
		body := []byte(`{"public_key":"` + randomKey() + `"}`)
		req, _ := http.NewRequestWithContext(ctx, "POST", b.url+"/api/v1/devices", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+b.key)
		return req
	}, http.StatusCreated)
	fmt.Println(reg)
	fmt.Printf("\nregistration throughput = %.2f x the /healthz baseline; %d devices in the store at the end\n",
		reg.rate()/health.rate(), *devices+int(reg.ok))
	fmt.Printf("CPU per registration = %.2f x CPU per /healthz; %d cores sustain at most %.0f registrations/s on this CPU\n",
		reg.cpuPerReq()/health.cpuPerReq(), runtime.NumCPU(), float64(runtime.NumCPU())*1000/reg.cpuPerReq())
	return nil
}
