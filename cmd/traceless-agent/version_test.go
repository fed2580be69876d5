package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/traceless-vpn/traceless/agent/wg"
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
	cmd.Env = []string{} // no TRACELESS_* variable may matter
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	if want := program + " " + v + " (" + runtime.Version() + ")\n"; string(out) != want {
		t.Errorf("--version printed %q, want %q", out, want)
	}

	// In process: the same line, and nothing else is read (a missing
	// config file does not matter).
	stdout := &syncBuffer{}
	m := NewMain(stdout, &syncBuffer{})
	if err := m.ParseFlags([]string{"--config", "/nonexistent.yaml", "--version"}, func(string) string { return "" }); !errors.Is(err, config.ErrVersion) {
		t.Errorf("ParseFlags(--version) = %v", err)
	}
	if stdout.String() != version.Line(program)+"\n" {
		t.Errorf("stdout = %q", stdout)
	}
}

// TestHelpShowsSettings checks that --help names every setting's flag,
// default and environment variable.
func TestHelpShowsSettings(t *testing.T) {
	stderr := &syncBuffer{}
	m := NewMain(&syncBuffer{}, stderr)
	if err := m.ParseFlags([]string{"--help"}, func(string) string { return "" }); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	var c Config
	tab := c.table()
	for _, s := range tab.Settings {
		want := "env " + tab.Env(s) + "; file key " + s.Key
		if d := s.DefaultText(); d != "" {
			want = "default: " + d + "; " + want
		}
		if !strings.Contains(stderr.String(), "--"+s.FlagName()) || !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks --%s with %q", s.FlagName(), want)
		}
	}
}

// TestREADMESettingsTable checks README.md's agent settings table against
// the settings table: a row per setting with its file key, flag,
// environment variable and default.
func TestREADMESettingsTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	for _, p := range c.table().CheckDocTable(string(b), "### Agent settings") {
		t.Errorf("README.md: %s", p)
	}
}

// TestEndpointRequiredToEnroll: an agent that must enroll and has no
// --endpoint stops before any request, and the error names --endpoint.
func TestEndpointRequiredToEnroll(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusBadRequest)
	}))
	defer srv.Close()
	cred := filepath.Join(t.TempDir(), "credential.json")
	m := NewMain(&syncBuffer{}, &syncBuffer{})
	m.openInterface = func(wg.Config) (*wg.Interface, error) { return nil, errors.New("not in this test") }
	m.host = testHost()
	err := m.ParseFlags([]string{"--server", srv.URL, "--credential-file", cred, "--metrics-listen", ""},
		func(k string) string { return map[string]string{"TRACELESS_AGENT_ENROLL_TOKEN": "tle_x"}[k] })
	if err == nil || !strings.Contains(err.Error(), "--endpoint") {
		t.Errorf("ParseFlags without --endpoint = %v, want an error naming --endpoint", err)
	}
	// Run on a Config set directly checks it as well.
	m.Config.Servers, m.Config.EnrollToken, m.Config.CredentialFile, m.Config.Endpoint = []string{srv.URL}, "tle_x", cred, ""
	m.opts = nil
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "--endpoint") {
		t.Errorf("Run without an endpoint = %v, want an error naming --endpoint", err)
	}
	m.Close()
	if n := requests.Load(); n != 0 {
		t.Errorf("the control plane got %d requests", n)
	}
}
