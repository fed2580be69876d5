package controlplane

// Dashboard sessions and CSRF protection.
//
// Sessions are the API's sign-in tokens carried in the HttpOnly,
// SameSite=Strict cookie traceless_session (sessions.go); a page checks
// them exactly as requireOwner does, but answers with a redirect to the
// sign-in page instead of a JSON 401.
//
// CSRF: every form carries a hidden field "csrf" whose value is
//
//	base64url(HMAC-SHA256(K, binding))
//
// where K is derived from Options.SessionKey (so every replica agrees and
// nothing is stored) and binding is "s:" + the session token when the
// visitor is signed in, or "a:" + the value of the traceless_csrf cookie
// (random, HttpOnly, SameSite=Strict) when not — the sign-in and sign-up
// forms. A token therefore only works with the session it was rendered
// for: a token from a visitor's own session is useless against anyone
// else's, and it stops working at sign-out (a new session, a new token).
// A POST whose token is missing or does not match is refused with 403
// before its handler runs, so it changes nothing. SameSite=Strict cookies
// and the CSP's form-action 'self' are further layers, not the defence.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/store"
)

const (
	// csrfCookie binds the forms of visitors who are not signed in.
	csrfCookie = "traceless_csrf"
	// csrfField is the form field holding the token.
	csrfField = "csrf"
	// ctxPageSession holds the verified session token of a page request.
	ctxPageSession = "traceless.pagesession"
)

// csrfToken returns the form token for a binding ("" for none).
func (s *Server) csrfToken(binding string) string {
	if binding == "" {
		return ""
	}
	k := hmac.New(sha256.New, s.opts.SessionKey)
	k.Write([]byte("traceless dashboard csrf v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write([]byte(binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// session returns the signed-in owner and their token, when the session
// cookie holds a valid token of an existing account with the current
// epoch (whatever its status).
func (d *dashboard) session(c echo.Context) (store.Owner, string, bool) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 4096 || strings.HasPrefix(ck.Value, apiKeyPrefix) {
		return store.Owner{}, "", false
	}
	claims, err := d.s.sessions.verify(ck.Value)
	if err != nil {
		return store.Owner{}, "", false
	}
	o, err := d.s.store.GetOwner(c.Request().Context(), claims.Subject)
	if err != nil || o.TokenEpoch != claims.Epoch {
		return store.Owner{}, "", false
	}
	return o, ck.Value, true
}

// formBinding is what the request's form tokens are bound to: its session
// or its anonymous cookie. A visitor without either gets a fresh cookie.
func (d *dashboard) formBinding(c echo.Context) string {
	if tok, ok := c.Get(ctxPageSession).(string); ok {
		return "s:" + tok
	}
	if _, tok, ok := d.session(c); ok {
		return "s:" + tok
	}
	if v := anonCookie(c); v != "" {
		return "a:" + v
	}
	if c.Request().Method != http.MethodGet {
		return "" // a POST without a cookie has no valid token
	}
	var b [32]byte
	rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	c.SetCookie(&http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true,
		Secure: d.s.secureCookies(c), SameSite: http.SameSiteStrictMode})
	// Later calls in this request see the new cookie.
	c.Request().AddCookie(&http.Cookie{Name: csrfCookie, Value: v})
	return "a:" + v
}

// anonCookie returns the anonymous form cookie when it looks like one.
func anonCookie(c echo.Context) string {
	ck, err := c.Cookie(csrfCookie)
	if err != nil || len(ck.Value) != 43 {
		return ""
	}
	return ck.Value
}

// csrf refuses a POST whose form token does not match its binding.
func (d *dashboard) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		limitForm(c)
		got := c.FormValue(csrfField)
		want := d.s.csrfToken(d.formBinding(c))
		if want == "" || !hmac.Equal([]byte(got), []byte(want)) {
			return d.errorPage(c, http.StatusForbidden,
				"This form has expired or was not sent from this site, so nothing was changed. Go back, reload the page and try again.")
		}
		return next(c)
	}
}

// requireSession admits signed-in, active accounts. Others are sent to the
// sign-in page, which brings them back here afterwards (GET only).
func (d *dashboard) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		o, tok, ok := d.session(c)
		if !ok {
			if _, err := c.Cookie(sessionCookie); err == nil {
				c.SetCookie(clearCookie(d.s.secureCookies(c)))
			}
			target := "/login"
			if c.Request().Method == http.MethodGet {
				target += "?next=" + url.QueryEscape(c.Request().URL.RequestURI())
			}
			return redirect(c, target)
		}
		if o.Status != store.StatusActive {
			return d.errorPage(c, http.StatusForbidden,
				"This account is suspended. Contact the operator of this service if you think this is a mistake.")
		}
		enrol, err := d.s.needsEnrolment(c.Request().Context(), o)
		if err != nil {
			return err
		}
		if enrol && !enrolmentPages[c.Request().Method+" "+c.Path()] {
			return redirect(c, pathWithDone("/account/security", "enrol-required"))
		}
		c.Set(ctxOwner, o)
		c.Set(ctxPageSession, tok)
		return next(c)
	}
}

// requireAdmin admits operators; it runs after requireSession.
func (d *dashboard) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if currentOwner(c).Role != store.RoleAdmin {
			return d.errorPage(c, http.StatusForbidden, "This page is for the operators of this service.")
		}
		return next(c)
	}
}

// safeNext returns a local path to continue to after signing in, or "".
func safeNext(next string) string {
	if next == "" || len(next) > 512 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return next
}
