package agent

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Benchmarks of the scrubber on a real userspace device with 60,000
// peers (as root), each against the scrubber as it was before (a read of
// the whole device through wgctrl every tick, holding the device lock)
// in the same run. Each runs with the device held (a holder process, the
// agent's default; this test binary serves as the holder) and in this
// process. CPU is the process's (user + system, all threads, getrusage)
// plus the holder's (/proc, 10 ms resolution), so wireguard-go's work is
// counted in both placements. Run one at a time, with -benchtime 1x; the
// window defaults to 60 s:
//
//	TRACELESS_BENCH_WINDOW=300s go test ./agent -run '^$' -bench Idle60k -benchtime 1x -timeout 40m
//	TRACELESS_BENCH_WINDOW=120s go test ./agent -run '^$' -bench DeltaWhileScrubbing60k -benchtime 1x -timeout 60m

// cpuTime is the process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// numGC is the number of completed collections so far.
func numGC() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}

func benchWindow(b *testing.B) time.Duration {
	if s := os.Getenv("TRACELESS_BENCH_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	return time.Minute
}

func loadAvg() string {
	s, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return string(s[:len(s)-1])
}

// scrubBench is a device with 60,000 peers and an agent around it.
type scrubBench struct {
	bd *benchDevice
	a  *Agent
}

func newScrubBench(b *testing.B, suffix string, after, tick time.Duration, held bool) *scrubBench {
	bd := openBenchDevice(b, suffix, held)
	d := newDevice(bd.iface.Client, bd.name())
	d.limit = bd.iface.PeerLimit
	set := newSetBuilder(benchPeers)
	for _, p := range testPeers(0, benchPeers) {
		set.add(p)
	}
	if _, err := d.applyFull(set, 1); err != nil {
		b.Fatal(err)
	}
	opts := Options{Servers: []string{"http://127.0.0.1:9"}, ScrubAfter: after, ScrubTick: tick, AntiEntropyInterval: 5 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CredentialFile: "unused", Open: func() (*wg.Interface, error) { return nil, nil }}
	a, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	a.dev, a.iface = d, bd.iface
	return &scrubBench{bd: bd, a: a}
}

// runNew runs the scrub and anti-entropy loops for window.
func (s *scrubBench) runNew(ctx context.Context, window time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){s.a.scrubLoop, s.a.antiEntropyLoop} {
		wg.Add(1)
		go func() { defer wg.Done(); loop(ctx) }()
	}
	wg.Wait()
}

// runOld runs the scrubber as it was: every tick, a wgctrl read of the
// whole device under the device lock; and anti-entropy as it was.
func (s *scrubBench) runOld(ctx context.Context, window time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	raw := wg.NewControl(s.bd.raw)
	d := s.a.dev
	t := time.NewTicker(s.a.opts.ScrubTick)
	defer t.Stop()
	ae := time.NewTicker(s.a.opts.AntiEntropyInterval)
	defer ae.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.mu.Lock()
			raw.DeviceStale(d.name, time.Now(), s.a.opts.ScrubAfter)
			d.mu.Unlock()
		case <-ae.C:
			d.mu.Lock()
			if cur, err := raw.Device(d.name); err == nil {
				d.configure(reconcile(d.state.set, d.state.pending, cur, d.batch))
			}
			d.mu.Unlock()
		}
	}
}

// BenchmarkIdle60k: the agent's CPU with 60,000 peers and no client
// traffic, over the window, scrubbing and anti-entropy at production
// settings, against the old scrubber over the same window. Two
// placements of the device: held (a holder process, the agent's
// default; CPU of the agent's process and the holder's) and in-process
// (the device in the agent's process).
func BenchmarkIdle60k(b *testing.B) {
	for _, held := range []bool{true, false} {
		name := map[bool]string{true: "held", false: "in-process"}[held]
		b.Run(name, func(b *testing.B) { benchIdle(b, held) })
	}
}

func benchIdle(b *testing.B, held bool) {
	window := benchWindow(b)
	s := newScrubBench(b, map[bool]string{true: "ih", false: "ip"}[held], 180*time.Second, 5*time.Second, held)
	cpu := func() time.Duration { return cpuTime() + procCPU(b, s.bd.holder) }
	for b.Loop() {
		b.Logf("load before: %s", loadAvg())
		runtime.GC() // the setup's garbage is not the window's
		if !held {
			// What one collection of this process costs: it scans the
			// in-process wireguard-go device's per-peer state too.
			c0 := cpuTime()
			for range 3 {
				runtime.GC()
			}
			b.ReportMetric(float64((cpuTime()-c0).Milliseconds())/3, "gc-cycle-cpu-ms")
		} else {
			// Let the holder's collector catch up with the setup.
			time.Sleep(3 * time.Second)
		}
		r0 := metricValue(s.a.metrics.scrubReads)
		c0, n0, h0 := cpu(), numGC(), procCPU(b, s.bd.holder)
		s.runNew(context.Background(), window)
		newCPU, newGCs, newHolder := cpu()-c0, numGC()-n0, procCPU(b, s.bd.holder)-h0
		reads := metricValue(s.a.metrics.scrubReads) - r0
		runtime.GC()
		c0, n0, h0 = cpu(), numGC(), procCPU(b, s.bd.holder)
		s.runOld(context.Background(), window)
		oldCPU, oldGCs, oldHolder := cpu()-c0, numGC()-n0, procCPU(b, s.bd.holder)-h0
		b.Logf("collections of this process in the window: new %d, old %d", newGCs, oldGCs)
		if held {
			b.Logf("holder's CPU in the window: new %v, old %v", newHolder, oldHolder)
		}
		b.Logf("load after: %s", loadAvg())
		b.ReportMetric(100*newCPU.Seconds()/window.Seconds(), "idle-cpu-%")
		b.ReportMetric(100*oldCPU.Seconds()/window.Seconds(), "old-idle-cpu-%")
		b.ReportMetric(newCPU.Seconds()/oldCPU.Seconds(), "new/old")
		b.ReportMetric(reads, "scrub-reads")
		b.ReportMetric(window.Seconds(), "window-s")
	}
}

// BenchmarkDeltaWhileScrubbing60k: one-peer deltas scheduled every 15-35
// ms while the scrubber runs, wall time from each delta's scheduled
// arrival until it is applied: with the production
// threshold (an idle node: a read per threshold), with reads every tick
// (a busy node, where some peer is always about to turn stale; threshold
// set to the tick to force it), and with the old scrubber (every tick,
// under the device lock); and first with no scrubber at all, the floor
// of the machine's load at the time.
func BenchmarkDeltaWhileScrubbing60k(b *testing.B) {
	for _, held := range []bool{true, false} {
		name := map[bool]string{true: "held", false: "in-process"}[held]
		b.Run(name, func(b *testing.B) { benchDeltaWhileScrubbing(b, held) })
	}
}

func benchDeltaWhileScrubbing(b *testing.B, held bool) {
	window := benchWindow(b)
	s := newScrubBench(b, map[bool]string{true: "wh", false: "wp"}[held], 180*time.Second, 5*time.Second, held)
	extra := testPeer(benchPeers + 1)
	rev := int64(1)
	// Deltas arrive on a schedule fixed in advance (open loop): a delta
	// that waits behind a read also delays the ones scheduled during the
	// wait, and each one's latency counts from its scheduled arrival, as
	// a control plane's changes would.
	deltas := func(ctx context.Context) []time.Duration {
		var out []time.Duration
		next := time.Now()
		for ctx.Err() == nil {
			next = next.Add(15*time.Millisecond + rand.N(20*time.Millisecond))
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			rev++
			var err error
			if rev%2 == 0 {
				_, err = s.a.dev.applyDelta([]api.Peer{extra}, nil, rev)
			} else {
				_, err = s.a.dev.applyDelta(nil, []string{extra.PublicKey}, rev)
			}
			out = append(out, time.Since(next))
			if err != nil {
				b.Fatal(err)
			}
		}
		return out
	}
	run := func(name string, scrub func(context.Context, time.Duration)) {
		ctx, cancel := context.WithTimeout(context.Background(), window)
		defer cancel()
		done := make(chan struct{})
		go func() { scrub(ctx, window); close(done) }()
		lat := deltas(ctx)
		<-done
		slices.Sort(lat)
		q := func(p float64) float64 {
			return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
		}
		b.ReportMetric(q(.5), name+"-p50-ms")
		b.ReportMetric(q(.99), name+"-p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, name+"-max-ms")
		b.Logf("%s: %d deltas, p50 %.2f ms, p99 %.2f ms, max %.1f ms, load %s", name, len(lat), q(.5), q(.99),
			float64(lat[len(lat)-1].Microseconds())/1000, loadAvg())
	}
	for b.Loop() {
		// The floor: the same deltas with no scrubber, under the same
		// load, so what the scrubber adds shows beside it.
		run("none", func(ctx context.Context, _ time.Duration) { <-ctx.Done() })
		run("idle", s.runNew)
		reads := metricValue(s.a.metrics.scrubReads)
		s.a.opts.ScrubAfter = s.a.opts.ScrubTick
		run("busy", s.runNew)
		b.Logf("scrub reads: idle %v, busy %v", reads, metricValue(s.a.metrics.scrubReads)-reads)
		s.a.opts.ScrubAfter = 180 * time.Second
		run("old", s.runOld)
		// How long the reads themselves take (wall time, one after
		// another): a read of the stale peers alone, as the scrubber
		// makes, and a full read, as anti-entropy makes.
		timeRead := func(name string, n int, read func() error) {
			var lat []time.Duration
			for range n {
				t0 := time.Now()
				if err := read(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.Logf("%s: %d reads, median %v, max %v", name, n, lat[n/2], lat[n-1])
			b.ReportMetric(float64(lat[n/2].Microseconds())/1000, name+"-read-p50-ms")
		}
		timeRead("stale-only", 20, func() error {
			_, _, err := s.a.dev.wg.StalePeers(s.a.dev.name, time.Now(), 180*time.Second)
			return err
		})
		timeRead("full", 5, func() error {
			_, _, err := s.a.dev.wg.DeviceStale(s.a.dev.name, time.Now(), 180*time.Second)
			return err
		})
	}
}
