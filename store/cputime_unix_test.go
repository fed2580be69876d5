//go:build unix

package store

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time (user + system, every thread) the process
// has used. On a shared machine wall time per operation moves with the
// neighbours' load; CPU time per operation moves much less.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
