package controlplane

// Single sign-on with OpenID Connect (authorization code flow with PKCE,
// state and nonce).
//
//	GET  /api/v1/auth/oidc/{provider}/start     -> 302 to the provider
//	GET  /api/v1/auth/oidc/{provider}/callback  <- the provider sends the browser back
//	POST /api/v1/auth/oidc/signup               a new account for a waiting sign-in
//	POST /api/v1/auth/oidc/link                 link a waiting sign-in to an account, with its password
//	GET  /api/v1/me/identities                  the account's linked sign-ins
//	DELETE /api/v1/me/identities/{identity_id}  unlink one
//
// Nothing about a sign-in is kept on the server. The state, nonce and PKCE
// verifier of a sign-in in progress travel in the cookie traceless_oidc,
// sealed (AES-256-GCM, with a key derived from the session key, so every
// replica can open it) and good for 10 minutes; a sign-in linked to no
// account yet waits in traceless_sso the same way. Of the provider's
// answer only the issuer and the subject are ever stored, when an account
// is linked (store.OwnerIdentity); the email it gives is only offered for
// a new account or used to say that an account with it exists, which can
// then be linked only with its password: an email claim, verified or not,
// never links or signs in to an account by itself.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// OIDCProvider is an OpenID provider owners and operators may sign in
// with. Register the redirect URI
// <public URL>/api/v1/auth/oidc/<Name>/callback with it.
type OIDCProvider struct {
	// Name appears in URLs: lower-case letters, digits and dashes, 1-32.
	Name string
	// Label is the button's text ("Sign in with <Label>").
	Label string
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document names it (trailing slash included or not).
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes are asked for besides openid; default email.
	Scopes []string
}

// providerNameRE is what a provider's name may be.
var providerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ValidateOIDCProviders checks a provider list and names the first problem.
func ValidateOIDCProviders(ps []OIDCProvider) error {
	seen := map[string]bool{}
	issuers := map[string]bool{}
	for i, p := range ps {
		switch {
		case !providerNameRE.MatchString(p.Name):
			return fmt.Errorf("provider %d: name %q must be 1-32 lower-case letters, digits or dashes", i+1, p.Name)
		case seen[p.Name]:
			return fmt.Errorf("provider %s: named twice", p.Name)
		case p.Label == "" || len(p.Label) > 64:
			return fmt.Errorf("provider %s: label must be 1-64 characters", p.Name)
		case !strings.HasPrefix(p.Issuer, "https://") && !strings.HasPrefix(p.Issuer, "http://"):
			return fmt.Errorf("provider %s: issuer %q is not an http(s) URL", p.Name, p.Issuer)
		case len(p.Issuer) > 512:
			return fmt.Errorf("provider %s: issuer is longer than 512 characters", p.Name)
		case issuers[p.Issuer]:
			return fmt.Errorf("provider %s: issuer %s is configured twice", p.Name, p.Issuer)
		case p.ClientID == "":
			return fmt.Errorf("provider %s: client_id is required", p.Name)
		case p.ClientSecret == "":
			return fmt.Errorf("provider %s: a client secret is required", p.Name)
		}
		seen[p.Name], issuers[p.Issuer] = true, true
	}
	return nil
}

const (
	// oidcFlowCookie holds a sign-in in progress (state, nonce, verifier).
	oidcFlowCookie = "traceless_oidc"
	// oidcPendingCookie holds a sign-in linked to no account yet.
	oidcPendingCookie = "traceless_sso"
	// oidcCookieTTL is how long either lasts.
	oidcCookieTTL = 10 * time.Minute
	// oidcFlowPath scopes the flow cookie to the callback's routes.
	oidcFlowPath = "/api/v1/auth/oidc/"
)

// oidcProvider is a configured provider and, once fetched, its discovery.
type oidcProvider struct {
	cfg OIDCProvider
	mu  sync.Mutex
	p   *oidc.Provider
}

// oidcHTTP is the client that talks to providers.
var oidcHTTP = &http.Client{Timeout: 10 * time.Second}

// discover returns the provider's discovery document, fetching it on first
// use (a failure is not remembered: the next sign-in tries again).
func (p *oidcProvider) discover(ctx context.Context) (*oidc.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p != nil {
		return p.p, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, oidcHTTP), 10*time.Second)
	defer cancel()
	prov, err := oidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	p.p = prov
	return prov, nil
}

// oidcProviders are the server's configured providers by name.
type oidcProviders struct {
	list   []*oidcProvider
	byName map[string]*oidcProvider
	// limit bounds the sign-ins a client address starts and finishes (each
	// finish costs a request to the provider): 60 at once, then one a
	// second. Keyed like every limit here, by a salted hash.
	limit *limiter
}

func newOIDCProviders(cfgs []OIDCProvider, now func() time.Time) *oidcProviders {
	ps := &oidcProviders{byName: map[string]*oidcProvider{}, limit: newLimiter(time.Second, 60, time.Hour, now)}
	for _, c := range cfgs {
		if len(c.Scopes) == 0 {
			c.Scopes = []string{oidc.ScopeEmail}
		}
		p := &oidcProvider{cfg: c}
		ps.list = append(ps.list, p)
		ps.byName[c.Name] = p
	}
	return ps
}

// byIssuer finds a configured provider by issuer.
func (ps *oidcProviders) byIssuer(issuer string) *oidcProvider {
	for _, p := range ps.list {
		if p.cfg.Issuer == issuer {
			return p
		}
	}
	return nil
}

// buttons lists the providers as owners see them.
func (ps *oidcProviders) buttons() []api.SSOProvider {
	out := []api.SSOProvider{}
	for _, p := range ps.list {
		out = append(out, api.SSOProvider{Name: p.cfg.Name, Label: p.cfg.Label})
	}
	return out
}

var (
	errNoProvider    = apiError(http.StatusNotFound, api.CodeNotFound, "no such sign-in provider")
	errProviderDown  = apiError(http.StatusBadGateway, api.CodeProviderUnavailable, "the sign-in provider cannot be reached; try again later")
	errFlowExpired   = badRequest("state", "this sign-in expired or was started in another browser; start it again")
	errStateMismatch = badRequest("state", "does not match the sign-in started in this browser; start it again")
	errNoPending     = badRequest("", "no single sign-on is waiting in this browser: sign in with the provider first")
	errSSORequired   = apiError(http.StatusForbidden, api.CodeSSORequired, "operators of this server sign in through single sign-on")
	errSSORejected   = apiError(http.StatusUnauthorized, api.CodeUnauthorized, "the provider's answer was not accepted; start the sign-in again")
)

// provider returns the route's provider.
func (s *Server) provider(c echo.Context) (*oidcProvider, error) {
	p := s.oidc.byName[c.Param("provider")]
	if p == nil {
		return nil, errNoProvider
	}
	return p, nil
}

// oauthConfig is the provider's OAuth 2.0 client configuration.
func (s *Server) oauthConfig(p *oidcProvider, prov *oidc.Provider) oauth2.Config {
	return oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret,
		Endpoint:     prov.Endpoint(),
		RedirectURL:  s.opts.PublicURL + oidcFlowPath + p.cfg.Name + "/callback",
		Scopes:       append([]string{oidc.ScopeOpenID}, p.cfg.Scopes...),
	}
}

// oidcFlow is a sign-in in progress, sealed in oidcFlowCookie.
type oidcFlow struct {
	Provider string `json:"p"`
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x,omitempty"`
}

// oidcPending is a provider sign-in linked to no account, sealed in
// oidcPendingCookie until a signup or a link.
type oidcPending struct {
	Provider string `json:"p"`
	Issuer   string `json:"i"`
	Subject  string `json:"s"`
	Email    string `json:"e,omitempty"`
	// Verified: the provider calls Email verified. It spares a new
	// account with that email the verification mail; it never links.
	Verified bool   `json:"ev,omitempty"`
	Next     string `json:"x,omitempty"`
}

// sealed is the plaintext of a sealed cookie.
type sealed struct {
	Exp int64           `json:"exp"`
	V   json.RawMessage `json:"v"`
}

// sealAEAD returns the cipher sealing cookies of one purpose. Its key is
// derived from the session key, so every replica opens what another
// sealed, and rotating the session key voids cookies in flight.
func (s *Server) sealAEAD(purpose string) cipher.AEAD {
	m := hmac.New(sha256.New, s.opts.SessionKey)
	m.Write([]byte("traceless sealed cookie v1\x00" + purpose))
	block, err := aes.NewCipher(m.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key always works
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// seal encrypts and authenticates v for purpose, valid until exp.
func (s *Server) seal(purpose string, v any, exp time.Time) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	pt, err := json.Marshal(sealed{Exp: exp.Unix(), V: raw})
	if err != nil {
		return "", err
	}
	aead := s.sealAEAD(purpose)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, pt, []byte(purpose))), nil
}

// unseal opens a value sealed for purpose that has not expired.
func (s *Server) unseal(purpose, text string, v any) error {
	if len(text) > 4096 {
		return errors.New("sealed value too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(text)
	aead := s.sealAEAD(purpose)
	if err != nil || len(b) < aead.NonceSize()+aead.Overhead() {
		return errors.New("not a sealed value")
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(purpose))
	if err != nil {
		return err
	}
	var sv sealed
	if err := json.Unmarshal(pt, &sv); err != nil {
		return err
	}
	if !s.now().Before(time.Unix(sv.Exp, 0)) {
		return errors.New("sealed value expired")
	}
	return json.Unmarshal(sv.V, v)
}

// sealedCookie returns a cookie holding v sealed for its name.
func (s *Server) sealedCookie(c echo.Context, name, path string, v any, site http.SameSite) (*http.Cookie, error) {
	exp := s.now().Add(oidcCookieTTL)
	val, err := s.seal(name, v, exp)
	if err != nil {
		return nil, err
	}
	return &http.Cookie{Name: name, Value: val, Path: path, MaxAge: int(oidcCookieTTL.Seconds()),
		HttpOnly: true, Secure: s.secureCookies(c), SameSite: site}, nil
}

// dropCookie removes a cookie.
func (s *Server) dropCookie(c echo.Context, name, path string, site http.SameSite) {
	c.SetCookie(&http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: s.secureCookies(c), SameSite: site})
}

// readSealed opens the sealed cookie name into v.
func (s *Server) readSealed(c echo.Context, name string, v any) bool {
	ck, err := c.Cookie(name)
	return err == nil && s.unseal(name, ck.Value, v) == nil
}

func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// handleOIDCStart sends the browser to the provider with a fresh state,
// nonce and PKCE challenge, remembered in the sealed flow cookie.
func (s *Server) handleOIDCStart(c echo.Context) error {
	p, err := s.provider(c)
	if err != nil {
		return s.oidcFail(c, err)
	}
	if err := checkRate(c, s.oidc.limit, clientKey(c)); err != nil {
		return s.oidcFail(c, err)
	}
	next := c.QueryParam("next")
	if len(next) > 512 {
		return s.oidcFail(c, badRequest("next", "must be at most 512 characters"))
	}
	prov, err := p.discover(c.Request().Context())
	if err != nil {
		s.ssoWarn(c, "discovery failed: "+err.Error())
		return s.oidcFail(c, errProviderDown)
	}
	f := oidcFlow{Provider: p.cfg.Name, State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Next: safeNext(next)}
	// Lax: the provider brings the browser back from another site.
	ck, err := s.sealedCookie(c, oidcFlowCookie, oidcFlowPath, f, http.SameSiteLaxMode)
	if err != nil {
		return err
	}
	c.SetCookie(ck)
	cfg := s.oauthConfig(p, prov)
	u := cfg.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	if wantsJSON(c) {
		// For a client that drives a browser itself: the flow cookie is
		// set in this client, so the callback must come back to it.
		return c.JSON(http.StatusOK, api.SSOStart{AuthorizationURL: u})
	}
	return c.Redirect(http.StatusFound, u)
}

// ssoWarn logs why a provider's answer was refused, for the operator (a
// wrong client secret, an unreachable provider): what failed, never who
// was signing in, nor any code, token or time of the answer.
func (s *Server) ssoWarn(c echo.Context, what string) {
	s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "single sign-on failed",
		slog.String(logRoute, routeOf(c)), slog.String(logError, what))
}

// exchangeError describes a failed code exchange by the provider's OAuth
// error code and HTTP status, not by its response body.
func exchangeError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := "no error code"
		if providerErrorRE.MatchString(re.ErrorCode) {
			code = re.ErrorCode
		}
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Sprintf("%s (HTTP %d)", code, status)
	}
	return "the token endpoint could not be reached"
}

// idTokenError describes why an ID token was rejected without its times.
func idTokenError(err error) string {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return "expired"
	}
	msg := err.Error()
	for _, what := range []string{"audience", "issued by a different provider", "signature", "malformed", "algorithm"} {
		if strings.Contains(msg, what) {
			return what
		}
	}
	return "invalid"
}

// providerErrorRE is an OAuth error code the provider may send back.
var providerErrorRE = regexp.MustCompile(`^[a-z_]{1,64}$`)

// handleOIDCCallback finishes a sign-in: the state must match the flow
// cookie of this browser (which is dropped, so a callback works once), the
// code is exchanged with the PKCE verifier, and the ID token must be the
// provider's, for this client, unexpired, and carry the flow's nonce.
func (s *Server) handleOIDCCallback(c echo.Context) error {
	p, err := s.provider(c)
	if err != nil {
		return s.oidcFail(c, err)
	}
	if err := checkRate(c, s.oidc.limit, clientKey(c)); err != nil {
		return s.oidcFail(c, err)
	}
	var f oidcFlow
	if !s.readSealed(c, oidcFlowCookie, &f) || f.Provider != p.cfg.Name {
		return s.oidcFail(c, errFlowExpired)
	}
	s.dropCookie(c, oidcFlowCookie, oidcFlowPath, http.SameSiteLaxMode)
	q := c.QueryParams()
	if st := q.Get("state"); st == "" || !hmac.Equal([]byte(st), []byte(f.State)) {
		return s.oidcFail(c, errStateMismatch)
	}
	if e := q.Get("error"); e != "" {
		msg := "the provider refused the sign-in"
		if providerErrorRE.MatchString(e) {
			msg += " (" + e + ")"
		}
		return s.oidcFail(c, apiError(http.StatusUnauthorized, api.CodeUnauthorized, "%s", msg))
	}
	code := q.Get("code")
	if code == "" || len(code) > 2048 {
		return s.oidcFail(c, badRequest("code", "is missing"))
	}
	ctx := oidc.ClientContext(c.Request().Context(), oidcHTTP)
	prov, err := p.discover(ctx)
	if err != nil {
		s.ssoWarn(c, "discovery failed: "+err.Error())
		return s.oidcFail(c, errProviderDown)
	}
	cfg := s.oauthConfig(p, prov)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		// A spent, foreign or forged code, or a wrong verifier: or a wrong
		// client secret, which the operator must hear of.
		s.ssoWarn(c, "the token endpoint refused the code: "+exchangeError(err))
		return s.oidcFail(c, errSSORejected)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		s.ssoWarn(c, "the token endpoint gave no ID token")
		return s.oidcFail(c, errSSORejected)
	}
	// The provider's clock, not a test's: the token's times are real.
	idt, err := prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		s.ssoWarn(c, "the ID token was rejected: "+idTokenError(err))
		return s.oidcFail(c, errSSORejected)
	}
	if !hmac.Equal([]byte(idt.Nonce), []byte(f.Nonce)) {
		return s.oidcFail(c, apiError(http.StatusUnauthorized, api.CodeUnauthorized, "the provider's answer belongs to another sign-in (nonce); start the sign-in again"))
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return s.oidcFail(c, errSSORejected)
		}
	}
	if idt.Subject == "" || len(idt.Subject) > 255 {
		return s.oidcFail(c, errSSORejected)
	}
	o, err := s.store.GetOwnerByIdentity(ctx, p.cfg.Issuer, idt.Subject)
	if err == nil {
		if o.Status != store.StatusActive {
			return s.oidcFail(c, errSuspended)
		}
		return s.oidcSignedIn(c, o, f.Next)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	pend := oidcPending{Provider: p.cfg.Name, Issuer: p.cfg.Issuer, Subject: idt.Subject, Next: f.Next}
	pend.Email, pend.Verified = s.claimedEmail(ctx, prov, idt, tok)
	ck, err := s.sealedCookie(c, oidcPendingCookie, "/", pend, http.SameSiteStrictMode)
	if err != nil {
		return err
	}
	c.SetCookie(ck)
	if !wantsHTML(c) {
		exists := false
		if pend.Email != "" {
			_, err := s.store.GetOwnerByEmail(ctx, pend.Email)
			exists = err == nil
		}
		return c.JSON(http.StatusAccepted, api.SSOPending{Provider: p.cfg.Name, Email: pend.Email, AccountExists: exists})
	}
	return continueTo(c, "/login/sso")
}

// claimedEmail returns the email the provider gives for the person, from
// the ID token or else its userinfo endpoint, and whether it calls it
// verified; "" when it gives none that this server accepts as an address.
func (s *Server) claimedEmail(ctx context.Context, prov *oidc.Provider, idt *oidc.IDToken, tok *oauth2.Token) (string, bool) {
	var cl struct {
		Email    string `json:"email"`
		Verified any    `json:"email_verified"` // a boolean, or "true" from some providers
	}
	_ = idt.Claims(&cl)
	verified := cl.Verified == true || cl.Verified == "true"
	if cl.Email == "" && prov.UserInfoEndpoint() != "" {
		ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err == nil && ui.Subject == idt.Subject {
			cl.Email, verified = ui.Email, ui.EmailVerified
		}
	}
	e, err := normalizeEmail(cl.Email)
	if err != nil {
		return "", false
	}
	return e, verified
}

// wantsJSON reports a client that asked for JSON rather than a redirect
// (GET .../start).
func wantsJSON(c echo.Context) bool {
	return strings.Contains(c.Request().Header.Get(echo.HeaderAccept), echo.MIMEApplicationJSON)
}

// wantsHTML reports a browser: the callback answers it with pages; any
// other client gets JSON.
func wantsHTML(c echo.Context) bool {
	return strings.Contains(c.Request().Header.Get(echo.HeaderAccept), echo.MIMETextHTML)
}

// oidcSignedIn signs o in after a provider sign-in: JSON clients get the
// token, browsers the session cookie and a page that continues to next.
//
// An account with a second factor is not signed in yet: a JSON client gets
// 401 second_factor_required, a browser goes on to the code step with the
// pending cookie (totp.go).
func (s *Server) oidcSignedIn(c echo.Context, o store.Owner, next string) error {
	switch err := s.secondFactor(c.Request().Context(), o, ""); {
	case err == errSecondFactorRequired && wantsHTML(c):
		if err := s.setPendingCookie(c, o); err != nil {
			return err
		}
		return continueTo(c, "/login/code?"+url.Values{"next": {next}}.Encode())
	case err != nil:
		return err
	}
	if !wantsHTML(c) {
		return s.signIn(c, o, http.StatusOK)
	}
	tok, exp, err := s.sessions.issue(o.ID, o.TokenEpoch)
	if err != nil {
		return err
	}
	c.SetCookie(s.sessions.cookie(tok, exp, s.secureCookies(c)))
	if next == "" {
		next = landing(o)
	}
	return continueTo(c, next)
}

// continueTo answers a page that moves on to path by itself. Not a
// redirect: the browser arrived from the provider's site, and a redirect
// would keep this request's cross-site origin, so the SameSite=Strict
// session cookie would not be sent to path. A page of this site that
// refreshes to path starts a same-site navigation.
func continueTo(c echo.Context, path string) error {
	var b strings.Builder
	continueTmpl.Execute(&b, path)
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.HTMLBlob(http.StatusOK, []byte(b.String()))
}

var continueTmpl = template.Must(template.New("").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={{.}}">
<title>Signing in…</title><link rel="icon" href="/static/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/static/style.css"></head>
<body><main><p>Signing in… <a href="{{.}}">Continue</a>.</p></main></body></html>
`))

// oidcFail answers a failed provider sign-in: browsers get an error page
// that leads back to the sign-in page, other clients the JSON error.
func (s *Server) oidcFail(c echo.Context, err error) error {
	if !wantsHTML(c) || s.dash == nil {
		return err
	}
	ae, internal := toAPIError(err)
	if internal {
		return err
	}
	return s.dash.errorPage(c, ae.Status, sentence(readable(ae))+". Go back to the sign-in page and try again.")
}

// pending returns the sign-in waiting in this browser.
func (s *Server) pending(c echo.Context) (oidcPending, error) {
	var pend oidcPending
	if !s.readSealed(c, oidcPendingCookie, &pend) || s.oidc.byName[pend.Provider] == nil ||
		s.oidc.byName[pend.Provider].cfg.Issuer != pend.Issuer {
		return oidcPending{}, errNoPending
	}
	return pend, nil
}

// ssoSignup creates an owner account for the waiting sign-in, with email
// (the provider's when empty), linked to it. The account gets a random
// password nobody knows; a password reset sets one.
func (s *Server) ssoSignup(c echo.Context, pend oidcPending, rawEmail string) (store.Owner, error) {
	if err := checkRate(c, s.signupIP, clientKey(c)); err != nil {
		return store.Owner{}, err
	}
	if strings.TrimSpace(rawEmail) == "" {
		rawEmail = pend.Email
	}
	email, err := normalizeEmail(rawEmail)
	if err != nil {
		return store.Owner{}, err
	}
	ctx := c.Request().Context()
	hash, err := s.hasher.hash(ctx, randomToken())
	if err != nil {
		return store.Owner{}, err
	}
	// The address is proven when the provider verified this very one;
	// otherwise the verification mail goes out as after any signup.
	verified := !s.verificationRequired() || (pend.Verified && email == pend.Email)
	o, err := s.store.CreateOwnerWithIdentity(ctx, store.Owner{Email: email, PasswordHash: hash, Role: store.RoleOwner, EmailVerified: verified},
		"", pend.Issuer, pend.Subject)
	if errors.Is(err, store.ErrConflict) {
		if _, gerr := s.store.GetOwnerByEmail(ctx, email); gerr == nil {
			return store.Owner{}, &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Field: "email",
				Message: "an account with this email exists: link this sign-in to it with its password instead"}
		}
		return store.Owner{}, apiError(http.StatusConflict, api.CodeConflict, "this sign-in is linked to an account already")
	}
	if err != nil {
		return store.Owner{}, err
	}
	// A full mail queue leaves the account unverified; the owner asks for
	// a new link later.
	_ = s.queueVerification(o)
	return o, nil
}

// ssoLink links the waiting sign-in to the account whose email and
// password are given, under the login rate limits.
func (s *Server) ssoLink(c echo.Context, pend oidcPending, email, password string) (store.Owner, error) {
	o, err := s.authenticate(c, email, password)
	if err != nil {
		return store.Owner{}, err
	}
	if _, err := s.store.LinkIdentity(c.Request().Context(), o.ID, pend.Issuer, pend.Subject); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Owner{}, apiError(http.StatusConflict, api.CodeConflict, "this sign-in is linked to an account already")
		}
		return store.Owner{}, err
	}
	return o, nil
}

func (s *Server) handleSSOSignup(c echo.Context) error {
	var in api.SSOSignup
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	pend, err := s.pending(c)
	if err != nil {
		return err
	}
	o, err := s.ssoSignup(c, pend, in.Email)
	if err != nil {
		return err
	}
	s.dropCookie(c, oidcPendingCookie, "/", http.SameSiteStrictMode)
	return s.signIn(c, o, http.StatusCreated)
}

func (s *Server) handleSSOLink(c echo.Context) error {
	var in api.Credentials
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	pend, err := s.pending(c)
	if err != nil {
		return err
	}
	o, err := s.ssoLink(c, pend, in.Email, in.Password)
	if err != nil {
		return err
	}
	s.dropCookie(c, oidcPendingCookie, "/", http.SameSiteStrictMode)
	// Linked; an account with a second factor still signs in with its code.
	if err := s.secondFactor(c.Request().Context(), o, ""); err != nil {
		return err
	}
	return s.signIn(c, o, http.StatusOK)
}

// passwordSignInAllowed refuses an operator's password sign-in when
// operators must use single sign-on. Linking a provider sign-in with the
// password stays possible: it proves both.
func (s *Server) passwordSignInAllowed(o store.Owner) error {
	if s.opts.OperatorSSOOnly && o.Role == store.RoleAdmin {
		return errSSORequired
	}
	return nil
}

// identities returns the owner's linked sign-ins in wire form.
func (s *Server) identities(ctx context.Context, ownerID string) ([]api.Identity, error) {
	ids, err := s.store.ListIdentities(ctx, ownerID)
	if err != nil {
		return nil, err
	}
	out := make([]api.Identity, 0, len(ids))
	for _, i := range ids {
		v := api.Identity{ID: i.ID, Issuer: i.Issuer, Label: i.Issuer}
		if p := s.oidc.byIssuer(i.Issuer); p != nil {
			v.Provider, v.Label = p.cfg.Name, p.cfg.Label
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) handleListIdentities(c echo.Context) error {
	ids, err := s.identities(c.Request().Context(), currentOwner(c).ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.IdentityList{Identities: ids, Providers: s.oidc.buttons()})
}

// unlinkIdentity removes one of o's linked sign-ins. The last one goes
// only with the account's password, so the account keeps a way in, and
// never for an operator who may sign in only through single sign-on.
func (s *Server) unlinkIdentity(ctx context.Context, o store.Owner, id, password string) error {
	ids, err := s.store.ListIdentities(ctx, o.ID)
	if err != nil {
		return err
	}
	found := false
	for _, i := range ids {
		found = found || i.ID == id
	}
	if !found {
		return store.ErrNotFound
	}
	keepOne := s.passwordSignInAllowed(o) != nil
	if len(ids) == 1 && !keepOne {
		ok := false
		if password != "" && len(password) <= maxPasswordBytes {
			if ok, err = s.hasher.verify(ctx, password, o.PasswordHash); err != nil {
				return err
			}
		}
		if !ok {
			return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Field: "password",
				Message: "unlinking the last sign-in provider needs the account's password (set one with a password reset first)"}
		}
	}
	err = s.store.UnlinkIdentity(ctx, o.ID, id, keepOne)
	if errors.Is(err, store.ErrLastIdentity) {
		return apiError(http.StatusConflict, api.CodeConflict, "operators of this server sign in only through single sign-on: link another provider before unlinking this one")
	}
	return err
}

func (s *Server) handleUnlinkIdentity(c echo.Context) error {
	var in api.IdentityUnlink
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	if err := s.unlinkIdentity(c.Request().Context(), currentOwner(c), c.Param("identity_id"), in.Password); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// oidcRoutes registers the single sign-on routes under /api/v1.
func (s *Server) oidcRoutes(v1 *echo.Group) {
	v1.GET("/auth/oidc/:provider/start", s.handleOIDCStart)
	v1.GET("/auth/oidc/:provider/callback", s.handleOIDCCallback)
	v1.POST("/auth/oidc/signup", s.handleSSOSignup)
	v1.POST("/auth/oidc/link", s.handleSSOLink)
	v1.GET("/me/identities", s.handleListIdentities, s.requireOwner)
	v1.DELETE("/me/identities/:identity_id", s.handleUnlinkIdentity, s.requireOwner)
}
