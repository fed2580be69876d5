package wg

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestPaceGC: while a user holds it, GOGC is off (no forced collections)
// and a memory limit follows the heap, re-set after each collection; the
// last release restores the settings; GOGC in the environment wins.
func numGC() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}

func TestPaceGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	debug.SetMemoryLimit(math.MaxInt64)

	r1, r2 := paceGC(), paceGC()
	t.Cleanup(func() { r1(); r2() })
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC while pacing = %d, want off", p)
	}
	first := debug.SetMemoryLimit(-1)
	if first <= gcHeadroom || first == math.MaxInt64 {
		t.Fatalf("memory limit %d", first)
	}
	// Grow the live heap by 64 MiB; after a collection the limit leaves
	// room for the live heap again above what the process holds.
	keep := make([][]byte, 0, 64)
	for range 64 {
		keep = append(keep, make([]byte, 1<<20))
	}
	runtime.GC()
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(20 * time.Millisecond)
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		held := int64(m.Sys - m.HeapReleased)
		if l := debug.SetMemoryLimit(-1); l >= held+64<<20 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("limit %d leaves less than the 64 MiB live heap above the %d bytes held", l, held)
		}
		runtime.GC()
	}
	runtime.KeepAlive(keep)
	keep = nil

	// Much garbage, collected: the runtime keeps its spans for a while.
	// Allocating a little afterwards must not make it collect again and
	// again (the limit counts what the process holds).
	junk := make([][]byte, 0, 300)
	for range 300 {
		junk = append(junk, make([]byte, 1<<20))
	}
	runtime.KeepAlive(junk)
	junk = nil
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // the finalizer re-sets the limit
	n0 := numGC()
	var sink [][]byte
	for range 32 {
		sink = append(sink, make([]byte, 1<<20))
	}
	runtime.KeepAlive(sink)
	if n := numGC() - n0; n > 2 {
		t.Errorf("%d collections while allocating 32 MiB after a large collection; want at most 2", n)
	}
	r1()
	r1() // twice is once
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC after one of two releases = %d, want still off", p)
	}
	r2()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC after the last release = %d, want 100 again", p)
	}
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("memory limit after the last release = %d, want none", l)
	}

	t.Setenv("GOGC", "200")
	r := paceGC()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC with GOGC in the environment = %d, want untouched", p)
	}
	r()
}
