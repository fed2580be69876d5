package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// benchFixture is a store populated with a given number of devices, built
// once per process and shared by every b.N round of a benchmark.
type benchFixture struct {
	st    *Store
	appID string
	dir   string
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[int]*benchFixture{}
)

func randomKey(tb testing.TB) string {
	tb.Helper()
	var b [32]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// populatedStore returns a SQLite store holding n devices in one app whose
// plan allows 100 million.
func populatedStore(b *testing.B, n int) *benchFixture {
	b.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f, ok := fixtures[n]; ok {
		return f
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "traceless-bench-")
	if err != nil {
		b.Fatal(err)
	}
	st, err := Open(ctx, Config{Driver: DriverSQLite, DSN: filepath.Join(dir, "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	p, err := st.CreatePlan(ctx, PlanWithPools{Plan: Plan{Slug: "bench", Name: "Bench", MaxApps: 10, MaxDevices: 100_000_000, Currency: "EUR"}})
	if err != nil {
		b.Fatal(err)
	}
	o, err := st.CreateOwner(ctx, Owner{Email: "bench@example.com", PasswordHash: "x", Role: RoleOwner}, p.Slug)
	if err != nil {
		b.Fatal(err)
	}
	app, err := st.CreateApp(ctx, o.ID, "bench")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for done := 0; done < n; done += min(100_000, n-done) {
		MustRegisterN(b, st, app.ID, min(100_000, n-done))
	}
	if err := st.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("populated %d devices in %v", n, time.Since(start).Round(time.Millisecond))
	f := &benchFixture{st: st, appID: app.ID, dir: dir}
	fixtures[n] = f
	return f
}

// BenchmarkRegisterDevice shows that allocation cost does not grow with the
// number of devices: compare existing=1000 with existing=1000000 in one run.
//
//	go test ./store -run '^$' -bench RegisterDevice -benchtime 20000x -count 3
func BenchmarkRegisterDevice(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("existing=%d", n), func(b *testing.B) {
			f := populatedStore(b, n)
			ctx := context.Background()
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = randomKey(b)
			}
			b.ReportAllocs()
			cpu := startCPU(b)
			for i := 0; i < b.N; i++ {
				if _, err := f.st.RegisterDevice(ctx, f.appID, NewDevice{PublicKey: keys[i]}); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}

// cpuClock measures the CPU time of b's timed loop (the process's, so the
// registrar's goroutine and SQLite's work count too).
type cpuClock struct{ start time.Duration }

// startCPU resets b's timer and starts the CPU clock.
func startCPU(b *testing.B) cpuClock {
	b.ResetTimer()
	return cpuClock{start: processCPU(b)}
}

// report adds cpu-ns/op.
func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64((processCPU(b)-c.start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// TestMain removes the benchmark fixtures' temporary databases.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, f := range fixtures {
		f.st.Close()
		os.RemoveAll(f.dir)
	}
	os.Exit(code)
}

// BenchmarkAllocateAddresses is admission as registration and rotation
// run it — admitDevice on the prepared statements, in a write transaction
// of up to maxGroup devices — at 1,000 and at 1,000,000 devices in one
// run: one query checks the plan, the key and a random IPv4 and IPv6
// address, and an address found taken is drawn again. Nothing is inserted
// (the transactions roll back), so the store keeps its size. Compare with
// BenchmarkRegisterDevice, whose extra cost at a million is the insert
// into random-key indexes (device ID, key, addresses) that no longer fit
// in the cache, not the allocation.
//
//	go test ./store -run '^$' -bench 'RegisterDevice|AllocateAddresses' -benchtime 20000x -count 1
func BenchmarkAllocateAddresses(b *testing.B) {
	errRollback := errors.New("roll back")
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("existing=%d", n), func(b *testing.B) {
			f := populatedStore(b, n)
			ctx := context.Background()
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = randomKey(b)
			}
			b.ReportAllocs()
			cpu := startCPU(b)
			for i := 0; i < b.N; {
				end := min(i+maxGroup, b.N)
				err := f.st.hot.inTx(ctx, func(h *hotTx) error {
					for ; i < end; i++ {
						d := Device{AppID: f.appID, PublicKey: keys[i]}
						if err := f.st.admitDevice(h, &d, true); err != nil {
							return err
						}
					}
					return errRollback
				})
				if !errors.Is(err, errRollback) {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
	}
}
