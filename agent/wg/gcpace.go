package wg

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Garbage collection in a process that holds a userspace device. A
// wireguard-go device keeps, per peer, queues of pointers and two
// goroutines: with 60,000 peers one collection of the process costs more
// than a second of CPU, and the Go runtime forces one every two minutes
// even when nothing was allocated, which was most of an idle node's CPU.
// While a userspace device is open, the process collects by heap growth
// only: GOGC is off, which stops the forced collections, and a soft
// memory limit set after every collection to what GOGC=100 would allow
// (the memory that is not heap, plus twice the live heap, plus
// gcHeadroom) starts the next one. An operator's GOGC or GOMEMLIMIT in the
// environment is left alone.

// gcHeadroom is the least heap growth between collections.
const gcHeadroom = 64 << 20

var pacer struct {
	mu        sync.Mutex
	refs      int
	epoch     int // bumped when pacing stops, so stale finalizers retire
	prevGOGC  int
	prevLimit int64
}

// paceGC starts pacing collections by heap growth, unless the environment
// sets GOGC or GOMEMLIMIT; the returned function stops it when the last
// user calls it.
func paceGC() (release func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	pacer.mu.Lock()
	defer pacer.mu.Unlock()
	pacer.refs++
	if pacer.refs == 1 {
		pacer.prevGOGC = debug.SetGCPercent(-1)
		pacer.prevLimit = debug.SetMemoryLimit(-1)
		setGCLimit()
		armGCPacer(pacer.epoch)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pacer.mu.Lock()
			defer pacer.mu.Unlock()
			pacer.refs--
			if pacer.refs == 0 {
				pacer.epoch++
				debug.SetGCPercent(pacer.prevGOGC)
				debug.SetMemoryLimit(pacer.prevLimit)
			}
		})
	}
}

// gcSentinel is garbage whose finalizer runs after each collection.
type gcSentinel struct{ epoch int }

// armGCPacer sets the limit again after the next collection, and so on,
// until pacing of this epoch stops.
func armGCPacer(epoch int) {
	s := &gcSentinel{epoch: epoch}
	runtime.SetFinalizer(s, func(s *gcSentinel) {
		pacer.mu.Lock()
		defer pacer.mu.Unlock()
		if pacer.refs == 0 || pacer.epoch != s.epoch {
			return
		}
		setGCLimit()
		armGCPacer(s.epoch)
	})
}

var gcSamples = []metrics.Sample{
	{Name: "/memory/classes/total:bytes"},
	{Name: "/memory/classes/heap/released:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
	{Name: "/gc/heap/live:bytes"},
}

// setGCLimit sets the memory limit to what GOGC=100 would let the process
// reach before its next collection; call with pacer.mu held.
func setGCLimit() {
	metrics.Read(gcSamples)
	v := func(i int) uint64 { return gcSamples[i].Value.Uint64() }
	total, released, objects, free, unused, live := v(0), v(1), v(2), v(3), v(4), v(5)
	heap := objects + free + unused
	nonHeap := uint64(0)
	if total > released+heap {
		nonHeap = total - released - heap
	}
	if live == 0 { // no collection yet
		live = objects
	}
	limit := nonHeap + 2*live + gcHeadroom
	if limit > math.MaxInt64 {
		limit = math.MaxInt64
	}
	debug.SetMemoryLimit(int64(limit))
}
