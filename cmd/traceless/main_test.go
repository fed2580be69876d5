package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

const (
	opEmail    = "op@example.com"
	opPassword = "operator password 1"
	password   = "correct horse battery"
)

// recorder keeps everything clients sent the server: request lines,
// headers and bodies.
type recorder struct {
	mu   sync.Mutex
	sent bytes.Buffer
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		r.mu.Lock()
		r.sent.WriteString(req.Method + " " + req.URL.String() + "\n")
		req.Header.Write(&r.sent)
		r.sent.Write(body)
		r.sent.WriteString("\n")
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) contains(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Contains(r.sent.String(), s)
}

// newServer starts the real control plane with an operator account and
// isolates the CLI's config directory and environment. Each opt may change
// the server's options.
func newServer(t *testing.T, opts ...func(*controlplane.Options)) (string, *recorder) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: filepath.Join(t.TempDir(), "t.db")})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	o := controlplane.Options{Store: st, Argon2: controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1}}
	for _, opt := range opts {
		opt(&o)
	}
	srv, err := controlplane.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	rec := &recorder{}
	hs := httptest.NewServer(rec.wrap(srv.Handler()))
	t.Cleanup(hs.Close)
	if _, err := srv.Bootstrap(ctx, opEmail, opPassword, hs.URL); err != nil {
		t.Fatal(err)
	}
	isolate(t)
	return hs.URL, rec
}

func isolate(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv(envServer, "")
	t.Setenv(envToken, "")
	t.Setenv(envAPIKey, "")
}

type result struct {
	code           int
	stdout, stderr string
}

// cli runs the command in-process with stdin and returns what it printed.
func cliRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// ok runs the command and fails the test unless it exits 0.
func ok(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	r := cliRun(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("traceless %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	return v
}

func TestOwnerWalkthrough(t *testing.T) {
	url, rec := newServer(t)
	s := "--server=" + url

	ok(t, password, s, "signup", "--email", "bob@example.com", "--password-stdin")
	ok(t, "", s, "logout")

	// Scripted login: email and password as two lines of stdin.
	r := ok(t, "bob@example.com\n"+password+"\n", s, "login")
	if !strings.Contains(r.stdout, "bob@example.com") || strings.Contains(r.stdout+r.stderr, password) {
		t.Fatalf("login output: %q %q", r.stdout, r.stderr)
	}
	tokenFile := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "traceless", "token")
	checkMode(t, tokenFile, 0o600)
	checkMode(t, filepath.Dir(tokenFile), 0o700|fs.ModeDir)

	me := decode[api.Owner](t, ok(t, "", s, "me", "-o", "json"))
	if me.Email != "bob@example.com" || me.Plan != "free" {
		t.Fatalf("me: %+v", me)
	}
	if r := ok(t, "", s, "me"); !strings.Contains(r.stdout, "EMAIL") || !strings.Contains(r.stdout, "bob@example.com") {
		t.Fatalf("me text: %s", r.stdout)
	}
	plans := decode[[]api.Plan](t, ok(t, "", s, "plans", "list", "--output=json"))
	if len(plans) < 2 {
		t.Fatalf("plans: %+v", plans)
	}
	ok(t, "", s, "plan", "set", "pro")

	app := decode[api.App](t, ok(t, "", s, "apps", "create", "demo", "-o", "json"))
	if r := ok(t, "", s, "apps", "list"); !strings.Contains(r.stdout, app.ID) || !strings.Contains(r.stdout, "demo") {
		t.Fatalf("apps list: %s", r.stdout)
	}
	ok(t, "", s, "apps", "rename", "demo", "demo2")
	if got := decode[api.App](t, ok(t, "", s, "apps", "get", app.ID, "-o", "json")); got.Name != "demo2" {
		t.Fatalf("apps get: %+v", got)
	}

	r = ok(t, "", s, "keys", "create", "demo2", "backend", "-o", "json")
	key := decode[api.APIKeyCreated](t, r)
	if !strings.HasPrefix(key.Key, "tlk_") || !strings.Contains(r.stderr, "only once") {
		t.Fatalf("keys create: %+v, stderr %q", key, r.stderr)
	}
	r = ok(t, "", s, "keys", "list", app.ID)
	if !strings.Contains(r.stdout, key.Prefix) || strings.Contains(r.stdout, key.Key) {
		t.Fatalf("keys list: %s", r.stdout)
	}

	k := "--api-key=" + key.Key
	r = ok(t, "", s, k, "devices", "register", "--generate", "--external-ref", "user-1", "-o", "json")
	var gen struct {
		api.DeviceCreated
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &gen); err != nil {
		t.Fatal(err)
	}
	priv, err := wgtypes.ParseKey(gen.PrivateKey)
	if err != nil || priv.PublicKey().String() != gen.PublicKey || gen.ExternalRef == nil || *gen.ExternalRef != "user-1" {
		t.Fatalf("register --generate: %+v (%v)", gen, err)
	}
	if !strings.Contains(r.stderr, "never sent") {
		t.Fatalf("no warning: %q", r.stderr)
	}

	// Text output, the key from the environment, the private key to a file.
	t.Setenv(envAPIKey, key.Key)
	keyFile := filepath.Join(t.TempDir(), "device.key")
	r = ok(t, "", s, "devices", "register", "--generate", "--private-key-file", keyFile)
	checkMode(t, keyFile, 0o600)
	priv2b, _ := os.ReadFile(keyFile)
	priv2, err := wgtypes.ParseKey(strings.TrimSpace(string(priv2b)))
	if err != nil || strings.Contains(r.stdout, priv2.String()) || !strings.Contains(r.stdout, priv2.PublicKey().String()) {
		t.Fatalf("register --private-key-file: %v\n%s", err, r.stdout)
	}
	t.Setenv(envAPIKey, "")

	pub := randomPublic(t)
	ok(t, "", s, k, "devices", "register", "--public-key", pub)
	r = cliRun(t, "", s, k, "devices", "register", "--public-key", pub)
	if r.code != 1 || r.stderr != "traceless: conflict: this public key is already registered\n" {
		t.Fatalf("duplicate: %+v", r)
	}

	devs := decode[[]api.Device](t, ok(t, "", s, k, "devices", "list", "--page-size", "1", "-o", "json"))
	if len(devs) != 3 {
		t.Fatalf("devices list: %+v", devs)
	}
	if r := ok(t, "", s, k, "devices", "list"); !strings.Contains(r.stdout, gen.ID) || !strings.Contains(r.stdout, "user-1") {
		t.Fatalf("devices list text: %s", r.stdout)
	}
	if d := decode[api.Device](t, ok(t, "", s, k, "devices", "get", gen.ID, "-o", "json")); d.PublicKey != gen.PublicKey {
		t.Fatalf("devices get: %+v", d)
	}

	// Config: no node exists yet, and the CLI says why; an unknown node is
	// rejected.
	r = cliRun(t, "", s, k, "devices", "config", gen.ID)
	if r.code != 1 || !strings.Contains(r.stderr, "no server to write a config for: ") {
		t.Fatalf("config without nodes: %+v", r)
	}
	r = cliRun(t, "", s, k, "devices", "config", gen.ID, "--node", "00000000-0000-0000-0000-000000000000")
	if r.code != 1 || !strings.Contains(r.stderr, "traceless: invalid_request: ") {
		t.Fatalf("config with an unknown node: %+v", r)
	}
	if decode[[]api.Server](t, ok(t, "", s, k, "servers", "list", "-o", "json")) == nil {
		t.Fatal("servers list printed null")
	}

	r = ok(t, "", s, k, "devices", "rotate", gen.ID, "--generate", "-o", "json")
	var rot struct {
		api.DeviceCreated
		PrivateKey string `json:"private_key"`
	}
	json.Unmarshal([]byte(r.stdout), &rot)
	if rot.ID != gen.ID || rot.PublicKey == gen.PublicKey || rot.IPv4 == gen.IPv4 || rot.PrivateKey == "" {
		t.Fatalf("rotate: %+v", rot)
	}

	ok(t, "", s, k, "devices", "delete", gen.ID)
	r = cliRun(t, "", s, k, "devices", "get", gen.ID)
	if r.code != 1 || r.stderr != "traceless: not_found: not found\n" {
		t.Fatalf("get after delete: %+v", r)
	}

	// The private keys generated here never reached the server.
	for _, secret := range []string{gen.PrivateKey, priv2.String(), rot.PrivateKey} {
		if rec.contains(secret) {
			t.Fatal("a private key generated by the CLI was sent to the server")
		}
	}
	if !rec.contains(gen.PublicKey) {
		t.Fatal("the recorder saw nothing")
	}

	ok(t, "", s, "keys", "revoke", app.ID, key.ID)
	if r := cliRun(t, "", s, k, "devices", "list"); r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: unauthorized: ") {
		t.Fatalf("revoked key: %+v", r)
	}
	if r := cliRun(t, "", s, "apps", "delete", app.ID); r.code != 2 {
		t.Fatalf("apps delete without --yes: %+v", r)
	}
	ok(t, "", s, "apps", "delete", app.ID, "--yes")

	ok(t, "", s, "logout")
	if _, err := os.Stat(tokenFile); !os.IsNotExist(err) {
		t.Fatalf("token file after logout: %v", err)
	}
	if r := cliRun(t, "", s, "me"); r.code != 1 || !strings.Contains(r.stderr, "not logged in") {
		t.Fatalf("me after logout: %+v", r)
	}
}

func TestBadCredentials(t *testing.T) {
	url, _ := newServer(t)
	r := cliRun(t, "wrong password 123\n", "--server", url, "login", "--email", opEmail, "--password-stdin")
	if r.code != 1 || r.stderr != "traceless: unauthorized: wrong email or password\n" || r.stdout != "" {
		t.Fatalf("bad login: %+v", r)
	}
	r = cliRun(t, "", "--server", url, "signup", "--email", "x@example.com", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "required") {
		t.Fatalf("empty password: %+v", r)
	}
	r = cliRun(t, "short\n", "--server", url, "signup", "--email", "x@example.com", "--password-stdin")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: invalid_request: ") || !strings.Contains(r.stderr, "(password)") {
		t.Fatalf("weak password: %+v", r)
	}
	t.Setenv(envToken, "bogus")
	r = cliRun(t, "", "--server", url, "me")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: unauthorized: ") || strings.Contains(r.stderr, "bogus") {
		t.Fatalf("bogus token: %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{
		{"no-such-command"},
		{"apps", "nope"},
		{"--no-such-flag"},
		{"-o", "yaml", "plans", "list"},
		{"apps", "get"},
		{"--api-key=tlk_x", "devices", "register"},
		{"--api-key=tlk_x", "devices", "register", "--generate", "--public-key", "x"},
		{"--api-key=tlk_x", "devices", "register", "--public-key", "not-a-key"},
		{"login", "--password-stdin"},
		{"--server", "ftp://x", "plans", "list"},
	} {
		r := cliRun(t, "", args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "traceless: ") {
			t.Errorf("traceless %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	r := cliRun(t, "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "devices") || !strings.Contains(r.stdout, "--server") {
		t.Fatalf("help: %+v", r)
	}
	// Unreachable server: exit 1 with the network error.
	r = cliRun(t, "", "--server", "http://127.0.0.1:1", "plans", "list")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: GET /api/v1/plans: ") {
		t.Fatalf("unreachable: %+v", r)
	}
}

func TestAdmin(t *testing.T) {
	url, _ := newServer(t)
	s := "--server=" + url
	ok(t, password, s, "signup", "--email", "carol@example.com", "--password-stdin")
	if r := cliRun(t, "", s, "admin", "plans", "list"); r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: forbidden: ") {
		t.Fatalf("owner on admin: %+v", r)
	}
	ok(t, opPassword, s, "login", "--email", opEmail, "--password-stdin")

	p := decode[api.Plan](t, ok(t, "", s, "admin", "plans", "create", "--slug", "team", "--name", "Team",
		"--max-apps", "3", "--max-devices", "50", "--price-cents", "1900", "-o", "json"))
	if p.Slug != "team" || p.MaxApps != 3 || p.PriceCents != 1900 {
		t.Fatalf("create: %+v", p)
	}
	p = decode[api.Plan](t, ok(t, "", s, "admin", "plans", "update", "team", "--max-apps", "4", "--retired", "-o", "json"))
	if p.MaxApps != 4 || !p.Retired || p.MaxDevices != 50 || p.Name != "Team" {
		t.Fatalf("update kept the other fields? %+v", p)
	}
	if r := ok(t, "", s, "admin", "plans", "list"); !strings.Contains(r.stdout, "team") || !strings.Contains(r.stdout, "19.00 EUR") {
		t.Fatalf("list: %s", r.stdout)
	}
	// The server's refusal of an update reaches the exit code and stderr;
	// nothing is printed as if it had succeeded.
	r := cliRun(t, "", s, "admin", "plans", "update", "team", "--pool", "Frankfurt")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: invalid_request: ") || r.stdout != "" {
		t.Fatalf("update refused by the server: %+v", r)
	}
	r = cliRun(t, "", s, "admin", "plans", "update", "team", "--pool", "Frankfurt", "-o", "json")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "traceless: invalid_request: ") || r.stdout != "" {
		t.Fatalf("update refused by the server, JSON: %+v", r)
	}
	ok(t, "", s, "admin", "plans", "delete", "team")
	if r := cliRun(t, "", s, "admin", "plans", "delete", "team"); r.code != 1 {
		t.Fatalf("delete twice: %+v", r)
	}

	owners := decode[[]api.Owner](t, ok(t, "", s, "admin", "owners", "list", "--page-size", "1", "-o", "json"))
	if len(owners) != 2 {
		t.Fatalf("owners: %+v", owners)
	}
	o := decode[api.Owner](t, ok(t, "", s, "admin", "owners", "update", "carol@example.com", "--legal-hold", "case 9", "-o", "json"))
	if o.LegalHold == nil || *o.LegalHold != "case 9" {
		t.Fatalf("hold: %+v", o)
	}
	o = decode[api.Owner](t, ok(t, "", s, "admin", "owners", "update", o.ID, "--release-hold", "--plan", "pro", "-o", "json"))
	if o.LegalHold != nil || o.Plan != "pro" {
		t.Fatalf("release: %+v", o)
	}
	if r := cliRun(t, "", s, "admin", "owners", "update", o.ID); r.code != 2 {
		t.Fatalf("update without flags: %+v", r)
	}
	if r := cliRun(t, "", s, "admin", "owners", "update", o.ID, "--legal-hold", "x", "--release-hold"); r.code != 2 {
		t.Fatalf("hold and release: %+v", r)
	}
}

// TestSessionPerServer checks that a saved session is only sent to the
// server that issued it.
func TestSessionPerServer(t *testing.T) {
	url, _ := newServer(t)
	ok(t, password, "--server", url, "signup", "--email", "dan@example.com", "--password-stdin")
	var sawAuth bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth = sawAuth || r.Header.Get("Authorization") != ""
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer other.Close()
	r := cliRun(t, "", "--server", other.URL, "me")
	if r.code != 1 || !strings.Contains(r.stderr, "not logged in") || sawAuth {
		t.Fatalf("other server: %+v, sent a token: %v", r, sawAuth)
	}
	ok(t, "", "--server", url+"/", "me")

	// An expired session is reported, and logout still forgets it.
	if _, err := saveSession(session{Server: url, Token: "old", ExpiresAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if r := cliRun(t, "", "--server", url, "me"); r.code != 1 || !strings.Contains(r.stderr, "expired") {
		t.Fatalf("expired session: %+v", r)
	}
	ok(t, "", "--server", url, "logout")
	if _, found, _ := loadSession(); found {
		t.Fatal("logout kept the expired session")
	}
}

func checkMode(t *testing.T, p string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != want {
		t.Fatalf("%s: mode %v, want %v", p, fi.Mode(), want)
	}
}

func randomPublic(t *testing.T) string {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().String()
}
