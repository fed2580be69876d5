package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is the client's version, sent in the default User-Agent.
const Version = "0.1.0"

// Defaults of a new Client.
const (
	// DefaultTimeout bounds each attempt of a request.
	DefaultTimeout = 30 * time.Second
	// DefaultRetries is how often a failed idempotent request is repeated.
	DefaultRetries = 3
	// MaxResponseBytes bounds every response body read, QR codes included,
	// except the account export's.
	MaxResponseBytes = 4 << 20
	// MaxExportBytes bounds the body of the account export (ExportMe),
	// which lists every device of the account.
	MaxExportBytes = 256 << 20
	// maxRetryAfter is the longest Retry-After the client waits out by
	// itself; a longer one is returned to the caller.
	maxRetryAfter = time.Minute
)

// ErrResponseTooLarge is wrapped by the *Error of a response whose body
// exceeds MaxResponseBytes (MaxExportBytes for ExportMe).
var ErrResponseTooLarge = errors.New("response body too large")

// Client calls the Traceless HTTP API. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	hc         *http.Client
	userAgent  string
	timeout    time.Duration
	retries    int
	minBackoff time.Duration
	maxBackoff time.Duration

	mu     sync.RWMutex
	token  string
	apiKey string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (http.DefaultClient otherwise). Its
// own Timeout, if any, applies on top of WithTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithToken sets the owner's session token, which the owner and operator
// API need.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithAPIKey sets the provisioning credential: an app's secret key
// ("tlk_…"), a publishable key ("tlp_…"), a registration ticket ("tlt_…")
// or a device token ("tld_…"); see credentials.go for what each may do.
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithUserAgent sets the User-Agent header (default "traceless-go/" +
// Version).
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithTimeout bounds each attempt of a request (default 30s); zero or less
// leaves only the context's deadline.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetries sets how often a failed idempotent request is repeated
// (default 3); zero disables retries. POST requests are never repeated.
func WithRetries(n int) Option { return func(c *Client) { c.retries = max(n, 0) } }

// WithBackoff sets the first and the longest wait between retries (default
// 250ms and 5s). Each wait doubles the last, with jitter.
func WithBackoff(first, longest time.Duration) Option {
	return func(c *Client) {
		if first > 0 {
			c.minBackoff = first
		}
		if longest >= first {
			c.maxBackoff = longest
		}
	}
}

// New returns a Client for the API at baseURL, such as
// "https://vpn.example.com". A path in baseURL is kept as a prefix.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		// The parse error would repeat the URL, which may hold a password.
		return nil, fmt.Errorf("client: invalid base URL: %w", transportError(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("client: base URL must start with http:// or https://")
	case u.Host == "":
		return nil, errors.New("client: base URL has no host")
	case u.User != nil:
		return nil, errors.New("client: base URL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("client: base URL must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{
		base:       u,
		hc:         http.DefaultClient,
		userAgent:  "traceless-go/" + Version,
		timeout:    DefaultTimeout,
		retries:    DefaultRetries,
		minBackoff: 250 * time.Millisecond,
		maxBackoff: 5 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the API's base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Token returns the owner's session token: the one set with WithToken or
// SetToken, or issued by the last Login or Signup.
func (c *Client) Token() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

// SetToken replaces the owner's session token; "" forgets it.
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

// SetAPIKey replaces the app API key; "" forgets it.
func (c *Client) SetAPIKey(key string) {
	c.mu.Lock()
	c.apiKey = key
	c.mu.Unlock()
}

// auth says which credential a route needs.
type auth int

const (
	authNone auth = iota
	authOwner
	authKey
	authGiven // request.credential, for this request only
)

// request is one API call.
type request struct {
	method string
	path   string // escaped, relative to the base URL
	query  url.Values
	auth   auth
	body   any // JSON-encoded when non-nil
	// credential is the bearer of an authGiven request.
	credential string
	accept     string
	noRetry    bool
	// maxBytes bounds the response body; 0 means MaxResponseBytes.
	maxBytes int64
}

// response is a successful answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// idempotent reports whether repeating the request is harmless.
func (r *request) idempotent() bool {
	return r.method != http.MethodPost && r.method != http.MethodPatch
}

// doJSON sends r and decodes a successful answer into out (when non-nil).
func (c *Client) doJSON(ctx context.Context, r *request, out any) error {
	res, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	if out == nil || res.status == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(res.body, out); err != nil {
		return r.fail(res.status, fmt.Errorf("decode response: %w", err))
	}
	return nil
}

// do sends r, retrying idempotent requests on retryable errors.
func (c *Client) do(ctx context.Context, r *request) (*response, error) {
	var payload []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, r.fail(0, fmt.Errorf("encode request: %w", err))
		}
		payload = b
	}
	retries := c.retries
	if !r.idempotent() || r.noRetry {
		retries = 0
	}
	for attempt := 0; ; attempt++ {
		res, e := c.attempt(ctx, r, payload)
		if e == nil {
			return res, nil
		}
		if attempt >= retries || !e.retryable {
			return nil, e
		}
		wait := c.backoff(attempt)
		if e.RetryAfter > 0 {
			if e.RetryAfter > maxRetryAfter {
				return nil, e
			}
			wait = max(wait, e.RetryAfter)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, e
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, r.fail(0, ctx.Err())
		case <-t.C:
		}
	}
}

// backoff is the wait before retry number attempt+1: exponential, capped,
// with jitter over its upper half.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.minBackoff
	for i := 0; i < attempt && d < c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.maxBackoff)
	if half := int64(d / 2); half > 0 {
		return time.Duration(half + rand.Int64N(half+1))
	}
	return d
}

// attempt makes one HTTP exchange.
func (c *Client) attempt(ctx context.Context, r *request, payload []byte) (*response, *Error) {
	if err := ctx.Err(); err != nil {
		return nil, r.fail(0, err)
	}
	actx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := *c.base
	u.RawPath = c.base.EscapedPath() + r.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, r.fail(0, fmt.Errorf("build request: %w", err))
	}
	u.Path = p
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, r.method, u.String(), body)
	if err != nil {
		return nil, r.fail(0, fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("User-Agent", c.userAgent)
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	cred := c.credential(r.auth)
	if r.auth == authGiven {
		cred = r.credential
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, r.fail(0, ctx.Err())
		}
		e := r.fail(0, transportError(err))
		e.retryable = r.idempotent()
		return nil, e
	}
	defer resp.Body.Close()
	limit := r.maxBytes
	if limit <= 0 {
		limit = MaxResponseBytes
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, r.fail(resp.StatusCode, ctx.Err())
		}
		e := r.fail(resp.StatusCode, fmt.Errorf("read response: %w", transportError(err)))
		e.retryable = r.idempotent()
		return nil, e
	}
	if int64(len(b)) > limit {
		return nil, r.fail(resp.StatusCode, ErrResponseTooLarge)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
	}
	return nil, r.apiError(resp, b)
}

// credential returns the token or key the route needs.
func (c *Client) credential(a auth) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	switch a {
	case authOwner:
		return c.token
	case authKey:
		return c.apiKey
	}
	return ""
}

// transportError drops the URL from a *url.Error: the caller knows it, and
// it only repeats what Error already says.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// fail builds the *Error of r.
func (r *request) fail(status int, err error) *Error {
	return &Error{Method: r.method, Path: r.path, Status: status, Err: err}
}

// apiError builds the *Error of an error response.
func (r *request) apiError(resp *http.Response, body []byte) *Error {
	e := r.fail(resp.StatusCode, nil)
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		e.Code = clean(eb.Error.Code, 64)
		e.Message = clean(eb.Error.Message, 1024)
		e.Field = clean(eb.Error.Field, 128)
	} else {
		e.Code = codeForStatus(resp.StatusCode)
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		if e.Message == "" {
			e.Message = "HTTP " + strconv.Itoa(resp.StatusCode)
		}
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		e.retryable = true
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		e.retryable = r.idempotent()
	}
	return e
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// clean strips control characters (a hostile server could send terminal
// escapes) and bounds the length of text from an error body.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
