package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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
	for done := 0; done < n; {
		batch := min(maxBatch, n-done)
		nds := make([]NewDevice, batch)
		for i := range nds {
			nds[i] = NewDevice{PublicKey: randomKey(b)}
		}
		if _, err := st.RegisterDevices(ctx, app.ID, nds); err != nil {
			b.Fatal(err)
		}
		done += batch
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
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.st.RegisterDevice(ctx, f.appID, NewDevice{PublicKey: keys[i]}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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

// BenchmarkAllocateAddresses is the address allocation alone, as a
// registration does it: draw a random IPv4 and IPv6 and probe that both
// are free, at 1,000 and at 1,000,000 devices in one run. Compare with
// BenchmarkRegisterDevice, whose extra cost at a million is the insert
// into random-key indexes (device ID, key, addresses) that no longer fit
// in the cache, not the allocation.
//
//	go test ./store -run '^$' -bench 'RegisterDevice|AllocateAddresses' -benchtime 20000x -count 1
func BenchmarkAllocateAddresses(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("existing=%d", n), func(b *testing.B) {
			f := populatedStore(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var free struct{ V4, V6 bool }
				err := f.st.r.WithContext(ctx).Raw(`SELECT NOT EXISTS (SELECT 1 FROM devices WHERE ipv4 = ?) AS v4,
					NOT EXISTS (SELECT 1 FROM devices WHERE ipv6 = ?) AS v6`,
					randomHost(f.st.tunnel4).String(), randomHost(f.st.tunnel6).String()).Scan(&free).Error
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
