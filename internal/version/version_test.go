package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResolve(t *testing.T) {
	info := func(v string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: v}, Settings: settings}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name   string
		linked string
		read   func() (*debug.BuildInfo, bool)
		want   string
	}{
		{"linker wins", "v1.2.3", info("v9.9.9"), "v1.2.3"},
		{"go install of a tag", "", info("v0.4.0"), "v0.4.0"},
		{"checkout", "", info("(devel)",
			debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			debug.BuildSetting{Key: "vcs.modified", Value: "true"}), "devel+0123456789ab-dirty"},
		{"clean checkout", "", info("(devel)",
			debug.BuildSetting{Key: "vcs.revision", Value: "abc"}), "devel+abc"},
		{"no vcs", "", info("(devel)"), "devel"},
		{"no build info", "", none, "devel"},
	}
	for _, tt := range tests {
		if got := resolve(tt.linked, tt.read); got != tt.want {
			t.Errorf("%s: resolve = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector("traceless-test"))
	want := `
# HELP traceless_build_info Build information of this binary; the value is always 1.
# TYPE traceless_build_info gauge
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want+
		`traceless_build_info{goversion="`+runtime.Version()+`",program="traceless-test",version="`+String()+`"} 1
`), "traceless_build_info"); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(Line("x"), "x "+String()+" (go") {
		t.Fatalf("Line = %q", Line("x"))
	}
}
