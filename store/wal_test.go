package store

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// walLoad registers devices at full speed (32 concurrent registrations,
// group-committed as the server's are) for d or until upTo devices are
// registered (0: no limit), while two readers list devices and read the
// revision as node polls do, and samples the size of the WAL every 20 ms.
// It returns the largest size seen and how many devices were registered.
func walLoad(tb testing.TB, s *Store, d time.Duration, upTo int64) (maxWAL int64, regs int64) {
	tb.Helper()
	ctx := context.Background()
	p, err := s.CreatePlan(ctx, PlanWithPools{Plan: Plan{Slug: "wal", Name: "WAL", MaxApps: 10, MaxDevices: 100_000_000, Currency: "EUR"}})
	if err != nil {
		tb.Fatal(err)
	}
	o, err := s.CreateOwner(ctx, Owner{Email: "wal@example.com", PasswordHash: "x", Role: RoleOwner}, p.Slug)
	if err != nil {
		tb.Fatal(err)
	}
	app, err := s.CreateApp(ctx, o.ID, "wal")
	if err != nil {
		tb.Fatal(err)
	}
	var n atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.RegisterDevice(ctx, app.ID, NewDevice{PublicKey: randomKey(tb)}); err != nil {
					failed.Store(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.ListDevices(ctx, app.ID, "", 100); err != nil {
					failed.Store(err)
					return
				}
				if _, err := s.Revision(ctx); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && (upTo == 0 || n.Load() < upTo) {
		if fi, err := os.Stat(s.path + "-wal"); err == nil {
			maxWAL = max(maxWAL, fi.Size())
		}
		if failed.Load() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
	return maxWAL, n.Load()
}

// BenchmarkWALSustained registers devices at full speed for
// TRACELESS_WAL_DURATION (default 10s; BENCHMARKS.md's figure is for
// 10m) and reports the largest WAL seen, the WAL and database at the end,
// and the registration rate. Run it once:
//
//	TRACELESS_WAL_DURATION=10m go test ./store -run '^$' -bench WALSustained -benchtime 1x -timeout 20m
func BenchmarkWALSustained(b *testing.B) {
	d := 10 * time.Second
	if v := os.Getenv("TRACELESS_WAL_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatalf("TRACELESS_WAL_DURATION: %v", err)
		}
	}
	for range b.N {
		s := MustOpen(b, sqliteConfig(b))
		start := time.Now()
		maxWAL, regs := walLoad(b, s, d, 0)
		took := time.Since(start)
		var endWAL, dbSize int64
		if fi, err := os.Stat(s.path + "-wal"); err == nil {
			endWAL = fi.Size()
		}
		if fi, err := os.Stat(s.path); err == nil {
			dbSize = fi.Size()
		}
		b.ReportMetric(float64(maxWAL)/(1<<20), "max-wal-MiB")
		b.ReportMetric(float64(endWAL)/(1<<20), "end-wal-MiB")
		b.ReportMetric(float64(dbSize)/(1<<20), "db-MiB")
		b.ReportMetric(float64(regs)/took.Seconds(), "registrations/s")
		b.ReportMetric(float64(regs), "devices")
	}
}

// TestWALBounded registers 6,000 devices at full speed with readers
// active and checks that the WAL never passed 48 MiB (WALLimit is 32). Before the
// checkpointer restarted the WAL, PASSIVE checkpoints never caught up and
// the WAL held every page written: 22-25 KiB per registration, so
// 6,000 registrations made it some 130 MiB.
func TestWALBounded(t *testing.T) {
	const devices, bound = 6000, 48 << 20
	s := MustOpen(t, sqliteConfig(t))
	start := time.Now()
	maxWAL, regs := walLoad(t, s, 90*time.Second, devices)
	t.Logf("%d registrations in %v; the WAL reached %.1f MiB at most", regs, time.Since(start).Round(time.Millisecond), float64(maxWAL)/(1<<20))
	if regs < devices {
		t.Fatalf("only %d registrations in 90 s; the test needs %d to show the WAL bounded", regs, devices)
	}
	if maxWAL >= bound {
		t.Errorf("the WAL reached %.1f MiB; want under %d MiB", float64(maxWAL)/(1<<20), bound>>20)
	}
}
