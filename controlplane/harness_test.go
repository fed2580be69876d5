package controlplane

// The in-process harness: a real Server on a real SQLite store in
// t.TempDir(), served by httptest, with its log captured in a buffer and
// its clock under the test's control. Tests in this package build on it;
// see newHarness.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// cheapArgon2 keeps password hashing fast in tests that do not test it.
var cheapArgon2 = Argon2Params{Memory: 64, Time: 1, Threads: 1}

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock(t time.Time) *testClock { return &testClock{t: t} }

// Now returns the clock's time.
func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer is a goroutine-safe io.Writer that keeps everything logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything logged so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Len is the number of bytes logged so far; pass it to Since.
func (l *logBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// Since returns what was logged after offset.
func (l *logBuffer) Since(offset int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b.Bytes()[offset:])
}

// MustParseLogLines decodes JSON log lines.
func MustParseLogLines(tb testing.TB, s string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			tb.Fatalf("log line is not JSON: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

// logKeys returns the sorted keys of a log line.
func logKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// harness is one control plane under test.
type harness struct {
	tb      testing.TB
	srv     *Server
	store   *store.Store
	ts      *httptest.Server
	clock   *testClock
	logs    *logBuffer
	opts    Options
	dbPath  string
	welcome string // what the first Bootstrap said (holds the setup link)

	addrs atomic.Int64 // source of distinct client addresses
	seq   atomic.Int64 // source of distinct emails
}

// harnessStart is the fake clock's starting time. It lies in the past so
// that anything computed from the real clock instead shows up as wrong.
var harnessStart = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// MustOpenStore opens a migrated SQLite store in tb.TempDir(), closed at
// cleanup.
func MustOpenStore(tb testing.TB) (*store.Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "t.db")
	st, err := store.Open(context.Background(), store.Config{Driver: store.DriverSQLite, DSN: path})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	return st, path
}

// MustNew builds a Server and closes it at cleanup (before the store,
// which was opened earlier).
func MustNew(tb testing.TB, opts Options) *Server {
	tb.Helper()
	srv, err := New(opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

// newHarness starts a Server with cheap argon2, a fake clock and a JSON
// logger writing into a buffer, seeds the plans through Bootstrap (which
// arms a setup link, kept in h.welcome) and serves it with httptest.
// Each mod may change the Options before New.
func newHarness(tb testing.TB, mods ...func(*Options)) *harness {
	tb.Helper()
	return newHarnessListening(tb, nil, mods...)
}

// newHarnessListening is newHarness serving on ln (a fresh loopback port when
// nil), for tests that must know the server's URL before it starts.
func newHarnessListening(tb testing.TB, ln net.Listener, mods ...func(*Options)) *harness {
	tb.Helper()
	st, path := MustOpenStore(tb)
	h := &harness{tb: tb, store: st, dbPath: path, clock: newTestClock(harnessStart), logs: &logBuffer{}}
	key := make([]byte, 32)
	rand.Read(key)
	h.opts = Options{
		Store:      st,
		Logger:     slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        h.clock.Now,
		SessionKey: key,
		Argon2:     cheapArgon2,
		Version:    "test",
	}
	for _, m := range mods {
		m(&h.opts)
	}
	h.store = h.opts.Store // a mod may bring a store of its own
	srv := MustNew(tb, h.opts)
	h.srv = srv
	h.ts = httptest.NewUnstartedServer(srv.Handler())
	if ln != nil {
		h.ts.Listener.Close()
		h.ts.Listener = ln
	}
	h.ts.Start()
	tb.Cleanup(h.ts.Close)
	var err error
	h.welcome, err = srv.Bootstrap(context.Background(), "", "", h.ts.URL)
	if err != nil {
		tb.Fatalf("Bootstrap: %v", err)
	}
	return h
}

// setupTokenRE finds the token in Bootstrap's message.
var setupTokenRE = regexp.MustCompile(`/setup\?token=([A-Za-z0-9_-]+)`)

// SetupToken returns the one-time token of the setup link Bootstrap printed.
func (h *harness) SetupToken() string {
	h.tb.Helper()
	m := setupTokenRE.FindStringSubmatch(h.welcome)
	if m == nil {
		h.tb.Fatalf("no setup link in Bootstrap's message %q", h.welcome)
	}
	return m[1]
}

// request is one HTTP request to the harness.
type request struct {
	Method, Path string
	// Body is sent as is when a string or []byte and JSON-encoded otherwise.
	Body any
	// ContentType defaults to application/json when there is a body; "-"
	// sends none.
	ContentType string
	Token       string       // sent as "Authorization: Bearer"
	Cookie      *http.Cookie // sent as a cookie
	Header      map[string]string
	// RemoteAddr is the client address for Serve (default: a fresh one).
	RemoteAddr string
}

// response is what came back.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Cookies parses the response's Set-Cookie headers.
func (r response) Cookies() []*http.Cookie {
	return (&http.Response{Header: r.Header}).Cookies()
}

// SessionCookie returns the session cookie the response set, or nil.
func (r response) SessionCookie() *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// MustDecode decodes the JSON body into v.
func (r response) MustDecode(tb testing.TB, v any) {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		tb.Fatalf("decode %T from %d response: %v\n%s", v, r.Status, err, r.Body)
	}
}

// MustError decodes an api.ErrorBody.
func (r response) MustError(tb testing.TB) api.Error {
	tb.Helper()
	var eb api.ErrorBody
	r.MustDecode(tb, &eb)
	return eb.Error
}

// wantErr is the status, code and field of an expected error response.
type wantErr struct {
	Status int
	Code   string
	Field  string
}

// MustHaveError fails unless r is the error want.
func (r response) MustHaveError(tb testing.TB, want wantErr) {
	tb.Helper()
	if r.Status != want.Status {
		tb.Fatalf("status = %d, want %d; body %s", r.Status, want.Status, r.Body)
	}
	e := r.MustError(tb)
	got := wantErr{Status: r.Status, Code: e.Code, Field: e.Field}
	if diff := cmp.Diff(want, got); diff != "" {
		tb.Fatalf("error mismatch (-want +got):\n%s\nmessage: %q", diff, e.Message)
	}
	if e.Message == "" {
		tb.Fatalf("error %s has no message", e.Code)
	}
}

// MustStatus fails unless r has the status want.
func (r response) MustStatus(tb testing.TB, want int) response {
	tb.Helper()
	if r.Status != want {
		tb.Fatalf("status = %d, want %d; body %s", r.Status, want, r.Body)
	}
	return r
}

func (q request) body(tb testing.TB) (io.Reader, string) {
	tb.Helper()
	var b []byte
	switch v := q.Body.(type) {
	case nil:
		return nil, q.ContentType
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			tb.Fatalf("encode body: %v", err)
		}
	}
	switch ct := q.ContentType; ct {
	case "":
		return bytes.NewReader(b), "application/json"
	case "-":
		return bytes.NewReader(b), ""
	default:
		return bytes.NewReader(b), ct
	}
}

func (q request) decorate(r *http.Request, ct string) {
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if q.Token != "" {
		r.Header.Set("Authorization", "Bearer "+q.Token)
	}
	if q.Cookie != nil {
		r.AddCookie(q.Cookie)
	}
	for k, v := range q.Header {
		r.Header.Set(k, v)
	}
}

// Do sends q over TCP to the httptest server (client address 127.0.0.1).
func (h *harness) Do(q request) response {
	h.tb.Helper()
	body, ct := q.body(h.tb)
	req, err := http.NewRequest(q.Method, h.ts.URL+q.Path, body)
	if err != nil {
		h.tb.Fatalf("new request: %v", err)
	}
	q.decorate(req, ct)
	c := h.ts.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Do(req)
	if err != nil {
		h.tb.Fatalf("%s %s: %v", q.Method, q.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.tb.Fatalf("read body: %v", err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// NextAddr returns a client address no earlier request used.
func (h *harness) NextAddr() string {
	n := h.addrs.Add(1)
	return fmt.Sprintf("192.0.2.%d:%d", n%250+1, 1024+n)
}

// Serve sends q in process through srv.Handler().ServeHTTP, which lets it
// choose the client address (a fresh one unless q.RemoteAddr is set).
func (h *harness) Serve(q request) response {
	h.tb.Helper()
	body, ct := q.body(h.tb)
	req := httptest.NewRequest(q.Method, q.Path, body)
	req.RemoteAddr = q.RemoteAddr
	if req.RemoteAddr == "" {
		req.RemoteAddr = h.NextAddr()
	}
	q.decorate(req, ct)
	rec := httptest.NewRecorder()
	h.srv.Handler().ServeHTTP(rec, req)
	res := rec.Result()
	return response{Status: res.StatusCode, Header: res.Header, Body: rec.Body.Bytes()}
}

// NewEmail returns an address no other account in the harness uses.
func (h *harness) NewEmail() string {
	return fmt.Sprintf("owner%d@example.com", h.seq.Add(1))
}

// testPassword passes the password policy for any harness email.
const testPassword = "correct horse battery staple"

// MustSignup creates an owner account (from a fresh client address, so the
// signup rate limit never interferes) and returns the response.
func (h *harness) MustSignup(email, password string) api.AuthResponse {
	h.tb.Helper()
	r := h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/signup", Body: api.Credentials{Email: email, Password: password}})
	r.MustStatus(h.tb, http.StatusCreated)
	var ar api.AuthResponse
	r.MustDecode(h.tb, &ar)
	return ar
}

// MustOwner signs up a new owner with testPassword.
func (h *harness) MustOwner() api.AuthResponse {
	h.tb.Helper()
	return h.MustSignup(h.NewEmail(), testPassword)
}

// MustLogin signs in (from a fresh client address).
func (h *harness) MustLogin(email, password string) api.AuthResponse {
	h.tb.Helper()
	r := h.Serve(request{Method: http.MethodPost, Path: "/api/v1/auth/login", Body: api.Credentials{Email: email, Password: password}})
	r.MustStatus(h.tb, http.StatusOK)
	var ar api.AuthResponse
	r.MustDecode(h.tb, &ar)
	return ar
}

// adminEmail and adminPassword are the operator MustAdmin creates.
const (
	adminEmail    = "operator@example.net"
	adminPassword = "blue giraffe tangerine 42"
)

// MustAdmin creates the operator through Bootstrap and signs in as it.
func (h *harness) MustAdmin() api.AuthResponse {
	h.tb.Helper()
	msg, err := h.srv.Bootstrap(context.Background(), adminEmail, adminPassword, h.ts.URL)
	if err != nil {
		h.tb.Fatalf("Bootstrap with an operator: %v", err)
	}
	if !strings.Contains(msg, adminEmail) {
		h.tb.Fatalf("Bootstrap did not create the operator (an operator exists already?): %q", msg)
	}
	ar := h.MustLogin(adminEmail, adminPassword)
	if ar.Owner.Role != store.RoleAdmin {
		h.tb.Fatalf("operator role = %q", ar.Owner.Role)
	}
	return ar
}

// OwnerCount returns the number of accounts in the store.
func (h *harness) OwnerCount() int64 {
	h.tb.Helper()
	st, err := h.store.Stats(context.Background())
	if err != nil {
		h.tb.Fatalf("stats: %v", err)
	}
	return st.Owners
}

// MustPlans returns the catalogue straight from the store, retired included.
func (h *harness) MustPlans() []store.PlanWithPools {
	h.tb.Helper()
	plans, err := h.store.ListPlans(context.Background(), true)
	if err != nil {
		h.tb.Fatalf("list plans: %v", err)
	}
	return plans
}

// MustPlanID returns the ID of the plan with slug.
func (h *harness) MustPlanID(slug string) string {
	h.tb.Helper()
	p, err := h.store.GetPlanBySlug(context.Background(), slug)
	if err != nil {
		h.tb.Fatalf("plan %q: %v", slug, err)
	}
	return p.ID
}

// MustGetOwner reads an account straight from the store.
func (h *harness) MustGetOwner(id string) store.Owner {
	h.tb.Helper()
	o, err := h.store.GetOwner(context.Background(), id)
	if err != nil {
		h.tb.Fatalf("get owner: %v", err)
	}
	return o
}
