package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// syncBuffer is a goroutine-safe bytes.Buffer for stdout and stderr.
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

// testMain is one run of the program.
type testMain struct {
	*Main
	stdout, stderr *syncBuffer
	client         *http.Client
	base           string
	closed         bool
}

// instance is the files a server keeps across restarts.
type instance struct {
	dir, dbPath, keyPath string
}

func newInstance(tb testing.TB) instance {
	tb.Helper()
	dir := tb.TempDir()
	return instance{dir: dir, dbPath: filepath.Join(dir, "data", "traceless.db"), keyPath: filepath.Join(dir, "data", "session.key")}
}

func (in instance) args(extra ...string) []string {
	return append([]string{"--listen", "127.0.0.1:0", "--db", "sqlite://" + in.dbPath, "--session-key-file", in.keyPath}, extra...)
}

// MustRunMain parses args and env like main() does and starts the server.
func MustRunMain(tb testing.TB, args []string, env map[string]string) *testMain {
	tb.Helper()
	tm := &testMain{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	tm.Main = NewMain(tm.stdout, tm.stderr)
	if err := tm.ParseFlags(args, envMap(env)); err != nil {
		tb.Fatalf("ParseFlags: %v", err)
	}
	if err := tm.Run(context.Background()); err != nil {
		tb.Fatalf("Run: %v\nstderr:\n%s", err, tm.stderr)
	}
	tm.client = &http.Client{Timeout: 30 * time.Second}
	tm.base = "http://" + tm.Addr()
	tb.Cleanup(func() {
		if !tm.closed {
			tm.Close()
		}
	})
	return tm
}

// MustClose shuts the server down and fails on an error.
func (tm *testMain) MustClose(tb testing.TB) {
	tb.Helper()
	tm.closed = true
	if err := tm.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

// do sends a JSON request and returns the response with its body read.
func (tm *testMain) do(tb testing.TB, method, path, token string, body any) (*http.Response, []byte) {
	tb.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, tm.base+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := tm.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return res, b
}

// mustStatus fails unless res has status want.
func mustStatus(tb testing.TB, res *http.Response, body []byte, want int) {
	tb.Helper()
	if res.StatusCode != want {
		tb.Fatalf("%s %s = %d, want %d; body %s", res.Request.Method, res.Request.URL.Path, res.StatusCode, want, body)
	}
}

func mustAuth(tb testing.TB, body []byte) api.AuthResponse {
	tb.Helper()
	var ar api.AuthResponse
	if err := json.Unmarshal(body, &ar); err != nil || ar.Token == "" {
		tb.Fatalf("auth response %s: %v", body, err)
	}
	return ar
}

var setupLinkRE = regexp.MustCompile(`(https?://[^\s/]+)/setup\?token=([A-Za-z0-9_-]+)`)

const (
	operatorEmail    = "operator@example.net"
	operatorPassword = "blue giraffe tangerine 42"
)

func mustMode(tb testing.TB, path string, want os.FileMode) {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		tb.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

// TestMainSetupLinkAndRestart: the first start of an empty database prints
// a setup link; the operator created through it survives a restart, whose
// start prints nothing, and its token still works because the session key
// file is reused.
func TestMainSetupLinkAndRestart(t *testing.T) {
	in := newInstance(t)
	m := MustRunMain(t, in.args(), nil)

	res, body := m.do(t, http.MethodGet, "/healthz", "", nil)
	mustStatus(t, res, body, http.StatusOK)

	match := setupLinkRE.FindStringSubmatch(m.stdout.String())
	if match == nil {
		t.Fatalf("no setup link on stdout:\n%s", m.stdout)
	}
	if match[1] != m.base {
		t.Errorf("setup link points at %s, want %s", match[1], m.base)
	}
	res, body = m.do(t, http.MethodGet, "/setup?token="+match[2], "", nil)
	mustStatus(t, res, body, http.StatusOK)
	res, body = m.do(t, http.MethodPost, "/api/v1/setup", "", api.Setup{Token: match[2], Email: operatorEmail, Password: operatorPassword})
	mustStatus(t, res, body, http.StatusCreated)
	token := mustAuth(t, body).Token
	res, body = m.do(t, http.MethodGet, "/api/v1/admin/owners", token, nil)
	mustStatus(t, res, body, http.StatusOK)

	// The log is JSON and names no client address.
	for _, line := range strings.Split(strings.TrimSpace(m.stderr.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		if l["msg"] != "listening" && strings.Contains(line, "127.0.0.1") {
			t.Errorf("log line names a client address: %s", line)
		}
		if strings.Contains(line, operatorEmail) || strings.Contains(line, token) || strings.Contains(line, match[2]) {
			t.Errorf("log line holds a secret: %s", line)
		}
	}
	m.MustClose(t)

	mustMode(t, in.dbPath, 0o600)
	mustMode(t, in.keyPath, 0o600)
	mustMode(t, filepath.Dir(in.dbPath), 0o700)
	key1, err := os.ReadFile(in.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	// The key that seals two-factor secrets is beside the session key.
	secretPath := filepath.Join(filepath.Dir(in.keyPath), "secret.key")
	mustMode(t, secretPath, 0o600)
	secret1, err := os.ReadFile(secretPath)
	if err != nil {
		t.Fatal(err)
	}

	m2 := MustRunMain(t, in.args(), nil)
	if out := m2.stdout.String(); out != "" {
		t.Errorf("second start printed %q, want nothing", out)
	}
	res, body = m2.do(t, http.MethodGet, "/api/v1/me", token, nil)
	mustStatus(t, res, body, http.StatusOK)
	res, body = m2.do(t, http.MethodGet, "/setup?token="+match[2], "", nil)
	mustStatus(t, res, body, http.StatusGone)
	m2.MustClose(t)
	key2, _ := os.ReadFile(in.keyPath)
	if !bytes.Equal(key1, key2) {
		t.Error("the session key file changed across restarts")
	}
	if secret2, _ := os.ReadFile(secretPath); !bytes.Equal(secret1, secret2) {
		t.Error("the secret key file changed across restarts")
	}
	mustMode(t, in.dbPath, 0o600)
}

func TestMainAdminFromEnvironment(t *testing.T) {
	in := newInstance(t)
	env := map[string]string{"TRACELESS_ADMIN_EMAIL": operatorEmail, "TRACELESS_ADMIN_PASSWORD": operatorPassword}
	m := MustRunMain(t, in.args(), env)
	out := m.stdout.String()
	if !strings.Contains(out, operatorEmail) || strings.Contains(out, "setup?token") || strings.Contains(out, operatorPassword) {
		t.Errorf("stdout = %q; want the created account named, no setup link, no password", out)
	}
	if strings.Contains(m.stderr.String(), operatorPassword) {
		t.Error("the operator password is in the log")
	}
	res, body := m.do(t, http.MethodPost, "/api/v1/auth/login", "", api.Credentials{Email: operatorEmail, Password: operatorPassword})
	mustStatus(t, res, body, http.StatusOK)
	ar := mustAuth(t, body)
	if ar.Owner.Role != "admin" {
		t.Errorf("role = %q, want admin", ar.Owner.Role)
	}
	res, body = m.do(t, http.MethodGet, "/api/v1/admin/owners", ar.Token, nil)
	mustStatus(t, res, body, http.StatusOK)
	m.MustClose(t)

	// Again with the same environment: nothing to say, nothing changes.
	m2 := MustRunMain(t, in.args(), env)
	if out := m2.stdout.String(); out != "" {
		t.Errorf("second start printed %q", out)
	}
	m2.MustClose(t)
}

func TestMainWeakAdminPassword(t *testing.T) {
	in := newInstance(t)
	m := NewMain(&syncBuffer{}, &syncBuffer{})
	if err := m.ParseFlags(in.args(), envMap(map[string]string{"TRACELESS_ADMIN_EMAIL": operatorEmail, "TRACELESS_ADMIN_PASSWORD": "password123"})); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "password") || strings.Contains(err.Error(), "password123") {
		t.Errorf("Run = %v, want an error naming the password without echoing it", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close after a failed Run: %v", err)
	}
}

func TestMainListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	in := newInstance(t)
	m := NewMain(&syncBuffer{}, &syncBuffer{})
	args := in.args()
	args[1] = ln.Addr().String()
	if err := m.ParseFlags(args, envMap(nil)); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Run on a busy port = %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestMainCloseWaitsForRequests(t *testing.T) {
	in := newInstance(t)
	m := MustRunMain(t, in.args(), nil)
	res, body := m.do(t, http.MethodGet, "/healthz", "", nil)
	mustStatus(t, res, body, http.StatusOK)
	m.MustClose(t)
	if _, err := m.client.Get(m.base + "/healthz"); err == nil {
		t.Error("server still answers after Close")
	}
}

// MustSelfSignedCert writes a certificate for 127.0.0.1 and its key.
func MustSelfSignedCert(tb testing.TB, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "traceless test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		tb.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

func TestMainTLS(t *testing.T) {
	in := newInstance(t)
	certPath, keyPath, pool := MustSelfSignedCert(t, in.dir)
	m := MustRunMain(t, in.args("--tls-cert", certPath, "--tls-key", keyPath), nil)
	m.base = "https://" + m.Addr()
	m.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	if !strings.Contains(m.stdout.String(), m.base+"/setup?token=") {
		t.Errorf("setup link does not use https: %q", m.stdout)
	}
	res, body := m.do(t, http.MethodGet, "/healthz", "", nil)
	mustStatus(t, res, body, http.StatusOK)
	if res.TLS == nil {
		t.Fatal("healthz was not served over TLS")
	}
	if !strings.HasPrefix(res.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("no HSTS over TLS")
	}

	res, body = m.do(t, http.MethodPost, "/api/v1/auth/signup", "", api.Credentials{Email: "owner@example.com", Password: operatorPassword})
	mustStatus(t, res, body, http.StatusCreated)
	res, body = m.do(t, http.MethodPost, "/api/v1/auth/login", "", api.Credentials{Email: "owner@example.com", Password: operatorPassword})
	mustStatus(t, res, body, http.StatusOK)
	var found bool
	for _, c := range res.Cookies() {
		if c.Name == "traceless_session" {
			found = true
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("session cookie over TLS = %+v; want Secure, HttpOnly, SameSite=Strict", c)
			}
		}
	}
	if !found {
		t.Error("login set no session cookie")
	}

	// Plain HTTP to the TLS port is refused.
	plain := &http.Client{Timeout: 10 * time.Second}
	if res, err := plain.Get("http://" + m.Addr() + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Error("plain HTTP served on the TLS port")
		}
	}
	m.MustClose(t)
	if strings.Contains(m.stderr.String(), "127.0.0.1:") && strings.Count(m.stderr.String(), "127.0.0.1:") > 1 {
		t.Errorf("the log names client addresses:\n%s", m.stderr)
	}
}
