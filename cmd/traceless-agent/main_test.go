package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/traceless-vpn/traceless/agent"
	"github.com/traceless-vpn/traceless/agent/wg"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/internal/version"
)

// syncBuffer is a goroutine-safe buffer for the program's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// controlPlane is the smallest control plane an agent syncs with: one
// enrollment, tokens, a JSON snapshot of peers, status.
func controlPlane(t *testing.T, peers []api.Peer) (*httptest.Server, func() int) {
	t.Helper()
	var mu sync.Mutex
	var statuses []api.NodeStatus
	write := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	tunnel := api.Tunnel{IPv4: "10.64.0.1/10", IPv6: "fd74:6c73:7670:1::1/64"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /agent/v1/enroll", func(w http.ResponseWriter, r *http.Request) {
		var req api.EnrollRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.Token != "tle_main" || req.PublicKey == "" {
			write(w, http.StatusUnauthorized, api.ErrorBody{Error: api.Error{Code: api.CodeUnauthorized}})
			return
		}
		write(w, http.StatusCreated, api.EnrollResponse{NodeID: "n1", Credential: "tln_main", Tunnel: tunnel})
	})
	mux.HandleFunc("POST /agent/v1/token", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusOK, api.NodeToken{Token: "ntk", ExpiresAt: time.Now().Add(10 * time.Minute), NodeID: "n1", Tunnel: tunnel})
	})
	mux.HandleFunc("GET /agent/v1/peers", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("since") != "0" {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			write(w, http.StatusOK, api.PeersResponse{Revision: 1, Upserts: []api.Peer{}, Removes: []string{}})
			return
		}
		write(w, http.StatusOK, api.PeersResponse{Revision: 1, Full: true, Upserts: peers, Removes: []string{}})
	})
	mux.HandleFunc("POST /agent/v1/status", func(w http.ResponseWriter, r *http.Request) {
		var st api.NodeStatus
		json.NewDecoder(r.Body).Decode(&st)
		mu.Lock()
		statuses = append(statuses, st)
		mu.Unlock()
		write(w, http.StatusOK, api.StatusResponse{})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(statuses)
	}
}

type noFirewall struct{}

func (noFirewall) Apply(agent.FirewallRules) error { return nil }
func (noFirewall) LogRules() (int, error)          { return 0, nil }

// testHost keeps the test from changing the machine's sysctls.
func testHost() agent.Host {
	var mu sync.Mutex
	m := fstest.MapFS{"proc/swaps": {Data: []byte("Filename Type Size Used Priority\n")}}
	return agent.Host{
		FS: fsFunc(func(name string) (fs.File, error) { mu.Lock(); defer mu.Unlock(); return m.Open(name) }),
		WriteFile: func(name string, data []byte) error {
			mu.Lock()
			defer mu.Unlock()
			m[strings.TrimPrefix(name, "/")] = &fstest.MapFile{Data: data}
			return nil
		},
		LookPath: func(string) (string, error) { return "", errors.New("not found") },
		Firewall: noFirewall{},
	}
}

type fsFunc func(string) (fs.File, error)

func (f fsFunc) Open(name string) (fs.File, error) { return f(name) }

func TestMainRun(t *testing.T) {
	peers := []api.Peer{
		api.DevicePeer("WwpV2fnd2Ix5MRP8vDXzxHQA6wrMOzL9JZydmw9Ywk0=", "10.64.0.2", "fd74:6c73:7670:1::2"),
		api.DevicePeer("4s9j3sLKDW2w4nkvfBGHbQ0Dl4GP0zj7TVm9VyZmgCs=", "10.64.0.3", "fd74:6c73:7670:1::3"),
	}
	srv, statuses := controlPlane(t, peers)
	fake, links := wg.NewFake(), wg.NewFakeLinks(true)
	cred := filepath.Join(t.TempDir(), "state", "credential.json")
	args := []string{"--server", srv.URL, "--enroll-token", "tle_main", "--credential-file", cred,
		"--metrics-listen", "127.0.0.1:0", "--endpoint", "vpn.example.com:51820", "--log-level", "debug"}

	for run := range 2 { // the second run restarts on the credential file
		stderr := &syncBuffer{}
		m := NewMain(io.Discard, stderr)
		m.openInterface = func(c wg.Config) (*wg.Interface, error) {
			if c.Name != "tl0" || c.Backend != "auto" {
				t.Errorf("interface config %+v", c)
			}
			return wg.NewFakeInterface(c.Name, fake, links), nil
		}
		m.host = testHost()
		if err := m.ParseFlags(args, func(string) string { return "" }); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(context.Background()); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, stderr)
		}
		deadline := time.Now().Add(10 * time.Second)
		for fake.PeerCount("tl0") != 2 || statuses() <= run {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: no sync\n%s", run, stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
		res, err := http.Get("http://" + m.MetricsAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(body), "traceless_agent_peers 2") || !strings.Contains(string(body), `traceless_build_info{goversion=`) ||
			!strings.Contains(string(body), `program="traceless-agent",version="`+version.String()+`"} 1`) {
			t.Errorf("metrics:\n%s", body)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if fake.PeerCount("tl0") != 2 {
			t.Error("Close removed the peers of a kernel-like interface")
		}
		for _, p := range peers {
			if strings.Contains(stderr.String(), p.PublicKey) || strings.Contains(stderr.String(), "10.64.0.2") {
				t.Errorf("logs name a peer:\n%s", stderr)
			}
		}
		if fi, err := os.Stat(cred); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("credential file: %v %v", fi, err)
		}
	}
}

func TestMainRefusesWithoutCredential(t *testing.T) {
	srv, _ := controlPlane(t, nil)
	m := NewMain(io.Discard, io.Discard)
	m.openInterface = func(c wg.Config) (*wg.Interface, error) {
		t.Error("opened the interface without a credential")
		return nil, errors.New("no")
	}
	m.host = testHost()
	if err := m.ParseFlags([]string{"--server", srv.URL, "--credential-file", filepath.Join(t.TempDir(), "c.json"), "--metrics-listen", ""},
		func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "enrollment token") {
		t.Errorf("Run = %v, want a request for an enrollment token", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close after a failed Run: %v", err)
	}
}
