package controlplane

// The TOTP second factor (RFC 6238) of owners and operators.
//
// Enrolment stores a new secret, sealed with the server's secret key
// (secretbox.go), and answers it with its otpauth:// URL; a code from it
// confirms the enrolment and returns ten single-use recovery codes, of
// which only SHA-256 hashes are kept. A code is accepted once: the store
// keeps the time step of the last accepted code and takes a code only for
// a later step, in one statement (no replay within the code's window, even
// across replicas). Sign-in with the factor on needs `code` (a TOTP code or
// a recovery code) in the same login call, under the same rate limits.
//
// With RequireOperator2FA, an operator without the factor may call only
// the enrolment routes (and sign out) until it is confirmed.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

const (
	totpPeriod = 30 // seconds per time step
	// totpSkew is how many steps before and after the current one a code
	// may come from (clock drift between the server and the phone).
	totpSkew      = 1
	recoveryCount = 10
	// totpIssuer names the service in authenticator apps.
	totpIssuer = "Traceless"
)

var (
	errSecondFactorRequired = apiError(http.StatusUnauthorized, api.CodeSecondFactorRequired,
		"this account has two-factor authentication: send the same sign-in with code (from the authenticator app, or a recovery code)")
	errSecondFactorInvalid = apiError(http.StatusUnauthorized, api.CodeSecondFactorInvalid,
		"the code is wrong, expired or was used already; wait for the next code of the authenticator app")
	errEnrolmentRequired = apiError(http.StatusForbidden, api.CodeSecondFactorEnrolment,
		"this server requires operators to use two-factor authentication: enable it first (POST /api/v1/me/2fa, then /confirm)")
	errTOTPEnabled  = apiError(http.StatusConflict, api.CodeConflict, "two-factor authentication is already on; turn it off first to enrol again")
	errTOTPNotFound = apiError(http.StatusConflict, api.CodeConflict, "no two-factor enrolment is waiting for a code; start one first")
	errTOTPOff      = apiError(http.StatusConflict, api.CodeConflict, "two-factor authentication is not on")
)

// totpStep is the RFC 6238 time step of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// totpCode is the code of secret for a time step.
func totpCode(secret string, step int64) (string, error) {
	return hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// matchTOTP returns the step within the skew around now whose code is
// code, comparing in constant time, and whether there is one.
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	if len(code) != 6 {
		return 0, false
	}
	cur := totpStep(now)
	found, step := false, int64(0)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		want, err := totpCode(secret, s)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !found {
			found, step = true, s
		}
	}
	return step, found
}

// recoveryEncoding writes recovery codes in lower-case base32.
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newRecoveryCodes returns ten codes of 80 random bits each, written
// xxxx-xxxx-xxxx-xxxx, and their hashes.
func newRecoveryCodes() (codes, hashes []string) {
	for i := 0; i < recoveryCount; i++ {
		var b [10]byte
		rand.Read(b[:])
		s := recoveryEncoding.EncodeToString(b[:])
		codes = append(codes, s[0:4]+"-"+s[4:8]+"-"+s[8:12]+"-"+s[12:16])
		hashes = append(hashes, hashRecoveryCode(s))
	}
	return codes, hashes
}

// normalizeRecoveryCode lower-cases a typed recovery code and drops dashes
// and spaces; "" when it cannot be one.
func normalizeRecoveryCode(code string) string {
	code = strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(code) != 16 {
		return ""
	}
	if _, err := recoveryEncoding.DecodeString(code); err != nil {
		return ""
	}
	return code
}

func hashRecoveryCode(normalized string) string {
	h := sha256.Sum256([]byte("traceless recovery code\x00" + normalized))
	return hex.EncodeToString(h[:])
}

// checkSecondFactor checks code against o's enabled second factor: a TOTP
// code of an unused step, or an unused recovery code (which it spends).
// errSecondFactorInvalid otherwise.
func (s *Server) checkSecondFactor(ctx context.Context, o store.Owner, code string) error {
	code = strings.TrimSpace(code)
	if len(code) > 64 {
		return errSecondFactorInvalid
	}
	cred, err := s.store.GetTOTP(ctx, o.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errSecondFactorInvalid
	}
	if err != nil {
		return err
	}
	if rc := normalizeRecoveryCode(code); rc != "" {
		err := s.store.UseRecoveryCode(ctx, o.ID, hashRecoveryCode(rc))
		if errors.Is(err, store.ErrNotFound) {
			return errSecondFactorInvalid
		}
		return err
	}
	secret, err := s.secrets.open(o.ID, cred.Secret)
	if err != nil {
		return err
	}
	step, ok := matchTOTP(secret, strings.ReplaceAll(code, " ", ""), s.now())
	if !ok {
		return errSecondFactorInvalid
	}
	err = s.store.AcceptTOTPStep(ctx, o.ID, step)
	if errors.Is(err, store.ErrConflict) {
		return errSecondFactorInvalid // a replay, or a code older than one accepted
	}
	return err
}

// secondFactor is the step after the password: nil when o has no second
// factor or code is right for it; errSecondFactorRequired when o has one
// and no code came. Other sign-in methods (single sign-on) call it too.
func (s *Server) secondFactor(ctx context.Context, o store.Owner, code string) error {
	on, err := s.store.TOTPEnabled(ctx, o.ID)
	if err != nil || !on {
		return err
	}
	if strings.TrimSpace(code) == "" {
		return errSecondFactorRequired
	}
	return s.checkSecondFactor(ctx, o, code)
}

// needsEnrolment reports whether o is an operator who must enable a second
// factor before doing anything else.
func (s *Server) needsEnrolment(ctx context.Context, o store.Owner) (bool, error) {
	if !s.opts.RequireOperator2FA || o.Role != store.RoleAdmin {
		return false, nil
	}
	on, err := s.store.TOTPEnabled(ctx, o.ID)
	return !on, err
}

// enrolmentRoutes are the API routes an operator who must enrol may call.
var enrolmentRoutes = map[string]bool{
	"POST /api/v1/me/2fa":         true,
	"POST /api/v1/me/2fa/confirm": true,
	"POST /api/v1/auth/logout":    true,
}

// startTOTP stores a new secret for o (replacing an unconfirmed one) and
// returns it with its otpauth:// URL.
func (s *Server) startTOTP(ctx context.Context, o store.Owner) (api.TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: o.Email, Period: totpPeriod,
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return api.TOTPEnrolment{}, err
	}
	err = s.store.StartTOTP(ctx, o.ID, s.secrets.seal(o.ID, key.Secret()))
	if errors.Is(err, store.ErrConflict) {
		return api.TOTPEnrolment{}, errTOTPEnabled
	}
	if err != nil {
		return api.TOTPEnrolment{}, err
	}
	return api.TOTPEnrolment{Secret: key.Secret(), OtpauthURL: key.URL()}, nil
}

// pendingTOTP returns the secret of o's enrolment awaiting confirmation.
func (s *Server) pendingTOTP(ctx context.Context, o store.Owner) (string, error) {
	cred, err := s.store.GetTOTP(ctx, o.ID)
	if errors.Is(err, store.ErrNotFound) {
		return "", errTOTPNotFound
	}
	if err != nil {
		return "", err
	}
	if cred.Enabled {
		return "", errTOTPEnabled
	}
	return s.secrets.open(o.ID, cred.Secret)
}

// confirmTOTP turns o's pending enrolment on with a code from it and
// returns the recovery codes. It needs no rate limit: the session that
// confirms is the one that was given the secret.
func (s *Server) confirmTOTP(c echo.Context, o store.Owner, code string) ([]string, error) {
	ctx := c.Request().Context()
	secret, err := s.pendingTOTP(ctx, o)
	if err != nil {
		return nil, err
	}
	step, ok := matchTOTP(secret, strings.ReplaceAll(strings.TrimSpace(code), " ", ""), s.now())
	if !ok {
		return nil, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidRequest, Field: "code",
			Message: "the code does not match: type the 6 digits the authenticator app shows now"}
	}
	codes, hashes := newRecoveryCodes()
	err = s.store.EnableTOTP(ctx, o.ID, step, hashes)
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, errTOTPEnabled
	case errors.Is(err, store.ErrNotFound):
		return nil, errTOTPNotFound
	case err != nil:
		return nil, err
	}
	return codes, nil
}

// disableTOTP turns o's second factor off after checking the password and
// a code (TOTP or recovery), under the login limits.
func (s *Server) disableTOTP(c echo.Context, o store.Owner, password, code string) error {
	if err := s.checkCodeRate(c, o); err != nil {
		return err
	}
	ctx := c.Request().Context()
	on, err := s.store.TOTPEnabled(ctx, o.ID)
	if err != nil {
		return err
	}
	if !on {
		return errTOTPOff
	}
	if len(password) > maxPasswordBytes {
		return errWrongPasswordField("password")
	}
	ok, err := s.hasher.verify(ctx, password, o.PasswordHash)
	if err != nil {
		return err
	}
	if !ok {
		return errWrongPasswordField("password")
	}
	if err := s.checkSecondFactor(ctx, o, code); err != nil {
		if err == errSecondFactorInvalid {
			return &api.Error{Status: http.StatusForbidden, Code: api.CodeSecondFactorInvalid, Field: "code", Message: errSecondFactorInvalid.Message}
		}
		return err
	}
	return s.store.DisableTOTP(ctx, o.ID)
}

// checkCodeRate applies the login limits (per client and per the owner's
// email) to a guess at a password or code by a signed-in owner.
func (s *Server) checkCodeRate(c echo.Context, o store.Owner) error {
	if err := checkRate(c, s.loginIP, clientKey(c)); err != nil {
		return err
	}
	return checkRate(c, s.loginEmail, "email:"+o.Email)
}

// errWrongPasswordField refuses a wrong password given as field.
func errWrongPasswordField(field string) *api.Error {
	return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: "the password is wrong", Field: field}
}

func (s *Server) handleStartTOTP(c echo.Context) error {
	e, err := s.startTOTP(c.Request().Context(), currentOwner(c))
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, e)
}

func (s *Server) handleConfirmTOTP(c echo.Context) error {
	var in api.TOTPCode
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	codes, err := s.confirmTOTP(c, currentOwner(c), in.Code)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, api.RecoveryCodes{RecoveryCodes: codes})
}

func (s *Server) handleDisableTOTP(c echo.Context) error {
	var in api.TOTPDisable
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := s.disableTOTP(c, currentOwner(c), in.Password, in.Code); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// RewrapSecrets re-seals every stored TOTP secret that is not under the
// first secret key, after a key rotation, and returns how many it
// re-sealed. Bootstrap calls it at every start.
func (s *Server) RewrapSecrets(ctx context.Context) (int, error) {
	return s.store.RewrapTOTPSecrets(ctx, s.secrets.reseal)
}

// otpauthURL is the otpauth:// URL of a secret (base32) for the account
// email, as startTOTP answers it.
func otpauthURL(email, secret string) (string, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return "", err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: email, Period: totpPeriod,
		Secret: raw, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", err
	}
	return key.URL(), nil
}
