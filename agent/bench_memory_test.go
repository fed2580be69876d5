package agent

import (
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/traceless-vpn/traceless/agent/wg"
)

// The agent's memory per peer and the time of a first sync, with no
// control-plane server in the process. The snapshot is a binary stream
// made on the fly (it takes no memory), read by the agent's decoder.
//
//	go test ./agent -run '^$' -bench 'AgentHeap|FirstSync' -benchtime 1x -timeout 30m

// snapshotStream is a binary snapshot of test peers [0, n) at revision 1,
// made as it is read.
type snapshotStream struct {
	n, next int
	buf     []byte
}

func newSnapshotStream(n int) *snapshotStream {
	s := &snapshotStream{n: n}
	s.buf = append(s.buf, "TLPS0001"...)
	s.buf = binary.BigEndian.AppendUint64(s.buf, 1)
	s.buf = binary.BigEndian.AppendUint64(s.buf, uint64(n))
	return s
}

func (s *snapshotStream) Read(p []byte) (int, error) {
	for len(s.buf) < len(p) && s.next < s.n {
		k := testKey(s.next)
		i := s.next
		s.buf = append(s.buf, k[:]...)
		s.buf = append(s.buf, 10, 64+byte(i>>16&0x3f), byte(i>>8), byte(i))
		s.buf = append(s.buf, 0xfd, 0x74, 0x6c, 0x73, 0x76, 0x70, 0, 1)
		s.buf = binary.BigEndian.AppendUint64(s.buf, uint64(i)+2)
		s.next++
	}
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.buf)
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	return n, nil
}

// nullDevice is a device that keeps nothing: configuring it succeeds and
// reading it shows no peers, so only the agent's own memory is measured.
type nullDevice struct{}

func (nullDevice) Device(name string) (*wgtypes.Device, error) {
	return &wgtypes.Device{Name: name}, nil
}
func (nullDevice) ConfigureDevice(string, wgtypes.Config) error { return nil }
func (nullDevice) Close() error                                 { return nil }

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkAgentHeap: the agent's live heap per peer after the first
// sync of an N-peer pool, on a device that keeps nothing, with the
// process's heap before the sync as the baseline.
func BenchmarkAgentHeap(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			for b.Loop() {
				before := liveHeap()
				d := newDevice(wg.NewControl(nullDevice{}), "tl0")
				ans, err := readSnapshot(newSnapshotStream(n))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.applyFull(ans.set, ans.revision); err != nil {
					b.Fatal(err)
				}
				ans = nil
				after := liveHeap()
				if d.state.set.len() != n {
					b.Fatalf("%d peers in the set", d.state.set.len())
				}
				b.ReportMetric(float64(after-before)/float64(n), "heap-B/peer")
				b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
				runtime.KeepAlive(d)
			}
		})
	}
}

// BenchmarkFirstSync1M: decode a 1,000,000-peer binary snapshot and apply
// it to an empty Fake device, as an agent's first sync does after the
// transfer (which traceless-bench snapshot measures with the real
// server): wall and CPU time.
func BenchmarkFirstSync1M(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		f := wg.NewFake()
		f.AddDevice("tl0")
		d := newDevice(wg.NewControl(f), "tl0")
		b.Logf("load before: %s", loadAvg())
		start, c0 := time.Now(), cpuTime()
		ans, err := readSnapshot(newSnapshotStream(n))
		if err != nil {
			b.Fatal(err)
		}
		decoded, c1 := time.Since(start), cpuTime()
		r, err := d.applyFull(ans.set, ans.revision)
		if err != nil || f.PeerCount("tl0") != n {
			b.Fatalf("apply: %+v, %v", r, err)
		}
		wall, cpu := time.Since(start), cpuTime()-c0
		b.Logf("load after: %s", loadAvg())
		b.ReportMetric(wall.Seconds(), "first-sync-s")
		b.ReportMetric(cpu.Seconds(), "first-sync-cpu-s")
		b.ReportMetric(decoded.Seconds(), "decode-s")
		b.ReportMetric((c1 - c0).Seconds(), "decode-cpu-s")
	}
}
