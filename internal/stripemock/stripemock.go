// Package stripemock starts Stripe's own mock of its API for tests —
// stripe-mock, the binary named by TRACELESS_STRIPE_MOCK (.ci/run builds
// it from tools/testbin) — on a loopback port the test chooses, behind a
// small recording proxy. Without the variable a test skips with the
// reason, or fails when CI=true, because CI must exercise the Stripe
// calls.
//
// stripe-mock checks every request against Stripe's OpenAPI document and
// answers with Stripe's fixtures, but keeps no state: a subscription is
// always active, a customer never owes anything. The proxy lets a test set
// the state Stripe would report (Set), records what the control plane sent
// (Requests), and can make a path fail (Fail).
//
// Only tests import it.
package stripemock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// EnvBinary names the variable holding the path of the stripe-mock binary.
const EnvBinary = "TRACELESS_STRIPE_MOCK"

// Server is one running stripe-mock behind the recording proxy.
type Server struct {
	// URL is the API's base URL (the proxy), for stripe_api_url.
	URL string

	mu        sync.Mutex
	overrides map[string]map[string]any // "METHOD /path" -> top-level fields of the answer
	failing   map[string]bool
	hooks     map[string]*hook
	requests  []Request
}

// hook is a test's function run at each request of one method and path.
type hook struct {
	fn func(n int)
	n  int
}

// Request is one request the proxy forwarded.
type Request struct {
	Method, Path string
	// Form is the request's form body (Stripe's API takes forms) or, for
	// a GET, its query.
	Form url.Values
}

// Start runs stripe-mock and the proxy until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not set, but CI=true: CI must run the billing tests against stripe-mock (.ci/run builds it from tools/testbin)", EnvBinary)
		}
		tb.Skipf("%s not set: the path of a stripe-mock binary (cd tools/testbin && go build -o DIR github.com/stripe/stripe-mock)", EnvBinary)
	}
	if _, err := os.Stat(bin); err != nil {
		tb.Fatalf("%s: %v", EnvBinary, err)
	}
	var addr string
	var lastErr error
	for try := 0; try < 3; try++ {
		if addr, lastErr = start(tb, bin); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("start stripe-mock: %v", lastErr)
	}
	s := &Server{overrides: map[string]map[string]any{}, failing: map[string]bool{}, hooks: map[string]*hook{}}
	target := &url.URL{Scheme: "http", Host: addr}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Del("Accept-Encoding") // answers stay plain, so they can be rewritten
		},
		ModifyResponse: s.rewrite,
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if r.Method == http.MethodGet || r.Method == http.MethodDelete {
			form = r.URL.Query()
		}
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Form: form})
		fail := s.failing[r.Method+" "+r.URL.Path]
		h := s.hooks[r.Method+" "+r.URL.Path]
		n := 0
		if h != nil {
			h.n++
			n = h.n
		}
		s.mu.Unlock()
		if h != nil {
			h.fn(n) // may Set, Fail or change the control plane's state: what happens at Stripe or elsewhere meanwhile
		}
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"type":"invalid_request_error","message":"failing on purpose (stripemock.Fail)"}}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	tb.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// start runs the binary on a free loopback port and waits until it
// accepts connections.
func start(tb testing.TB, bin string) (string, error) {
	// stripe-mock serves HTTPS too, by default on a fixed port: give it a
	// free one of its own so that several can run at once.
	addr, tlsAddr := freePort(), freePort()
	if addr == "" || tlsAddr == "" {
		return "", errors.New("no free loopback port")
	}
	dir := tb.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-http-addr", addr, "-https-addr", tlsAddr)
	logFile, err := os.Create(filepath.Join(dir, "stripe-mock.log"))
	if err != nil {
		cancel()
		return "", err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cancel()
		<-exited
		logFile.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			stop()
			out, _ := os.ReadFile(filepath.Join(dir, "stripe-mock.log"))
			return "", fmt.Errorf("stripe-mock exited: %v\n%s", err, out)
		default:
		}
		// Ready once it says it listens on both of its ports (another
		// process may have taken one of them since freePort chose it: then
		// it says so and exits, and Start chooses again) and answers.
		out, _ := os.ReadFile(filepath.Join(dir, "stripe-mock.log"))
		if bytes.Contains(out, []byte("Listening for HTTP at address: "+addr)) &&
			bytes.Contains(out, []byte("Listening for HTTPS at address: "+tlsAddr)) &&
			!bytes.Contains(out, []byte("error listening")) && probe(addr) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("stripe-mock not listening on %s within 15s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "stripe-mock.log"))
			tb.Logf("stripe-mock's log:\n%s", out)
		}
	})
	return addr, nil
}

// probe reports whether the stripe-mock at addr answers a request as
// stripe-mock does (echoing the customer ID it is asked for).
func probe(addr string) bool {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/customers/cus_probe", nil)
	if err != nil {
		return false
	}
	req.SetBasicAuth("sk_test_probe", "")
	res, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var c struct{ ID string }
	return res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&c) == nil && c.ID == "cus_probe"
}

// freePort returns a loopback address whose port was free a moment ago
// ("" when none could be had).
func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Set makes every answer to method and path (without the query) carry
// fields at its top level, replacing stripe-mock's: the state Stripe
// would report. Setting nil fields removes the override.
func (s *Server) Set(method, path string, fields map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fields == nil {
		delete(s.overrides, method+" "+path)
		return
	}
	s.overrides[method+" "+path] = fields
}

// Fail makes method and path answer a Stripe error (400), or not again
// when fail is false.
func (s *Server) Fail(method, path string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing[method+" "+path] = fail
}

// Hook runs fn at each request of method and path, before it is answered,
// with the request's number (1 for the first since Hook); nil removes it.
// fn may call Set and Fail: it is how a test makes Stripe's state change
// between two requests, or something happen while a request is under way.
func (s *Server) Hook(method, path string, fn func(n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.hooks, method+" "+path)
		return
	}
	s.hooks[method+" "+path] = &hook{fn: fn}
}

// Requests returns the requests forwarded so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// rewrite merges the override of the request's method and path into a
// JSON answer.
func (s *Server) rewrite(res *http.Response) error {
	s.mu.Lock()
	fields := s.overrides[res.Request.Method+" "+res.Request.URL.Path]
	s.mu.Unlock()
	if fields == nil || res.StatusCode != http.StatusOK {
		return nil
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := json.Unmarshal(body, &obj); err != nil {
		return fmt.Errorf("stripemock: answer of %s is not a JSON object: %w", res.Request.URL.Path, err)
	}
	for k, v := range fields {
		obj[k] = v
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(out))
	res.ContentLength = int64(len(out))
	res.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}
