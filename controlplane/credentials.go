package controlplane

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// The provisioning API's credentials, from most to least powerful. An app
// binary is public, so whatever it carries can be extracted; only the
// secret key may stay on the owner's backend.
//
//	secret key          tlk_  the owner's backend: everything, and minting tickets
//	publishable key     tlp_  the app binary: register a device; read the app's policy and servers
//	registration ticket tlt_  one app install: register exactly one device, once, within minutes
//	device token        tld_  one device: read, configure, rotate and delete itself; list its servers
//
// Each is 256 random bits behind its prefix, sent as "Authorization:
// Bearer", shown once and stored as a SHA-256 hash. requireApp resolves
// the bearer by its prefix into one appAuth and admits it only when the
// route allows its kind; a device token is admitted to its own device's
// routes only (another device's are 404, as for another app's key).

// credKind is a kind of provisioning credential; a route allows a set.
type credKind uint8

const (
	credSecret credKind = 1 << iota
	credPublishable
	credTicket
	credDevice
)

// Credential prefixes.
const (
	apiKeyPrefix         = "tlk_" // secret app key
	publishableKeyPrefix = "tlp_"
	deviceTokenPrefix    = "tld_"
	ticketPrefix         = "tlt_"
)

// credentialLen is the length of every provisioning credential: a prefix
// and 256 bits in unpadded base64url.
const credentialLen = 4 + 43

// Route permissions, as in the design's credential table.
const (
	permSecret    = credSecret
	permRegister  = credSecret | credPublishable | credTicket
	permAppRead   = credSecret | credPublishable
	permServers   = credSecret | credPublishable | credDevice
	permOwnDevice = credSecret | credDevice
)

// appAuth is what a provisioning credential authenticated.
type appAuth struct {
	kind    credKind
	appID   string
	ownerID string
	// keyID is the API key's ID (secret and publishable keys).
	keyID string
	// registrationCap is the app's cap on registrations per hour with
	// publishable keys (0: none).
	registrationCap int
	// deviceID is the device a device token belongs to.
	deviceID string
	// ticketHash and ticketRef are a ticket's hash and bound external_ref.
	ticketHash string
	ticketRef  *string
}

const ctxApp = "traceless.app"

func currentApp(c echo.Context) appAuth {
	a, _ := c.Get(ctxApp).(appAuth)
	return a
}

// newCredential returns prefix and 256 random bits in base64url, and the
// SHA-256 that is all the store keeps. A fast hash suffices: the secret
// has 256 bits of entropy, nothing to guess.
func newCredential(prefix string) (secret, hash string) {
	var b [32]byte
	rand.Read(b[:])
	secret = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, hashAPIKey(secret)
}

// Refusals of a credential that authenticated but may not do this.
var (
	errOwnerSuspended = apiError(http.StatusForbidden, api.CodeForbidden, "the app owner's account is suspended")
	errCredentialKind = map[credKind]*api.Error{
		credSecret:      apiError(http.StatusForbidden, api.CodeForbidden, "a secret key may not call this route"),
		credPublishable: apiError(http.StatusForbidden, api.CodeForbidden, "a publishable key may only register devices and read the app's policy and servers"),
		credTicket:      apiError(http.StatusForbidden, api.CodeForbidden, "a registration ticket may only register one device"),
		credDevice:      apiError(http.StatusForbidden, api.CodeForbidden, "a device token may only read, configure, rotate and delete its own device and list its servers"),
	}
)

// requireApp authenticates a provisioning credential, admits it when its
// kind is in allowed, confines a device token to its own device and
// applies the per-credential rate limit. An unknown, revoked or expired
// credential is 401; a known one of a kind the route does not allow is
// 403. Nothing about the call is recorded.
func (s *Server) requireApp(allowed credKind) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			a, status, err := s.authenticateApp(c)
			if err != nil {
				return err
			}
			if status != store.StatusActive {
				return errOwnerSuspended
			}
			if a.kind&allowed == 0 {
				return errCredentialKind[a.kind]
			}
			if a.kind == credDevice {
				if id := c.Param("device_id"); id != "" && id != a.deviceID {
					return errNotFound
				}
			}
			if s.keyLimit != nil {
				var bucket string
				switch a.kind {
				case credSecret, credPublishable:
					bucket = "key:" + a.keyID
				case credDevice:
					bucket = "dev:" + a.deviceID
				}
				// A ticket works once: its registration is its limit.
				if bucket != "" {
					if err := checkRate(c, s.keyLimit, bucket); err != nil {
						return err
					}
				}
			}
			c.Set(ctxApp, a)
			return next(c)
		}
	}
}

// authenticateApp resolves the bearer credential by its prefix. It
// returns the owner's status beside the credential.
func (s *Server) authenticateApp(c echo.Context) (appAuth, string, error) {
	tok := bearer(c)
	if len(tok) != credentialLen {
		return appAuth{}, "", errUnauthorized
	}
	ctx := c.Request().Context()
	hash := hashAPIKey(tok)
	notFound := func(err error) error {
		if errors.Is(err, store.ErrNotFound) {
			return errUnauthorized
		}
		return err
	}
	switch tok[:4] {
	case apiKeyPrefix, publishableKeyPrefix:
		ka, err := s.store.AuthenticateAPIKey(ctx, hash)
		if err != nil {
			return appAuth{}, "", notFound(err)
		}
		kind := credSecret
		if ka.Kind == store.KeyPublishable {
			kind = credPublishable
		}
		if (kind == credSecret) != (tok[:4] == apiKeyPrefix) || ka.Expired(s.now()) {
			return appAuth{}, "", errUnauthorized
		}
		return appAuth{kind: kind, appID: ka.AppID, ownerID: ka.OwnerID, keyID: ka.KeyID, registrationCap: ka.RegistrationCap}, ka.OwnerStatus, nil
	case deviceTokenPrefix:
		da, err := s.store.AuthenticateDeviceToken(ctx, hash)
		if err != nil {
			return appAuth{}, "", notFound(err)
		}
		return appAuth{kind: credDevice, appID: da.AppID, ownerID: da.OwnerID, deviceID: da.DeviceID}, da.OwnerStatus, nil
	case ticketPrefix:
		ta, err := s.store.AuthenticateTicket(ctx, hash)
		if err != nil {
			return appAuth{}, "", notFound(err)
		}
		if ta.Expired(s.now()) {
			// Expired tickets are deleted (and purged in the background
			// as well); the refusal does not depend on this delete.
			_ = s.store.DeleteTicket(ctx, hash)
			return appAuth{}, "", errUnauthorized
		}
		return appAuth{kind: credTicket, appID: ta.AppID, ownerID: ta.OwnerID, ticketHash: hash, ticketRef: ta.ExternalRef}, ta.OwnerStatus, nil
	}
	return appAuth{}, "", errUnauthorized
}

// isProvisioningCredential reports whether tok looks like one of the
// provisioning credentials (which are never sign-in tokens).
func isProvisioningCredential(tok string) bool {
	for _, p := range []string{apiKeyPrefix, publishableKeyPrefix, deviceTokenPrefix, ticketPrefix} {
		if strings.HasPrefix(tok, p) {
			return true
		}
	}
	return false
}
