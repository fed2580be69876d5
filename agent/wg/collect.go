package wg

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// Collections in the holder. A holder of 60,000 peers keeps wireguard-go's
// state for each (queues, timers, two goroutines): one collection of its
// heap costs 1.4–1.9 s of CPU. The Go runtime collects when the heap has
// doubled since the last collection, and also at least every two minutes
// whatever the heap did; on an idle node, where almost nothing is
// allocated, those forced collections were most of the node's CPU
// (about 1 % of a core). The holder turns the runtime's pacing off and
// collects by growth alone (collectByGrowth): when the bytes allocated
// since the last collection reach the live heap (what GOGC=100 does),
// checked every second. A busy device collects as often as before; an
// idle one does not collect. An agent that runs its userspace device in
// its own process (no holder) does the same while the device is open
// (startCollector).

// minGrowth is the least allocation that starts a collection, as the
// runtime's own minimum heap.
const minGrowth = 4 << 20

// collectByGrowth turns the runtime's collection pacing off and collects
// whenever the heap allocated since the last collection reaches the live
// heap (at least minGrowth), checking every interval, until stop is
// closed. It restores the pacing when it returns.
func collectByGrowth(every time.Duration, stop <-chan struct{}) {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	mark := s[0].Value.Uint64()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		metrics.Read(s)
		if s[0].Value.Uint64()-mark >= max(s[1].Value.Uint64(), minGrowth) {
			runtime.GC()
			metrics.Read(s)
			mark = s[0].Value.Uint64()
		}
	}
}

// collector is the process's collectByGrowth while any in-process
// device is open.
var collector struct {
	sync.Mutex
	open int
	stop chan struct{}
	done chan struct{}
}

// startCollector runs collectByGrowth until every stop it returned has
// been called.
func startCollector() (stop func() error) {
	collector.Lock()
	defer collector.Unlock()
	if collector.open == 0 {
		collector.stop, collector.done = make(chan struct{}), make(chan struct{})
		go func(stop, done chan struct{}) { collectByGrowth(time.Second, stop); close(done) }(collector.stop, collector.done)
	}
	collector.open++
	var once sync.Once
	return func() error {
		once.Do(func() {
			collector.Lock()
			defer collector.Unlock()
			if collector.open--; collector.open == 0 {
				close(collector.stop)
				<-collector.done
			}
		})
		return nil
	}
}
