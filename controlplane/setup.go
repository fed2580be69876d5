package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
	"github.com/traceless-vpn/traceless/web"
)

// setupToken is the one-time secret that lets the first operator account
// be created when the server was started without TRACELESS_ADMIN_*. Only
// its hash is held, in memory; it is spent by the first successful use.
type setupToken struct {
	mu   sync.Mutex
	hash []byte
}

func (s *Server) armSetup() string {
	var b [32]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(tok))
	s.setup.mu.Lock()
	s.setup.hash = h[:]
	s.setup.mu.Unlock()
	return tok
}

var errSetupSpent = apiError(http.StatusForbidden, api.CodeForbidden, "the setup link is not valid or was used")

// spendSetup creates the operator account when tok is the armed token.
func (s *Server) spendSetup(c echo.Context, tok, email, password string) (store.Owner, error) {
	st := s.setup
	if st == nil {
		return store.Owner{}, errForbidden
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if n, err := s.store.CountAdmins(c.Request().Context()); err != nil {
		return store.Owner{}, err
	} else if n > 0 {
		// An operator exists (another replica's link, or TRACELESS_ADMIN_*
		// on a restart): the link has served its purpose.
		st.hash = nil
	}
	h := sha256.Sum256([]byte(tok))
	if st.hash == nil || subtle.ConstantTimeCompare(h[:], st.hash) != 1 {
		return store.Owner{}, errSetupSpent
	}
	o, err := s.createAccount(c.Request().Context(), email, password, store.RoleAdmin)
	if errors.Is(err, errOperatorExists) {
		st.hash = nil
		return store.Owner{}, errSetupSpent
	}
	if err != nil {
		return store.Owner{}, err
	}
	st.hash = nil
	return o, nil
}

// handleSetup is the JSON form of the setup page.
func (s *Server) handleSetup(c echo.Context) error {
	var in api.Setup
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	o, err := s.spendSetup(c, in.Token, in.Email, in.Password)
	if err != nil {
		return err
	}
	return s.signIn(c, o, http.StatusCreated)
}

type setupPage struct {
	Title, Token, Email, Err, ErrField, BaseURL string
	Done, Gone                                  bool
}

func (s *Server) templates() (*template.Template, error) {
	fsys := s.opts.WebFS
	if fsys == nil {
		fsys = web.FS()
	}
	sub, err := fs.Sub(fsys, "templates")
	if err != nil {
		return nil, err
	}
	return template.ParseFS(sub, "layout.html", "setup.html")
}

func (s *Server) renderSetup(c echo.Context, status int, p setupPage) error {
	t, err := s.templates()
	if err != nil {
		return err
	}
	p.Title = "Set up"
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(status)
	return t.ExecuteTemplate(c.Response(), "setup.html", p)
}

// setupOpen reports whether a setup token is armed and no operator exists
// yet (one may have been created through another replica).
func (s *Server) setupOpen(ctx context.Context) (bool, error) {
	if s.setup == nil {
		return false, nil
	}
	s.setup.mu.Lock()
	defer s.setup.mu.Unlock()
	if s.setup.hash == nil {
		return false, nil
	}
	n, err := s.store.CountAdmins(ctx)
	if err != nil {
		return false, err
	}
	if n > 0 {
		s.setup.hash = nil
		return false, nil
	}
	return true, nil
}

func (s *Server) handleSetupPage(c echo.Context) error {
	open, err := s.setupOpen(c.Request().Context())
	if err != nil {
		return err
	}
	if !open {
		return s.renderSetup(c, http.StatusGone, setupPage{Gone: true})
	}
	tok := c.QueryParam("token")
	if len(tok) > 100 {
		tok = ""
	}
	return s.renderSetup(c, http.StatusOK, setupPage{Token: tok})
}

func (s *Server) handleSetupForm(c echo.Context) error {
	open, err := s.setupOpen(c.Request().Context())
	if err != nil {
		return err
	}
	if !open {
		return s.renderSetup(c, http.StatusGone, setupPage{Gone: true})
	}
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes)
	tok, email, pw := c.FormValue("token"), c.FormValue("email"), c.FormValue("password")
	o, err := s.spendSetup(c, tok, email, pw)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status < 500 {
			return s.renderSetup(c, ae.Status, setupPage{Token: tok, Email: email, Err: ae.Message, ErrField: ae.Field})
		}
		return err
	}
	tokStr, exp, err := s.sessions.issue(o.ID, o.TokenEpoch)
	if err != nil {
		return err
	}
	c.SetCookie(s.sessions.cookie(tokStr, exp, s.secureCookies(c)))
	return s.renderSetup(c, http.StatusCreated, setupPage{Done: true, Email: o.Email, BaseURL: c.Scheme() + "://" + c.Request().Host})
}

// handleStatic serves the embedded stylesheet and scripts.
func (s *Server) handleStatic(c echo.Context) error {
	fsys := s.opts.WebFS
	if fsys == nil {
		fsys = web.FS()
	}
	sub, err := fs.Sub(fsys, "static")
	if err != nil {
		return err
	}
	name := c.Param("*")
	if fi, err := fs.Stat(sub, name); err != nil || fi.IsDir() {
		return errNotFound
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeFileFS(c.Response(), c.Request(), sub, name)
	return nil
}
