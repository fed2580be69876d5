// Command traceless-bench measures the control plane under load on this
// machine: it runs the real server in-process on loopback over a fresh
// SQLite database, seeds it, and drives it over HTTP. Every figure is
// printed next to a baseline measured in the same run, so ratios — not
// absolute times on a shared machine — are what to compare.
//
//	traceless-bench register --devices 100000 --clients 32 --duration 20s
//	traceless-bench memory --devices 1000000
//	traceless-bench snapshot --devices 1000000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "register":
		err = runRegister(ctx, os.Args[2:])
	case "memory":
		err = runMemory(ctx, os.Args[2:])
	case "snapshot":
		err = runSnapshot(ctx, os.Args[2:])
	case "propagation":
		err = runPropagation(ctx, os.Args[2:])
	default:
		usage()
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "traceless-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  traceless-bench register [--devices N] [--clients C] [--duration D]
      device registration over HTTP with N devices already present, C concurrent
      clients, against GET /healthz over the same server as the baseline
  traceless-bench memory [--devices N]
      server memory with 0 and then N devices in the store
  traceless-bench snapshot [--devices N]
      a node's full snapshot of an N-device pool: bytes and time, binary vs JSON
  traceless-bench propagation [--agents N] [--registrations R] [--devices D]
      from a registration's response to the peer applied on all N agents, in a
      pool already holding D devices`)
}
