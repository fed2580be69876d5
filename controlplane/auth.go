package controlplane

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

const ctxOwner = "traceless.owner"

// normalizeEmail checks an email address and returns its canonical form
// (trimmed, lower case). Only plain ASCII addresses without a display name
// are accepted.
func normalizeEmail(raw string) (string, error) {
	// Check for ASCII before lower-casing: strings.ToLower maps some
	// non-ASCII letters (the Kelvin sign U+212A) to ASCII ones.
	e := strings.TrimSpace(raw)
	if e == "" {
		return "", badRequest("email", "is required")
	}
	if len(e) > 254 {
		return "", badRequest("email", "must be at most 254 characters")
	}
	for i := 0; i < len(e); i++ {
		if e[i] <= 0x20 || e[i] >= 0x7f {
			return "", badRequest("email", "must be a plain ASCII address such as name@example.com")
		}
	}
	e = strings.ToLower(e)
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || a.Name != "" {
		return "", badRequest("email", "is not a valid address")
	}
	local, domain, _ := strings.Cut(e, "@")
	if len(local) > 64 || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.HasPrefix(domain, "[") {
		return "", badRequest("email", "is not a valid address")
	}
	return e, nil
}

// errOperatorExists: an operator account was created meanwhile (by
// another replica starting with the same settings, or another setup
// link), so the first operator is not created again.
var errOperatorExists = errors.New("an operator account exists")

// createAccount validates and stores a new account. An operator (role
// admin) is created only while none exists; otherwise errOperatorExists.
func (s *Server) createAccount(ctx context.Context, rawEmail, password, role string) (store.Owner, error) {
	email, err := normalizeEmail(rawEmail)
	if err != nil {
		return store.Owner{}, err
	}
	if err := checkPassword(password, email); err != nil {
		return store.Owner{}, err
	}
	hash, err := s.hasher.hash(ctx, password)
	if err != nil {
		return store.Owner{}, err
	}
	// Operators are created by whoever runs the server; owners who sign up
	// while verification is required prove their address by the mail.
	verified := role == store.RoleAdmin || !s.verificationRequired()
	var o store.Owner
	if role == store.RoleAdmin {
		// Only the first operator is created this way (Bootstrap, the
		// setup link); replicas starting together take turns in the store.
		var created bool
		o, created, err = s.store.CreateOperator(ctx, store.Owner{Email: email, PasswordHash: hash, EmailVerified: verified})
		if err == nil && !created {
			return store.Owner{}, errOperatorExists
		}
	} else {
		o, err = s.store.CreateOwner(ctx, store.Owner{Email: email, PasswordHash: hash, Role: role, EmailVerified: verified}, "")
	}
	if errors.Is(err, store.ErrConflict) {
		return store.Owner{}, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: "an account with this email already exists", Field: "email"}
	}
	return o, err
}

// signIn issues a token for o, sets the dashboard cookie and answers.
func (s *Server) signIn(c echo.Context, o store.Owner, status int) error {
	tok, exp, err := s.sessions.issue(o.ID, o.TokenEpoch)
	if err != nil {
		return err
	}
	view, err := s.ownerView(c.Request().Context(), o)
	if err != nil {
		return err
	}
	c.SetCookie(s.sessions.cookie(tok, exp, s.secureCookies(c)))
	return c.JSON(status, api.AuthResponse{Token: tok, ExpiresAt: exp.UTC(), Owner: view})
}

func (s *Server) secureCookies(c echo.Context) bool {
	return s.opts.SecureCookies || c.Request().TLS != nil
}

func (s *Server) handleSignup(c echo.Context) error {
	var in api.Credentials
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := checkRate(c, s.signupIP, clientKey(c)); err != nil {
		return err
	}
	o, err := s.createAccount(c.Request().Context(), in.Email, in.Password, store.RoleOwner)
	if err != nil {
		return err
	}
	// A full mail queue leaves the account unverified; the owner asks for
	// a new link (POST /api/v1/me/verify-email) later.
	_ = s.queueVerification(o)
	return s.signIn(c, o, http.StatusCreated)
}

var errBadLogin = apiError(http.StatusUnauthorized, api.CodeUnauthorized, "wrong email or password")

// handleLogin answers an unknown email and a wrong password identically and
// in similar time: both run one argon2id verification.
//
// With a second factor on, a right password without code answers 401
// second_factor_required; the same call with code signs in. Every call,
// with or without a code, counts against the login limits.
func (s *Server) handleLogin(c echo.Context) error {
	var in api.Login
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	o, err := s.authenticate(c, in.Email, in.Password)
	if err != nil {
		return err
	}
	if err := s.passwordSignInAllowed(o); err != nil {
		return err
	}
	if err := s.secondFactor(c.Request().Context(), o, in.Code); err != nil {
		return err
	}
	return s.signIn(c, o, http.StatusOK)
}

// errSuspended refuses a suspended account's sign-in.
var errSuspended = apiError(http.StatusForbidden, api.CodeForbidden, "this account is suspended")

// authenticate checks an email and password under the login rate limits,
// for the API and the dashboard alike. An unknown email and a wrong
// password both cost one argon2id verification and return errBadLogin.
func (s *Server) authenticate(c echo.Context, rawEmail, password string) (store.Owner, error) {
	email := strings.ToLower(strings.TrimSpace(rawEmail))
	if err := checkRate(c, s.loginIP, clientKey(c)); err != nil {
		return store.Owner{}, err
	}
	if err := checkRate(c, s.loginEmail, "email:"+email); err != nil {
		return store.Owner{}, err
	}
	ctx := c.Request().Context()
	if len(password) > maxPasswordBytes || len(email) > 254 {
		s.hasher.verifyDummy(ctx, "")
		return store.Owner{}, errBadLogin
	}
	o, err := s.store.GetOwnerByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		s.hasher.verifyDummy(ctx, password)
		return store.Owner{}, errBadLogin
	}
	if err != nil {
		return store.Owner{}, err
	}
	ok, err := s.hasher.verify(ctx, password, o.PasswordHash)
	if err != nil {
		return store.Owner{}, err
	}
	if !ok {
		return store.Owner{}, errBadLogin
	}
	if o.Status != store.StatusActive {
		return store.Owner{}, errSuspended
	}
	return o, nil
}

// handleLogout revokes every sign-in token of the owner (the token carries
// the owner's epoch, which this increments) and clears the cookie.
func (s *Server) handleLogout(c echo.Context) error {
	o := currentOwner(c)
	if err := s.store.BumpTokenEpoch(c.Request().Context(), o.ID); err != nil {
		return err
	}
	c.SetCookie(clearCookie(s.secureCookies(c)))
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleMe(c echo.Context) error {
	v, err := s.ownerView(c.Request().Context(), currentOwner(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Server) handleChangePlan(c echo.Context) error {
	var in api.PlanChange
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Plan == "" {
		return badRequest("plan", "is required")
	}
	o, err := s.changeOwnPlan(c.Request().Context(), currentOwner(c), in.Plan)
	if err != nil {
		return err
	}
	v, err := s.ownerView(c.Request().Context(), o)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// ownerView converts a stored owner to its wire form.
func (s *Server) ownerView(ctx context.Context, o store.Owner) (api.Owner, error) {
	p, err := s.store.GetPlan(ctx, o.PlanID)
	if err != nil {
		return api.Owner{}, err
	}
	twoFactor, err := s.store.TOTPEnabled(ctx, o.ID)
	if err != nil {
		return api.Owner{}, err
	}
	return api.Owner{
		ID: o.ID, Email: o.Email, Role: o.Role, Plan: p.Slug, Status: o.Status,
		LegalHold: o.LegalHold, AcceptedPolicyVersion: o.AcceptedPolicyVersion, CreatedAt: o.CreatedAt.UTC(),
		EmailVerified: o.EmailVerified, EmailVerificationRequired: s.unverified(o), TwoFactor: twoFactor,
	}, nil
}

// bearer returns the token of an "Authorization: Bearer" header, or "".
func bearer(c echo.Context) string {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// requireOwner authenticates an owner's sign-in token from the bearer header
// or the dashboard cookie.
func (s *Server) requireOwner(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := bearer(c)
		if tok == "" {
			if ck, err := c.Cookie(sessionCookie); err == nil {
				tok = ck.Value
			}
		}
		if tok == "" || isProvisioningCredential(tok) || len(tok) > 4096 {
			return errUnauthorized
		}
		claims, err := s.sessions.verify(tok)
		if err != nil {
			return errUnauthorized
		}
		o, err := s.store.GetOwner(c.Request().Context(), claims.Subject)
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		if err != nil {
			return err
		}
		if o.TokenEpoch != claims.Epoch {
			return errUnauthorized
		}
		if o.Status != store.StatusActive {
			return apiError(http.StatusForbidden, api.CodeForbidden, "this account is suspended")
		}
		enrol, err := s.needsEnrolment(c.Request().Context(), o)
		if err != nil {
			return err
		}
		if enrol && !enrolmentRoutes[c.Request().Method+" "+c.Path()] {
			return errEnrolmentRequired
		}
		c.Set(ctxOwner, o)
		return next(c)
	}
}

// requireAdmin admits operators only; it runs after requireOwner.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if currentOwner(c).Role != store.RoleAdmin {
			return errForbidden
		}
		return next(c)
	}
}

func currentOwner(c echo.Context) store.Owner {
	o, _ := c.Get(ctxOwner).(store.Owner)
	return o
}
