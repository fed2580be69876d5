package controlplane

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

const panicCanary = "panic-canary-value-4b8e"

func TestNotFound(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/nope", "/api/v1/nope", "/api/v2/plans", "/api/v1/plans/extra", "/static/nope.css", "/static/", "/static/..%2ftemplates%2flayout.html"} {
		r := h.Do(request{Method: http.MethodGet, Path: path})
		r.MustHaveError(t, wantErr{http.StatusNotFound, api.CodeNotFound, ""})
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type = %q", path, ct)
		}
	}
	// Traversal out of /static/ finds nothing (sent in process: a client
	// would clean the path).
	for _, path := range []string{"/static/../templates/layout.html", "/static/./../web.go", "/static/.", "/static//etc/passwd"} {
		r := h.Serve(request{Method: http.MethodGet, Path: path})
		r.MustHaveError(t, wantErr{http.StatusNotFound, api.CodeNotFound, ""})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h := newHarness(t)
	r := h.Do(request{Method: http.MethodPatch, Path: "/api/v1/plans"})
	if r.Status != http.StatusMethodNotAllowed {
		t.Fatalf("status = %d, want 405; body %s", r.Status, r.Body)
	}
	e := r.MustError(t)
	if e.Code != api.CodeNotFound || e.Message == "" {
		t.Errorf("error = %+v", e)
	}
	if allow := r.Header.Get("Allow"); !strings.Contains(allow, http.MethodGet) {
		t.Errorf("Allow = %q", allow)
	}
	// HEAD errors have no body.
	r = h.Do(request{Method: http.MethodHead, Path: "/nope"})
	if r.Status != http.StatusNotFound || len(r.Body) != 0 {
		t.Errorf("HEAD /nope = %d with %d bytes", r.Status, len(r.Body))
	}
}

// TestHandlerPanic: a panicking handler answers 500 internal, and neither
// the body nor the log holds the panic's value.
func TestHandlerPanic(t *testing.T) {
	h := newHarness(t)
	h.srv.echo.GET("/test/panic/:id", func(c echo.Context) error { panic(panicCanary + c.Param("id")) })
	h.srv.echo.GET("/test/error", func(echo.Context) error { return fmt.Errorf("database said: %w", errors.New("disk on fire")) })

	off := h.logs.Len()
	r := h.Do(request{Method: http.MethodGet, Path: "/test/panic/42"})
	r.MustHaveError(t, wantErr{http.StatusInternalServerError, api.CodeInternal, ""})
	if strings.Contains(string(r.Body), panicCanary) || strings.Contains(string(r.Body), "goroutine") {
		t.Errorf("body leaks the panic: %s", r.Body)
	}
	logs := h.logs.Since(off)
	if strings.Contains(logs, panicCanary) {
		t.Errorf("log holds the panic value:\n%s", logs)
	}
	lines := MustParseLogLines(t, logs)
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l[logMsgKey].(string))
		if l[logMsgKey] == "panic recovered" && (l[logPanic] != "string" || l[logRoute] != "/test/panic/:id" || !strings.Contains(l[logStack].(string), "TestHandlerPanic")) {
			t.Errorf("panic log line = %v", l)
		}
		if l[logMsgKey] == "request" && l[logStatus] != float64(500) {
			t.Errorf("request line = %v", l)
		}
	}
	if diff := cmp.Diff([]string{"panic recovered", "internal error", "request"}, msgs); diff != "" {
		t.Errorf("log messages mismatch (-want +got):\n%s", diff)
	}

	// The server still works.
	h.Do(request{Method: http.MethodGet, Path: "/healthz"}).MustStatus(t, http.StatusOK)

	// An unexpected error is logged for the operator and hidden from the client.
	off = h.logs.Len()
	r = h.Do(request{Method: http.MethodGet, Path: "/test/error"})
	r.MustHaveError(t, wantErr{http.StatusInternalServerError, api.CodeInternal, ""})
	if strings.Contains(string(r.Body), "disk on fire") {
		t.Errorf("body leaks the error: %s", r.Body)
	}
	if !strings.Contains(h.logs.Since(off), "disk on fire") {
		t.Errorf("internal error not logged:\n%s", h.logs.Since(off))
	}
}

// TestRecoverer drives the middleware directly on an echo context.
func TestRecoverer(t *testing.T) {
	h := newHarness(t)
	e := echo.New()
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), httptest.NewRecorder())
	off := h.logs.Len()
	err := h.srv.recoverer(func(echo.Context) error { panic(errors.New(panicCanary)) })(c)
	if err == nil || strings.Contains(err.Error(), panicCanary) {
		t.Errorf("recoverer returned %v", err)
	}
	if ae, internal := toAPIError(err); !internal || ae.Code != api.CodeInternal {
		t.Errorf("recovered error maps to %+v, internal=%v", ae, internal)
	}
	if logs := h.logs.Since(off); strings.Contains(logs, panicCanary) || !strings.Contains(logs, `"panic":"*errors.errorString"`) {
		t.Errorf("log:\n%s", logs)
	}
	// No panic, no change.
	want := errors.New("plain")
	if err := h.srv.recoverer(func(echo.Context) error { return want })(c); err != want {
		t.Errorf("recoverer changed an error: %v", err)
	}
	// http.ErrAbortHandler keeps its meaning.
	func() {
		defer func() {
			if r := recover(); r != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler re-panicked", r)
			}
		}()
		_ = h.srv.recoverer(func(echo.Context) error { panic(http.ErrAbortHandler) })(c)
	}()
}

func TestToAPIError(t *testing.T) {
	for _, tc := range []struct {
		err      error
		want     wantErr
		internal bool
	}{
		{store.ErrNotFound, wantErr{404, api.CodeNotFound, ""}, false},
		{fmt.Errorf("get: %w", store.ErrNotFound), wantErr{404, api.CodeNotFound, ""}, false},
		{fmt.Errorf("%w: owners.email", store.ErrConflict), wantErr{409, api.CodeConflict, ""}, false},
		{store.ErrPlanLimit, wantErr{403, api.CodePlanLimit, ""}, false},
		{store.ErrLegalHold, wantErr{409, api.CodeLegalHold, ""}, false},
		{&store.ValidationError{Field: "slug", Message: "bad"}, wantErr{400, api.CodeInvalidRequest, "slug"}, false},
		{errRateLimited, wantErr{429, api.CodeRateLimited, ""}, false},
		{echo.ErrNotFound, wantErr{404, api.CodeNotFound, ""}, false},
		{echo.NewHTTPError(http.StatusRequestEntityTooLarge), wantErr{413, api.CodeInvalidRequest, ""}, false},
		{echo.NewHTTPError(http.StatusTeapot), wantErr{500, api.CodeInternal, ""}, true},
		{errors.New("boom"), wantErr{500, api.CodeInternal, ""}, true},
	} {
		ae, internal := toAPIError(tc.err)
		got := wantErr{ae.Status, ae.Code, ae.Field}
		if diff := cmp.Diff(tc.want, got); diff != "" || internal != tc.internal {
			t.Errorf("toAPIError(%v) mismatch (-want +got):\n%s internal=%v", tc.err, diff, internal)
		}
		// The message of a mapped error never carries the wrapped text.
		if strings.Contains(ae.Message, "owners.email") || strings.Contains(ae.Message, "boom") {
			t.Errorf("toAPIError(%v) message %q leaks the cause", tc.err, ae.Message)
		}
	}
}
