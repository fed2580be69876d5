package controlplane

import (
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t)
	h.srv.echo.GET("/test/panic", func(echo.Context) error { panic("x") })
	owner := h.MustOwner()
	for _, tc := range []struct {
		path   string
		token  string
		status int
		ct     string
	}{
		{"/healthz", "", 200, "application/json"},
		{"/api/v1/plans", "", 200, "application/json"},
		{"/api/v1/me", owner.Token, 200, "application/json"},
		{"/api/v1/me", "", 401, "application/json"},
		{"/api/v1/admin/owners", owner.Token, 403, "application/json"},
		{"/nope", "", 404, "application/json"},
		{"/setup?token=x", "", 200, "text/html; charset=UTF-8"},
		{"/static/style.css", "", 200, "text/css; charset=utf-8"},
		{"/metrics", "", 200, "text/plain"},
		{"/test/panic", "", 500, "application/json"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := h.Do(request{Method: http.MethodGet, Path: tc.path, Token: tc.token})
			r.MustStatus(t, tc.status)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.ct) {
				t.Errorf("Content-Type = %q, want %q", ct, tc.ct)
			}
			for k, want := range map[string]string{
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
				"X-Frame-Options":        "DENY",
			} {
				if got := r.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			csp := r.Header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP %q lacks %q", csp, d)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP %q allows inline code", csp)
			}
			if tc.path != "/static/style.css" && r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", r.Header.Get("Cache-Control"))
			}
			if hsts := r.Header.Get("Strict-Transport-Security"); hsts != "" {
				t.Errorf("HSTS %q over plain HTTP", hsts)
			}
		})
	}
	// HSTS over TLS.
	r := h.Serve(request{Method: http.MethodGet, Path: "https://cp.example.com/healthz"})
	if !strings.HasPrefix(r.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("no HSTS over TLS: %v", r.Header)
	}
}

func TestStaticStylesheet(t *testing.T) {
	h := newHarness(t)
	r := h.Do(request{Method: http.MethodGet, Path: "/static/style.css"})
	r.MustStatus(t, http.StatusOK)
	if len(r.Body) == 0 || !strings.Contains(string(r.Body), "{") {
		t.Errorf("style.css is empty or not CSS: %q", r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age") {
		t.Errorf("Cache-Control = %q", cc)
	}
	// The setup page links the stylesheet (the CSP allows only 'self').
	page := h.Do(request{Method: http.MethodGet, Path: "/setup"})
	if !strings.Contains(string(page.Body), "/static/style.css") {
		t.Errorf("setup page does not link /static/style.css")
	}
	if strings.Contains(string(page.Body), "<script") || strings.Contains(string(page.Body), "style=") {
		t.Errorf("setup page has inline script or style, which the CSP blocks")
	}
}
