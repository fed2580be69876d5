// Package version reports the build version of the Traceless binaries.
//
// Release builds set it with
//
//	-ldflags "-X github.com/traceless-vpn/traceless/internal/version.version=v1.2.3"
//
// (the Makefile does). A plain `go build` or `go install` of a tagged
// module version gets it from the module's build information instead, and a
// build from a checkout falls back to the VCS revision the go command
// stamps, so `--version` never answers a bare "dev" when something better is
// known. Any package may import it; it imports only the standard library and
// the Prometheus client.
package version

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// version is set by the linker; empty means "work it out from build info".
var version string

var (
	once     sync.Once
	resolved string
)

// String returns the build version: the linker-set value, else the main
// module's version, else "devel+<revision>[-dirty]", else "devel".
func String() string {
	once.Do(func() { resolved = resolve(version, debug.ReadBuildInfo) })
	return resolved
}

// resolve is String's logic with its inputs passed in, for tests.
func resolve(linked string, read func() (*debug.BuildInfo, bool)) string {
	if linked != "" {
		return linked
	}
	bi, ok := read()
	if !ok || bi == nil {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel+" + rev
}

// Line is what `--version` prints: the program name, the version and the Go
// release it was built with.
func Line(program string) string {
	return program + " " + String() + " (" + runtime.Version() + ")"
}

// Collector returns the traceless_build_info gauge: always 1, with the build
// version and Go release as labels, the usual Prometheus idiom for build
// metadata. It names the binary, never anything about a user.
func Collector(program string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "traceless_build_info",
		Help: "Build information of this binary; the value is always 1.",
		ConstLabels: prometheus.Labels{
			"program":   program,
			"version":   String(),
			"goversion": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
