package main

import (
	"errors"
	"io"
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

// TestMainMetricsListen: with --metrics-listen, /metrics is served on that
// listener and not on the main one; without it, on the main one (the
// default, TestMainBuildInfo).
func TestMainMetricsListen(t *testing.T) {
	in := newInstance(t)
	m := MustRunMain(t, in.args("--metrics-listen", "127.0.0.1:0"), nil)
	if m.MetricsAddr() == "" || m.MetricsAddr() == m.Addr() {
		t.Fatalf("metrics address %q, main %q", m.MetricsAddr(), m.Addr())
	}
	res, body := m.do(t, http.MethodGet, "/metrics", "", nil)
	mustStatus(t, res, body, http.StatusNotFound)
	res, err := m.client.Get("http://" + m.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(b), "traceless_build_info{") || !strings.Contains(string(b), "traceless_devices ") {
		t.Errorf("GET /metrics on the metrics listener = %d:\n%.300s", res.StatusCode, b)
	}
	// The API stays on the main listener only.
	res, err = m.client.Get("http://" + m.MetricsAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("/healthz on the metrics listener = %d, want 404", res.StatusCode)
	}
	m.MustClose(t)
}
