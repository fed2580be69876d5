package controlplane

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/alerts"
)

// Log attribute keys. These are the only attributes the control plane logs
// about a request; there is deliberately no key for a client address, a
// header, a query string, a path value or a body.
//
// New wraps the server's logger with an allowlist of the declared keys
// (logAllowlist, internal/logpolicy): an attribute under any other key is
// dropped in production and panics in tests, so a new key is declared as a
// log* constant, where it is reviewed. TestLogKeysDeclared checks that
// logAllowlist lists every log* constant of the package and that no log call
// uses a key that is not one.
const (
	logMethod   = "method"
	logRoute    = "route"
	logStatus   = "status"
	logDuration = "duration_ms"
	logError    = "error"
	logPanic    = "panic"
	logStack    = "stack"
	// logEvent is the type of a payment provider's webhook event
	// ("invoice.payment_failed"); logCount a number of accounts.
	logEvent = "event"
	logCount = "count"
)

// logAllowlist is the control plane's log allowlist: every log* key constant
// here, and the keys of package alerts (alerts.LogKeys), which logs through
// the same logger.
var logAllowlist = append([]string{
	logMethod, logRoute, logStatus, logDuration, logError, logPanic, logStack, logEvent, logCount,
}, alerts.LogKeys...)

// routeOf is the matched route pattern ("/api/v1/devices/:device_id"), or
// "unmatched" — never the request path, which holds IDs.
func routeOf(c echo.Context) string {
	if p := c.Path(); p != "" && p != "/*" {
		return p
	}
	return "unmatched"
}

// methodOf is the request method as logged and counted: a standard method,
// or "OTHER". Any token is a valid method, so logging it verbatim would let a
// client write text of its choice into the log and mint metric series.
func methodOf(c echo.Context) string {
	switch m := c.Request().Method; m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// requestLogger logs method, route pattern, status and duration. It is the
// replacement for echo's Logger middleware, which records the remote IP.
func (s *Server) requestLogger(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := s.now()
		err := next(c)
		if err != nil {
			// Write the error response here so the status is known.
			c.Error(err)
		}
		status := c.Response().Status
		d := s.now().Sub(start)
		route, method := routeOf(c), methodOf(c)
		s.metrics.observe(method, route, status, d)
		s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
			slog.String(logMethod, method),
			slog.String(logRoute, route),
			slog.Int(logStatus, status),
			slog.Float64(logDuration, float64(d.Microseconds())/1000),
		)
		return nil
	}
}

// recoverer turns a panic into a 500 internal without leaking details to
// the client. The log gets the panic's type and the stack, not its value,
// which could hold request data.
func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.LogAttrs(c.Request().Context(), slog.LevelError, "panic recovered",
					slog.String(logRoute, routeOf(c)),
					slog.String(logPanic, fmt.Sprintf("%T", r)),
					slog.String(logStack, string(debug.Stack())))
				err = fmt.Errorf("panic in handler")
			}
		}()
		return next(c)
	}
}

// securityHeaders sets the headers every response carries.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		h.Set("Cache-Control", "no-store")
		if c.Request().TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		return next(c)
	}
}
