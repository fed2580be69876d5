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
func TestPaceGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	debug.SetMemoryLimit(math.MaxInt64)

	r1, r2 := paceGC(), paceGC()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC while pacing = %d, want off", p)
	}
	first := debug.SetMemoryLimit(-1)
	if first <= gcHeadroom || first == math.MaxInt64 {
		t.Fatalf("memory limit %d", first)
	}
	// Grow the live heap; after a collection the limit follows it.
	keep := make([][]byte, 0, 64)
	for range 64 {
		keep = append(keep, make([]byte, 1<<20))
	}
	runtime.GC()
	deadline := time.Now().Add(5 * time.Second)
	for debug.SetMemoryLimit(-1) < first+64<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d did not follow a 64 MiB larger live heap (was %d)", debug.SetMemoryLimit(-1), first)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	runtime.KeepAlive(keep)
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
