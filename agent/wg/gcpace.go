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
// (what the process holds, plus its live heap again, plus gcHeadroom)
// starts the next one. An operator's GOGC or GOMEMLIMIT in the
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
	{Name: "/gc/heap/live:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
}

// setGCLimit sets the memory limit so that the process may grow by its
// live heap plus gcHeadroom beyond what it holds now, as GOGC=100 would let
// the heap grow; call with pacer.mu held, right after a collection. What
// the process holds counts memory the runtime keeps but does not use (free
// spans not yet returned to the system): a limit below that would make the
// runtime collect again and again.
func setGCLimit() {
	metrics.Read(gcSamples)
	v := func(i int) uint64 { return gcSamples[i].Value.Uint64() }
	total, released, live := v(0), v(1), v(2)
	if live == 0 { // no collection yet
		live = v(3)
	}
	held := uint64(0)
	if total > released {
		held = total - released
	}
	limit := held + live + gcHeadroom
	if limit > math.MaxInt64 {
		limit = math.MaxInt64
	}
	debug.SetMemoryLimit(int64(limit))
}
