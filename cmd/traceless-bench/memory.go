package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// memStats is the process's memory after a GC.
type memStats struct {
	heapInuse, sys uint64
	rss            string
}

func measureMem() memStats {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memStats{heapInuse: m.HeapInuse, sys: m.Sys, rss: vmRSS()}
}

// loadAvg is the system's load average (1, 5 and 15 minutes).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

func vmRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "n/a"
}

func (m memStats) String() string {
	return fmt.Sprintf("heap in use %6.1f MiB   Go runtime total %6.1f MiB   process RSS %s",
		float64(m.heapInuse)/(1<<20), float64(m.sys)/(1<<20), m.rss)
}

// runMemory reports the server's memory with an empty store and with N
// devices, after the same short mixed workload in both states.
func runMemory(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	devices := fs.Int("devices", 1_000_000, "devices in the store")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := newBench(ctx)
	if err != nil {
		return err
	}
	defer b.close()
	work := func() {
		load(ctx, "", 8, 2*time.Second, func(ctx context.Context) *http.Request {
			req, _ := http.NewRequestWithContext(ctx, "POST", b.url+"/api/v1/devices", strings.NewReader(`{"public_key":"`+randomKey()+`"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+b.key)
			return req
		}, http.StatusCreated)
		load(ctx, "", 8, 2*time.Second, func(ctx context.Context) *http.Request {
			req, _ := http.NewRequestWithContext(ctx, "GET", b.url+"/api/v1/devices?limit=500", nil)
			req.Header.Set("Authorization", "Bearer "+b.key)
			return req
		}, http.StatusOK)
	}
	work()
	empty := measureMem()
	fmt.Printf("empty store:       %v\n", empty)
	if err := b.seed(ctx, *devices); err != nil {
		return err
	}
	work()
	full := measureMem()
	fmt.Printf("%d devices: %v\n", *devices, full)
	if fi, err := os.Stat(b.st.Path()); err == nil {
		fmt.Printf("database file: %.1f MiB (%.0f bytes per device)\n", float64(fi.Size())/(1<<20), float64(fi.Size())/float64(*devices))
	}
	fmt.Printf("heap ratio full/empty = %.2f (the server keeps no per-device state in memory)\n",
		float64(full.heapInuse)/float64(empty.heapInuse))
	return nil
}
