package controlplane

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	sessionCookie = "traceless_session"
	tokenIssuer   = "traceless"
)

// sessionClaims are the claims of an owner's sign-in token. Epoch must
// equal the owner's token_epoch, which logout increments. Purpose is empty
// for a session; a token with a purpose (purposeSecondFactor) is no
// session and opens nothing but its own step.
type sessionClaims struct {
	jwt.RegisteredClaims
	Epoch   int64  `json:"ep"`
	Purpose string `json:"pur,omitempty"`
}

// purposeSecondFactor marks the short-lived token that carries a sign-in
// whose password (or single sign-on) is done and whose second factor is
// not, between the dashboard's two sign-in steps.
const purposeSecondFactor = "second_factor"

// pendingTTL is how long the second sign-in step may take.
const pendingTTL = 5 * time.Minute

// sessions issues and verifies EdDSA-signed sign-in tokens.
type sessions struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	ttl  time.Duration
	now  func() time.Time
}

func newSessions(seed []byte, ttl time.Duration, now func() time.Time) (*sessions, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("session key must be %d bytes, got %d", ed25519.SeedSize, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	return &sessions{priv: priv, pub: priv.Public().(ed25519.PublicKey), ttl: ttl, now: now}, nil
}

// issue returns a session token for the owner and when it expires.
func (s *sessions) issue(ownerID string, epoch int64) (string, time.Time, error) {
	return s.issueFor(ownerID, epoch, "", s.ttl)
}

// issuePending returns a token for the second sign-in step of the owner.
func (s *sessions) issuePending(ownerID string, epoch int64) (string, time.Time, error) {
	return s.issueFor(ownerID, epoch, purposeSecondFactor, pendingTTL)
}

func (s *sessions) issueFor(ownerID string, epoch int64, purpose string, ttl time.Duration) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(ttl)
	var jti [16]byte
	rand.Read(jti[:])
	claims := sessionClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   ownerID,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		Epoch:   epoch,
		Purpose: purpose,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(s.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign session: %w", err)
	}
	return tok, exp, nil
}

// verify checks a session token: signature, algorithm, issuer, expiry and
// that it has no purpose. The caller checks the epoch against the owner.
func (s *sessions) verify(token string) (*sessionClaims, error) {
	c, err := s.verifyAny(token)
	if err != nil {
		return nil, err
	}
	if c.Purpose != "" {
		return nil, errors.New("not a session token")
	}
	return c, nil
}

// verifyPending checks a second-step token as verify checks a session.
func (s *sessions) verifyPending(token string) (*sessionClaims, error) {
	c, err := s.verifyAny(token)
	if err != nil {
		return nil, err
	}
	if c.Purpose != purposeSecondFactor {
		return nil, errors.New("not a second-step token")
	}
	return c, nil
}

func (s *sessions) verifyAny(token string) (*sessionClaims, error) {
	var c sessionClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.pub, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		return nil, err
	}
	if c.Subject == "" {
		return nil, errors.New("token has no subject")
	}
	return &c, nil
}

// cookie returns the dashboard's session cookie for token.
func (s *sessions) cookie(token string, exp time.Time, secure bool) *http.Cookie {
	return &http.Cookie{
		Name:     sessionCookie,
		Value:    token,
		Path:     "/",
		Expires:  exp,
		MaxAge:   int(exp.Sub(s.now()).Seconds()),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteStrictMode,
	}
}

// clearCookie removes the session cookie.
func clearCookie(secure bool) *http.Cookie {
	return &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
}
