package controlplane_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane"
	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

const (
	oaOperatorEmail    = "op@example.com"
	oaOperatorPassword = "operator password 1"
	oaOwnerPassword    = "correct horse battery staple"
)

// oaServer is a control plane on a fresh SQLite store, bootstrapped with an
// operator account, behind a loopback HTTP server.
type oaServer struct {
	srv    *controlplane.Server
	http   *httptest.Server
	dbPath string
}

func newOAServer(t *testing.T) *oaServer {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "traceless.db")
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, DSN: dbPath})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := controlplane.New(controlplane.Options{Store: st, Argon2: controlplane.Argon2Params{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatalf("controlplane.New: %v", err)
	}
	if _, err := srv.Bootstrap(ctx, oaOperatorEmail, oaOperatorPassword, "http://x"); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &oaServer{srv: srv, http: hs, dbPath: dbPath}
}

// mustLoadOpenAPI fetches GET /api/v1/openapi.json and loads it, checking
// the status and content type.
func mustLoadOpenAPI(t *testing.T, h http.Handler) *openapi3.T {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: status %d, body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET /api/v1/openapi.json: Content-Type %q, want application/json", ct)
	}
	doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("load the document: %v", err)
	}
	return doc
}

var echoParamRE = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// openAPIPath converts an echo route path to OpenAPI form: /:app_id
// becomes /{app_id} and the trailing wildcard /* becomes /{path}.
func openAPIPath(p string) string {
	p = echoParamRE.ReplaceAllString(p, "{$1}")
	if strings.HasSuffix(p, "/*") {
		p = strings.TrimSuffix(p, "*") + "{path}"
	}
	return p
}

// TestOpenAPIRoutes checks that the document and the router agree: every
// registered route is documented with its method, and every documented
// operation is a registered route. Echo's "route not found" entries, which
// groups with middleware register so that their middleware runs for
// unknown paths, are not routes of the API and are skipped. HEAD /healthz
// is registered explicitly and documented like any other route.
func TestOpenAPIRoutes(t *testing.T) {
	s := newOAServer(t)
	doc := mustLoadOpenAPI(t, s.srv.Handler())

	registered := map[string]bool{}
	for _, r := range s.srv.Routes() {
		method, path, ok := strings.Cut(r, " ")
		if !ok {
			t.Fatalf("Routes() returned %q, want \"METHOD /path\"", r)
		}
		if method == echo.RouteNotFound || isDashboardRoute(path) {
			continue
		}
		key := method + " " + openAPIPath(path)
		registered[key] = true
		item := doc.Paths.Value(openAPIPath(path))
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %s is not in the OpenAPI document (echo: %s): add it to operations() in controlplane/openapi_ops.go", key, r)
		}
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if key := method + " " + path; !registered[key] {
				t.Errorf("the OpenAPI document has %s, but no such route is registered", key)
			}
		}
	}
	if len(registered) == 0 {
		t.Fatal("Routes() returned no routes")
	}
}

// dashboardSections are the first path segments of the dashboard's
// server-rendered HTML pages (controlplane/dashboard.go).
var dashboardSections = map[string]bool{
	"login": true, "signup": true, "logout": true, "privacy": true, "apps": true,
	"servers": true, "plan": true, "account": true, "admin": true, "policy": true,
	"pools": true, "nodes": true, "alerts": true,
	"forgot-password": true, "reset-password": true, "verify-email": true,
}

// isDashboardRoute reports whether an echo route path is a dashboard page:
// "/" or a path under one of dashboardSections. Those pages are HTML for
// people, not part of the JSON API, so the OpenAPI document leaves them
// out. The setup page and /static/* are documented and are not dashboard
// routes in this sense. /api/docs, the API reference, is a page that
// renders the document itself.
func isDashboardRoute(path string) bool {
	if path == "/" || path == "/api/docs" {
		return true
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return dashboardSections[first]
}

func TestIsDashboardRoute(t *testing.T) {
	for path, want := range map[string]bool{
		"/": true, "/apps": true, "/apps/:app_id/devices/:device_id/config": true, "/admin/nodes": true, "/login": true,
		"/api/docs": true, "/api/v1/apps": false, "/api/v1/privacy": false, "/agent/v1/peers": false, "/setup": false, "/static/*": false,
		"/healthz": false, "/metrics": false, "/apps-api": false,
	} {
		if got := isDashboardRoute(path); got != want {
			t.Errorf("isDashboardRoute(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestOpenAPIPath(t *testing.T) {
	for in, want := range map[string]string{
		"/healthz":                          "/healthz",
		"/static/*":                         "/static/{path}",
		"/api/v1/apps/:app_id/keys/:key_id": "/api/v1/apps/{app_id}/keys/{key_id}",
		"/api/v1/devices/:device_id/rotate": "/api/v1/devices/{device_id}/rotate",
		"/api/v1/admin/owners/:owner_id":    "/api/v1/admin/owners/{owner_id}",
		"/api/v1/devices/:device_id/config": "/api/v1/devices/{device_id}/config",
		"/api/v1/apps/:app_id":              "/api/v1/apps/{app_id}",
	} {
		if got := openAPIPath(in); got != want {
			t.Errorf("openAPIPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestOpenAPIValid checks that the served document loads and validates,
// and that it carries what the contract promises about itself.
func TestOpenAPIValid(t *testing.T) {
	s := newOAServer(t)
	doc := mustLoadOpenAPI(t, s.srv.Handler())
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document does not validate: %v", err)
	}
	if !doc.IsOpenAPI30() {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	if !strings.Contains(doc.Info.Description, "Changelog") || !strings.Contains(doc.Info.Description, "v1.0 — initial contract") {
		t.Errorf("info.description has no changelog:\n%s", doc.Info.Description)
	}
	if len(doc.Servers) == 0 || doc.Servers[0].URL == "" {
		t.Errorf("servers = %v, want the serving control plane", doc.Servers)
	}
	if doc.Info.License == nil || !strings.HasPrefix(doc.Info.License.URL, "https://") {
		t.Errorf("info.license = %+v, want a name and an https URL", doc.Info.License)
	}
	for _, name := range []string{"ownerBearer", "ownerCookie", "secretKey", "publishableKey", "registrationTicket", "deviceToken"} {
		if doc.Components.SecuritySchemes[name] == nil {
			t.Errorf("security scheme %s is missing", name)
		}
	}
	if ck := doc.Components.SecuritySchemes["ownerCookie"]; ck != nil && (ck.Value.In != "cookie" || ck.Value.Name != "traceless_session") {
		t.Errorf("ownerCookie = %+v, want the traceless_session cookie", ck.Value)
	}
	for status, name := range map[int]string{400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
		409: "Conflict", 413: "PayloadTooLarge", 415: "UnsupportedMediaType", 429: "TooManyRequests", 500: "InternalError"} {
		r := doc.Components.Responses[name]
		if r == nil || r.Value.Content.Get("application/json") == nil ||
			r.Value.Content.Get("application/json").Schema.Ref != "#/components/schemas/ErrorBody" {
			t.Errorf("components.responses.%s (for %d) is missing or has no ErrorBody schema", name, status)
		}
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			if op.OperationID == "" || op.Summary == "" || len(op.Tags) == 0 || op.Security == nil {
				t.Errorf("%s lacks an operationId, summary, tag or security: %+v", key, op)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("operationId %s is used by %s and %s", op.OperationID, prev, key)
			}
			ids[op.OperationID] = key
		}
	}
	// The document is built once: every request gets the same bytes.
	if a, b := fetchOpenAPI(t, s.srv.Handler()), fetchOpenAPI(t, s.srv.Handler()); !bytes.Equal(a, b) {
		t.Error("two requests got different documents")
	}
}

func fetchOpenAPI(t *testing.T, h http.Handler) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/openapi.json", nil))
	return rec.Body.Bytes()
}

// oaClient drives the server and validates every request and response
// against the document.
type oaClient struct {
	t      *testing.T
	base   string
	router routers.Router
	// covered records "operationId status" of every validated response.
	covered map[string]bool
	// auth checks credentials against security schemes (checkCredentials
	// unless set).
	auth openapi3filter.AuthenticationFunc
}

// oaCall is one request.
type oaCall struct {
	method, path string
	token        string       // Authorization: Bearer
	cookie       *http.Cookie // instead of a bearer token
	contentType  string       // default application/json when body is set
	body         any          // marshalled as JSON unless []byte
	want         int
	// wantOneOf replaces want when the status may be one of several.
	wantOneOf []int
	// nonConforming marks a request that breaks the document on purpose
	// (to see the server's error); it must fail request validation.
	nonConforming bool
	// wantCode is the expected error code of an error response.
	wantCode string
}

// oaResult is a validated response.
type oaResult struct {
	status int
	header http.Header
	body   []byte
}

func (r oaResult) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r oaResult) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func newOAClient(t *testing.T, s *oaServer) *oaClient {
	t.Helper()
	doc := mustLoadOpenAPI(t, s.srv.Handler())
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document does not validate: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("gorillamux.NewRouter: %v", err)
	}
	return &oaClient{t: t, base: s.http.URL, router: router, covered: map[string]bool{}}
}

func (q oaCall) request(base string) (*http.Request, error) {
	var body []byte
	switch b := q.body.(type) {
	case nil:
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequest(q.method, base+q.path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if q.body != nil {
		ct := q.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	if q.cookie != nil {
		req.AddCookie(q.cookie)
	}
	return req, nil
}

// checkCredentials is the AuthenticationFunc of request validation: the
// request must carry what the security scheme names.
func checkCredentials(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	auth := req.Header.Get("Authorization")
	tok, isBearer := strings.CutPrefix(auth, "Bearer ")
	switch in.SecuritySchemeName {
	case "ownerBearer":
		if !isBearer || tok == "" || strings.HasPrefix(tok, "tlk_") || strings.HasPrefix(tok, "tlp_") ||
			strings.HasPrefix(tok, "tlt_") || strings.HasPrefix(tok, "tld_") {
			return errors.New("no owner bearer token")
		}
	case "secretKey", "publishableKey", "registrationTicket", "deviceToken":
		prefix := map[string]string{"secretKey": "tlk_", "publishableKey": "tlp_", "registrationTicket": "tlt_", "deviceToken": "tld_"}
		if !isBearer || !strings.HasPrefix(tok, prefix[in.SecuritySchemeName]) {
			return errors.New("no " + in.SecuritySchemeName)
		}
	case "ownerCookie":
		if _, err := req.Cookie(in.SecurityScheme.Name); err != nil {
			return errors.New("no session cookie")
		}
	default:
		return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
	}
	return nil
}

func (c *oaClient) authFunc() openapi3filter.AuthenticationFunc {
	if c.auth != nil {
		return c.auth
	}
	return checkCredentials
}

// errNoCredential is a request without the credential a scheme names.
var errNoCredential = errors.New("no credential for the scheme")

// compactJSON is json.Compact.
func compactJSON(dst *bytes.Buffer, src []byte) error { return json.Compact(dst, src) }

// do sends q, checks the status and validates request and response.
func (c *oaClient) do(q oaCall) oaResult {
	t := c.t
	t.Helper()
	name := q.method + " " + q.path
	ctx := context.Background()

	vreq, err := q.request(c.base)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s: not in the document: %v", name, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: c.authFunc()}}
	err = openapi3filter.ValidateRequest(ctx, in)
	switch {
	case q.nonConforming && err == nil:
		t.Errorf("%s: request conforms to the document, but the test meant it not to", name)
	case !q.nonConforming && err != nil:
		t.Errorf("%s: request does not conform to the document: %v", name, err)
	}

	req, err := q.request(c.base)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read body: %v", name, err)
	}
	if q.want != 0 && resp.StatusCode != q.want || q.want == 0 && !slices.Contains(q.wantOneOf, resp.StatusCode) {
		t.Fatalf("%s: status %d, want %d%v; body %s", name, resp.StatusCode, q.want, q.wantOneOf, body)
	}
	if q.wantCode != "" {
		var eb api.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != q.wantCode {
			t.Errorf("%s: body %s, want error code %s", name, body, q.wantCode)
		}
	}

	in.Request = vreq
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	})
	if err != nil {
		t.Errorf("%s: response %d does not conform to the document: %v\nbody: %.500s", name, resp.StatusCode, err, body)
	}
	c.covered[fmt.Sprintf("%s %d", route.Operation.OperationID, resp.StatusCode)] = true
	return oaResult{status: resp.StatusCode, header: resp.Header, body: body}
}

// newWGKey returns a random WireGuard-shaped public key.
func newWGKey(t *testing.T) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

func init() {
	// Non-JSON bodies the flow receives, validated as strings.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/css", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("image/png", openapi3filter.FileBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/openmetrics-text", openapi3filter.PlainBodyDecoder)
}

// TestOpenAPIResponsesConform drives a realistic flow over a real server
// and validates every request and response, error bodies included,
// against the served document.
func TestOpenAPIResponsesConform(t *testing.T) {
	s := newOAServer(t)
	c := newOAClient(t, s)

	oaPublic(t, c)
	op := oaOperatorLogin(t, c)
	owner, ownerID := oaOwnerAccount(t, c)
	appID, key := oaApps(t, c, owner)
	poolNode := oaAddServer(t, s, ownerID)
	oaDevices(t, c, key, owner, poolNode)
	oaAdmin(t, c, op, owner, ownerID)
	oaTeardown(t, c, owner, appID)

	var covered []string
	for k := range c.covered {
		covered = append(covered, k)
	}
	slices.Sort(covered)
	t.Logf("validated %d operation/status pairs:\n%s", len(covered), strings.Join(covered, "\n"))
}

func oaPublic(t *testing.T, c *oaClient) {
	c.do(oaCall{method: "GET", path: "/healthz", want: 200})
	c.do(oaCall{method: "HEAD", path: "/healthz", want: 200})
	c.do(oaCall{method: "GET", path: "/metrics", want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/privacy", want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/openapi.json", want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/plans", want: 200})
	c.do(oaCall{method: "GET", path: "/static/style.css", want: 200})
	c.do(oaCall{method: "GET", path: "/static/nope.css", want: 404, wantCode: api.CodeNotFound})
	// An operator exists, so the setup page is gone and the token is dead.
	c.do(oaCall{method: "GET", path: "/setup", want: 410})
	c.do(oaCall{method: "POST", path: "/setup", contentType: "application/x-www-form-urlencoded",
		body: []byte(url.Values{"token": {"x"}, "email": {"a@example.com"}, "password": {"whatever it is"}}.Encode()), want: 410})
	c.do(oaCall{method: "POST", path: "/api/v1/setup", want: 403, wantCode: api.CodeForbidden,
		body: api.Setup{Token: "not-the-token", Email: "a@example.com", Password: "a long password here"}})
}

func oaOperatorLogin(t *testing.T, c *oaClient) string {
	var ar api.AuthResponse
	c.do(oaCall{method: "POST", path: "/api/v1/auth/login", want: 200,
		body: api.Credentials{Email: oaOperatorEmail, Password: oaOperatorPassword}}).decode(t, &ar)
	if ar.Owner.Role != "admin" {
		t.Fatalf("operator role = %q", ar.Owner.Role)
	}
	return ar.Token
}

// oaOwnerAccount signs an owner up and exercises the account routes.
func oaOwnerAccount(t *testing.T, c *oaClient) (token, ownerID string) {
	creds := api.Credentials{Email: "owner@example.com", Password: oaOwnerPassword}
	var ar api.AuthResponse
	res := c.do(oaCall{method: "POST", path: "/api/v1/auth/signup", body: creds, want: 201})
	res.decode(t, &ar)
	c.do(oaCall{method: "POST", path: "/api/v1/auth/signup", body: creds, want: 409, wantCode: api.CodeConflict})
	c.do(oaCall{method: "POST", path: "/api/v1/auth/signup", body: api.Credentials{Email: "not an address", Password: oaOwnerPassword},
		want: 400, wantCode: api.CodeInvalidRequest})

	c.do(oaCall{method: "POST", path: "/api/v1/auth/login", body: api.Credentials{Email: creds.Email, Password: "wrong password here"},
		want: 401, wantCode: api.CodeUnauthorized})
	c.do(oaCall{method: "POST", path: "/api/v1/auth/login", body: creds, want: 200}).decode(t, &ar)
	c.do(oaCall{method: "POST", path: "/api/v1/auth/login", body: map[string]any{"email": creds.Email, "password": 5},
		nonConforming: true, want: 400, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "POST", path: "/api/v1/auth/login", body: []byte(`{"email":`),
		nonConforming: true, want: 400, wantCode: api.CodeInvalidRequest})

	c.do(oaCall{method: "GET", path: "/api/v1/me", token: ar.Token, want: 200})
	cookie := res.cookie("traceless_session")
	if cookie == nil {
		t.Fatal("signup set no session cookie")
	}
	c.do(oaCall{method: "GET", path: "/api/v1/me", cookie: cookie, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/me", nonConforming: true, want: 401, wantCode: api.CodeUnauthorized})
	c.do(oaCall{method: "GET", path: "/api/v1/me", token: "not-a-token", want: 401, wantCode: api.CodeUnauthorized})

	c.do(oaCall{method: "PUT", path: "/api/v1/me/plan", token: ar.Token, body: api.PlanChange{Plan: "no-such-plan"},
		want: 400, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "PUT", path: "/api/v1/me/plan", token: ar.Token, body: map[string]any{}, nonConforming: true,
		want: 400, wantCode: api.CodeInvalidRequest})
	return ar.Token, ar.Owner.ID
}

// oaApps creates an app and an API key, and exercises the app routes.
func oaApps(t *testing.T, c *oaClient, owner string) (appID, key string) {
	var app api.App
	c.do(oaCall{method: "POST", path: "/api/v1/apps", token: owner, body: api.AppInput{Name: "Demo"}, want: 201}).decode(t, &app)
	// The free plan allows one app.
	c.do(oaCall{method: "POST", path: "/api/v1/apps", token: owner, body: api.AppInput{Name: "Second"},
		want: 403, wantCode: api.CodePlanLimit})
	c.do(oaCall{method: "PUT", path: "/api/v1/me/plan", token: owner, body: api.PlanChange{Plan: "pro"}, want: 200})

	c.do(oaCall{method: "POST", path: "/api/v1/apps", token: owner, body: map[string]any{"name": "x", "colour": "red"},
		nonConforming: true, want: 400, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "POST", path: "/api/v1/apps", token: owner, body: []byte(`name=x`), contentType: "text/plain",
		nonConforming: true, want: 415, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "POST", path: "/api/v1/apps", token: owner, body: api.AppInput{Name: strings.Repeat("a", 70<<10)},
		want: 413, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "POST", path: "/api/v1/apps", token: owner, body: api.AppInput{Name: ""},
		want: 400, wantCode: api.CodeInvalidRequest})

	c.do(oaCall{method: "GET", path: "/api/v1/apps", token: owner, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/apps/" + app.ID, token: owner, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/apps/00000000-0000-4000-8000-000000000000", token: owner,
		want: 404, wantCode: api.CodeNotFound})
	c.do(oaCall{method: "PUT", path: "/api/v1/apps/" + app.ID, token: owner, body: api.AppInput{Name: "Demo renamed"}, want: 200})

	var k api.APIKeyCreated
	c.do(oaCall{method: "POST", path: "/api/v1/apps/" + app.ID + "/keys", token: owner, body: api.APIKeyInput{Name: "ci"},
		want: 201}).decode(t, &k)
	c.do(oaCall{method: "GET", path: "/api/v1/apps/" + app.ID + "/keys", token: owner, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/apps/00000000-0000-4000-8000-000000000000/keys", token: owner,
		want: 404, wantCode: api.CodeNotFound})
	return app.ID, k.Key
}

// oaAddServer puts a node in a pool dedicated to the owner, straight into
// the database: nodes come from agent enrollment, which has no route yet.
func oaAddServer(t *testing.T, s *oaServer, ownerID string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+s.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	defer db.Close()
	const poolID, nodeID = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`INSERT INTO pools (id, name, region, country, city, owner_id) VALUES (?, ?, ?, ?, ?, ?)`,
			[]any{poolID, "dedicated", "eu-central", "DE", "Frankfurt", ownerID}},
		{`INSERT INTO nodes (id, pool_id, name, endpoint, public_key, credential_hash, enabled) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			[]any{nodeID, poolID, "fra-1", "fra-1.example.net:51820", newWGKey(t), strings.Repeat("ab", 32), true}},
	} {
		if _, err := db.Exec(q.query, q.args...); err != nil {
			t.Fatalf("%s: %v", q.query, err)
		}
	}
	return nodeID
}

// oaDevices exercises the provisioning routes with an app API key.
func oaDevices(t *testing.T, c *oaClient, key, owner, nodeID string) {
	var servers api.ServerList
	c.do(oaCall{method: "GET", path: "/api/v1/servers", token: key, want: 200}).decode(t, &servers)
	if len(servers.Servers) != 1 {
		t.Fatalf("servers = %+v, want the one node", servers)
	}
	c.do(oaCall{method: "GET", path: "/api/v1/servers", token: owner, nonConforming: true, want: 401, wantCode: api.CodeUnauthorized})
	c.do(oaCall{method: "GET", path: "/api/v1/servers", token: "tlk_" + strings.Repeat("A", 43), want: 401, wantCode: api.CodeUnauthorized})

	ref := "customer-42"
	var dev api.DeviceCreated
	pub := newWGKey(t)
	c.do(oaCall{method: "POST", path: "/api/v1/devices", token: key, body: api.DeviceInput{PublicKey: pub, ExternalRef: &ref},
		want: 201}).decode(t, &dev)
	c.do(oaCall{method: "POST", path: "/api/v1/devices", token: key, body: api.DeviceInput{PublicKey: newWGKey(t)}, want: 201})
	c.do(oaCall{method: "POST", path: "/api/v1/devices", token: key, body: api.DeviceInput{PublicKey: pub},
		want: 409, wantCode: api.CodeConflict})
	c.do(oaCall{method: "POST", path: "/api/v1/devices", token: key, body: api.DeviceInput{PublicKey: "not a key"},
		want: 400, wantCode: api.CodeInvalidRequest})

	var page api.DeviceList
	c.do(oaCall{method: "GET", path: "/api/v1/devices?limit=1", token: key, want: 200}).decode(t, &page)
	if page.NextCursor == "" {
		t.Fatalf("first page of two devices has no next_cursor: %+v", page)
	}
	c.do(oaCall{method: "GET", path: "/api/v1/devices?limit=1&cursor=" + page.NextCursor, token: key, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/devices?cursor=bogus", token: key, want: 400, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "GET", path: "/api/v1/devices?limit=0", token: key, nonConforming: true, want: 400, wantCode: api.CodeInvalidRequest})

	devPath := "/api/v1/devices/" + dev.ID
	c.do(oaCall{method: "GET", path: devPath, token: key, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/devices/00000000-0000-4000-8000-000000000000", token: key,
		want: 404, wantCode: api.CodeNotFound})
	c.do(oaCall{method: "POST", path: devPath + "/rotate", token: key, body: api.RotateInput{PublicKey: newWGKey(t)}, want: 200})

	conf := c.do(oaCall{method: "GET", path: devPath + "/config?server=" + nodeID, token: key, want: 200})
	if !strings.Contains(string(conf.body), "[Interface]") {
		t.Errorf("config is not a wg-quick file:\n%s", conf.body)
	}
	png := c.do(oaCall{method: "GET", path: devPath + "/config?format=qr&server=" + nodeID, token: key, want: 200})
	if !bytes.HasPrefix(png.body, []byte("\x89PNG")) {
		t.Errorf("format=qr is not a PNG")
	}
	c.do(oaCall{method: "GET", path: devPath + "/config?server=00000000-0000-4000-8000-000000000000", token: key,
		want: 400, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "GET", path: devPath + "/config", token: key, nonConforming: true, want: 400, wantCode: api.CodeInvalidRequest})
	c.do(oaCall{method: "GET", path: devPath + "/config?server=" + nodeID + "&format=svg", token: key, nonConforming: true,
		want: 400, wantCode: api.CodeInvalidRequest})

	c.do(oaCall{method: "DELETE", path: devPath, token: key, want: 204})
	c.do(oaCall{method: "DELETE", path: devPath, token: key, want: 404, wantCode: api.CodeNotFound})
}

// oaAdmin exercises the operator routes.
func oaAdmin(t *testing.T, c *oaClient, op, owner, ownerID string) {
	c.do(oaCall{method: "GET", path: "/api/v1/admin/plans", token: op, want: 200})
	c.do(oaCall{method: "GET", path: "/api/v1/admin/plans", token: owner, want: 403, wantCode: api.CodeForbidden})

	in := api.PlanInput{Slug: "team", Name: "Team", MaxApps: 3, MaxDevices: 100, PriceCents: 1900, Currency: "EUR", Pools: []string{}}
	var plan api.Plan
	c.do(oaCall{method: "POST", path: "/api/v1/admin/plans", token: op, body: in, want: 201}).decode(t, &plan)
	c.do(oaCall{method: "POST", path: "/api/v1/admin/plans", token: op, body: in, want: 409, wantCode: api.CodeConflict})
	in.Name, in.Pools = "Team plan", nil // null pools clear the list
	c.do(oaCall{method: "PUT", path: "/api/v1/admin/plans/" + plan.ID, token: op, body: in, want: 200})
	c.do(oaCall{method: "PUT", path: "/api/v1/admin/plans/00000000-0000-4000-8000-000000000000", token: op, body: in,
		want: 404, wantCode: api.CodeNotFound})
	in.Currency = "euro"
	c.do(oaCall{method: "PUT", path: "/api/v1/admin/plans/" + plan.ID, token: op, body: in, want: 400, wantCode: api.CodeInvalidRequest})

	var owners api.OwnerList
	c.do(oaCall{method: "GET", path: "/api/v1/admin/owners?limit=1", token: op, want: 200}).decode(t, &owners)
	if owners.NextCursor == "" {
		t.Errorf("first page of two owners has no next_cursor")
	}
	c.do(oaCall{method: "GET", path: "/api/v1/admin/owners?limit=1&cursor=" + owners.NextCursor, token: op, want: 200})

	ownerPath := "/api/v1/admin/owners/" + ownerID
	c.do(oaCall{method: "PUT", path: ownerPath, token: op, body: []byte(`{"legal_hold": "dispute 7"}`), want: 200})
	c.do(oaCall{method: "PUT", path: ownerPath, token: op, body: []byte(`{"legal_hold": null}`), want: 200})
	c.do(oaCall{method: "PUT", path: ownerPath, token: op, body: []byte(`{"plan": "team"}`), want: 200})
	c.do(oaCall{method: "PUT", path: ownerPath, token: op, body: []byte(`{"status": "frozen"}`), nonConforming: true,
		want: 400, wantCode: api.CodeInvalidRequest})
	// The owner is on the plan now.
	c.do(oaCall{method: "DELETE", path: "/api/v1/admin/plans/" + plan.ID, token: op, want: 409, wantCode: api.CodeConflict})
	c.do(oaCall{method: "PUT", path: ownerPath, token: op, body: []byte(`{"plan": "pro"}`), want: 200})
	c.do(oaCall{method: "DELETE", path: "/api/v1/admin/plans/" + plan.ID, token: op, want: 204})
}

// oaTeardown deletes what the flow created, signs out and hits the signup
// rate limit.
func oaTeardown(t *testing.T, c *oaClient, owner, appID string) {
	var keys api.APIKeyList
	c.do(oaCall{method: "GET", path: "/api/v1/apps/" + appID + "/keys", token: owner, want: 200}).decode(t, &keys)
	for _, k := range keys.Keys {
		c.do(oaCall{method: "DELETE", path: "/api/v1/apps/" + appID + "/keys/" + k.ID, token: owner, want: 204})
	}
	c.do(oaCall{method: "DELETE", path: "/api/v1/apps/" + appID + "/keys/00000000-0000-4000-8000-000000000000", token: owner,
		want: 404, wantCode: api.CodeNotFound})
	c.do(oaCall{method: "DELETE", path: "/api/v1/apps/" + appID, token: owner, want: 204})
	c.do(oaCall{method: "GET", path: "/api/v1/apps/" + appID, token: owner, want: 404, wantCode: api.CodeNotFound})

	c.do(oaCall{method: "POST", path: "/api/v1/auth/logout", token: owner, want: 204})
	c.do(oaCall{method: "GET", path: "/api/v1/me", token: owner, want: 401, wantCode: api.CodeUnauthorized})

	// Signups from one address are limited.
	for i := 0; ; i++ {
		res := c.do(oaCall{method: "POST", path: "/api/v1/auth/signup", wantOneOf: []int{201, 429},
			body: api.Credentials{Email: fmt.Sprintf("burst%d@example.com", i), Password: oaOwnerPassword}})
		if res.status == http.StatusTooManyRequests {
			var eb api.ErrorBody
			res.decode(t, &eb)
			if eb.Error.Code != api.CodeRateLimited {
				t.Errorf("429 with code %q", eb.Error.Code)
			}
			break
		}
		if i > 20 {
			t.Fatal("no 429 after 20 signups from one address")
		}
	}
}
