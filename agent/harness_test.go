package agent

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/traceless-vpn/traceless/agent/wg"
)

// memFS is a writable in-memory root file system for Host.
type memFS struct {
	mu    sync.Mutex
	files fstest.MapFS
}

func newMemFS(files map[string]string) *memFS {
	m := &memFS{files: fstest.MapFS{}}
	for name, data := range files {
		m.files[name] = &fstest.MapFile{Data: []byte(data), Mode: 0o644}
	}
	return m
}

func (m *memFS) Open(name string) (fs.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.files.Open(name)
}

func (m *memFS) WriteFile(name string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = strings.TrimPrefix(path.Clean(name), "/")
	if _, ok := m.files[name]; !ok && strings.HasPrefix(name, "proc/") {
		return fs.ErrNotExist // sysctls cannot be created
	}
	m.files[name] = &fstest.MapFile{Data: append([]byte(nil), data...), Mode: 0o644}
	return nil
}

func (m *memFS) read(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.files[name]; f != nil {
		return string(f.Data)
	}
	return "<absent>"
}

// fakeFirewall records the rules applied.
type fakeFirewall struct {
	mu       sync.Mutex
	applied  []FirewallRules
	logRules int
	err      error
}

func (f *fakeFirewall) Apply(r FirewallRules) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, r)
	return f.err
}

func (f *fakeFirewall) LogRules() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logRules, f.err
}

func (f *fakeFirewall) last() (FirewallRules, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) == 0 {
		return FirewallRules{}, 0
	}
	return f.applied[len(f.applied)-1], len(f.applied)
}

// fakeProcess is a process whose hardening sticks.
type fakeProcess struct {
	mu       sync.Mutex
	dumpable bool
	core     uint64
	failSet  bool
}

func (p *fakeProcess) SetNotDumpable() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failSet {
		return errors.New("operation not permitted")
	}
	p.dumpable = false
	return nil
}

func (p *fakeProcess) Dumpable() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dumpable, nil
}

func (p *fakeProcess) SetNoCore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failSet {
		return errors.New("operation not permitted")
	}
	p.core = 0
	return nil
}

func (p *fakeProcess) CoreLimit() (uint64, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.core, p.core, nil
}

// cleanHost is a machine whose posture holds once the agent hardens it.
func cleanHost() (Host, *memFS, *fakeFirewall, *fakeProcess) {
	m := newMemFS(map[string]string{
		"proc/swaps": "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
		"proc/sys/net/netfilter/nf_conntrack_acct":      "1\n",
		"proc/sys/net/netfilter/nf_conntrack_timestamp": "0\n",
		"proc/sys/net/ipv4/ip_forward":                  "0\n",
		"proc/sys/net/ipv6/conf/all/forwarding":         "0\n",
	})
	fw := &fakeFirewall{}
	p := &fakeProcess{dumpable: true, core: 1 << 30}
	return Host{FS: m, WriteFile: m.WriteFile, LookPath: func(string) (string, error) { return "", errors.New("not found") },
		Firewall: fw, Process: p}, m, fw, p
}

// harness is an agent on the fake backend against a fake control plane.
type harness struct {
	t        *testing.T
	fake     *wg.Fake
	links    *wg.FakeLinks
	mem      *memFS
	fw       *fakeFirewall
	logs     *logBuffer
	credFile string
	opts     Options
	a        *Agent
	cancel   context.CancelFunc
	done     chan error
}

func newHarness(t *testing.T, servers []string, mutate func(*Options)) *harness {
	t.Helper()
	host, mem, fw, _ := cleanHost()
	h := &harness{
		t: t, fake: wg.NewFake(), links: wg.NewFakeLinks(true), mem: mem, fw: fw, logs: &logBuffer{},
		credFile: filepath.Join(t.TempDir(), "state", "credential.json"),
	}
	h.opts = Options{
		Servers: servers, EnrollToken: "tle_enroll", CredentialFile: h.credFile, Name: "node-a",
		NodeEndpoint: "vpn1.example.net:51820", ListenPort: 51820, Harden: true, Version: "test",
		Open:      func() (*wg.Interface, error) { return wg.NewFakeInterface("tl0", h.fake, h.links), nil },
		Host:      host,
		Logger:    newTestLogger(h.logs),
		ScrubTick: 20 * time.Millisecond, StatusInterval: 200 * time.Millisecond, PostureInterval: 50 * time.Millisecond,
		AntiEntropyInterval: 100 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		RevokedRetry: 150 * time.Millisecond, PollTimeout: 5 * time.Second, RequestTimeout: 10 * time.Second,
	}
	if mutate != nil {
		mutate(&h.opts)
	}
	return h
}

// start runs the agent in the background; stop ends it.
func (h *harness) start() {
	h.t.Helper()
	a, err := New(h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.a = a
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- a.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v\nlogs:\n%s", err, h.logs)
	}
	h.cancel = nil
	if err := h.a.Close(); err != nil {
		h.t.Errorf("Close: %v", err)
	}
}

// waitFor polls cond for up to 10 s.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s\nlogs:\n%s", what, h.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inStep reports whether the fake device holds exactly cp's peers.
func (h *harness) inStep(cp *fakeCP) bool {
	d, err := h.fake.Device("tl0")
	if err != nil {
		return false
	}
	want := cp.snapshot()
	if len(d.Peers) != len(want) {
		return false
	}
	for _, p := range d.Peers {
		w, ok := want[p.PublicKey.String()]
		if !ok || len(w.AllowedIPs) != len(p.AllowedIPs) {
			return false
		}
		for i, a := range p.AllowedIPs {
			if a.String() != w.AllowedIPs[i] {
				return false
			}
		}
	}
	return true
}

// reported reports whether the last status matches cp's state.
func (h *harness) reported(cp *fakeCP) bool {
	st, _ := cp.lastStatus()
	var rev int64
	cp.with(func(cp *fakeCP) { rev = cp.revision })
	return st.AppliedRevision == rev && st.PeerSetHash == hashOf(cp.snapshot()) && st.PeerCount == len(cp.snapshot())
}
