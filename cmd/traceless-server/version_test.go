package main

import (
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/traceless-vpn/traceless/internal/config"
	"github.com/traceless-vpn/traceless/internal/version"
)

// TestVersionFlag builds the binary with a version set by the linker, as
// the Makefile and the Dockerfile do, and checks that --version prints it
// and exits 0.
func TestVersionFlag(t *testing.T) {
	bin := filepath.Join(t.TempDir(), program)
	const v = "v9.8.7-test"
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/traceless-vpn/traceless/internal/version.version="+v, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--version")
	cmd.Env = []string{}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	if want := program + " " + v + " (" + runtime.Version() + ")\n"; string(out) != want {
		t.Errorf("--version printed %q, want %q", out, want)
	}

	stdout := &syncBuffer{}
	m := NewMain(stdout, &syncBuffer{})
	if err := m.ParseFlags([]string{"--config", "/nonexistent.yaml", "--version"}, envMap(nil)); !errors.Is(err, config.ErrVersion) {
		t.Errorf("ParseFlags(--version) = %v", err)
	}
	if stdout.String() != version.Line(program)+"\n" {
		t.Errorf("stdout = %q", stdout)
	}
}

// TestMainBuildInfo: /metrics carries traceless_build_info with the
// build's version.
func TestMainBuildInfo(t *testing.T) {
	in := newInstance(t)
	m := MustRunMain(t, in.args(), nil)
	res, body := m.do(t, http.MethodGet, "/metrics", "", nil)
	mustStatus(t, res, body, http.StatusOK)
	want := `program="traceless-server",version="` + version.String() + `"} 1`
	if !strings.Contains(string(body), "traceless_build_info{goversion=") || !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks traceless_build_info with %s", want)
	}
	m.MustClose(t)
}
