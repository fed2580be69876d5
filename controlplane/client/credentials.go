package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Credentials that can ship inside an app. The provisioning API takes four
// credentials, each set with WithAPIKey (or SetAPIKey) and told apart by
// the server by its prefix:
//
//	tlk_  secret key: the owner's backend only; the whole provisioning API and CreateTicket
//	tlp_  publishable key: safe inside an app; RegisterDevice, AppPolicy, Servers
//	tlt_  registration ticket: one RegisterDevice, once, within minutes (RegisterWithTicket)
//	tld_  device token: Device, DeviceConfig, RotateDevice, DeleteDevice and Servers for its own device
//
// The recommended pattern: the owner's backend, holding the secret key,
// calls CreateTicket for an app install and hands the ticket to the app;
// the app calls RegisterWithTicket and keeps the device token of the
// answer (DeviceCreated.DeviceToken) in the device's secure storage; from
// then on it uses a client made with WithAPIKey(deviceToken). An app
// without a backend registers with a publishable key instead.
//
// Every rotation answers a new device token and the old one stops working:
// a client whose credential is the rotated device's token switches to the
// new one by itself, and the caller must store it (it is in the answer).

// Credential prefixes.
const (
	SecretKeyPrefix      = "tlk_"
	PublishableKeyPrefix = "tlp_"
	TicketPrefix         = "tlt_"
	DeviceTokenPrefix    = "tld_"
)

// WithDeviceToken sets a device's own token ("tld_…") as the provisioning
// credential; it is WithAPIKey under a name that says what it holds.
func WithDeviceToken(token string) Option { return WithAPIKey(token) }

// CreateTicket mints a registration ticket for the secret key's app (a
// secret key is required; others get api.CodeForbidden). Hand the ticket
// to one app install; it registers one device, once, before ExpiresAt.
// With in.ExternalRef the device gets that reference and no other. It is
// never retried.
func (c *Client) CreateTicket(ctx context.Context, in api.TicketInput) (api.RegistrationTicket, error) {
	var out api.RegistrationTicket
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/registration-tickets", auth: authKey, body: in}, &out)
	return out, err
}

// RegisterWithTicket registers a device with a registration ticket, which
// this call spends (the client's own credential is neither used nor
// changed). Keep the answer's DeviceToken on the device: it is shown only
// here. A used or expired ticket fails with api.CodeUnauthorized. It is
// never retried: a lost answer leaves a registered device whose token
// nobody holds; the owner's backend can reset it (ResetDeviceToken).
func (c *Client) RegisterWithTicket(ctx context.Context, ticket string, in api.DeviceInput) (api.DeviceCreated, error) {
	var out api.DeviceCreated
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/devices", auth: authGiven, credential: ticket, body: in}, &out)
	return out, err
}

// ResetDeviceToken gives one of the app's devices a new token (a secret
// key is required) and returns it; the old token stops working. It is
// never retried.
func (c *Client) ResetDeviceToken(ctx context.Context, deviceID string) (string, error) {
	var out api.DeviceToken
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: devicePath(deviceID) + "/token", auth: authKey}, &out)
	return out.DeviceToken, err
}

// CreateKey creates an API key of an app with a kind (api.KeySecret, the
// default, or api.KeyPublishable) and an optional expiry. The returned Key
// is shown only this once. A name the app already uses fails with
// api.CodeConflict.
func (c *Client) CreateKey(ctx context.Context, appID string, in api.APIKeyInput) (api.APIKeyCreated, error) {
	var out api.APIKeyCreated
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: appPath(appID) + "/keys", auth: authOwner, body: in}, &out)
	return out, err
}

// ReplaceAPIKey creates the key that replaces keyID, of the same kind, and
// lets the old key work until in.GraceUntil, so that app versions shipped
// with it keep working while users update. The answer holds the new key
// (shown only here) and the old one with its new expiry.
func (c *Client) ReplaceAPIKey(ctx context.Context, appID, keyID string, in api.KeyReplaceInput) (api.KeyReplaced, error) {
	var out api.KeyReplaced
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: appPath(appID) + "/keys/" + url.PathEscape(keyID) + "/replace",
		auth: authOwner, body: in}, &out)
	return out, err
}

// followRotation switches the client to the token a rotation answered
// when the client's credential is a device token (the rotated device's:
// no other may rotate it), which the rotation ended.
func (c *Client) followRotation(out api.DeviceCreated) {
	if out.DeviceToken == "" {
		return
	}
	c.mu.Lock()
	if strings.HasPrefix(c.apiKey, DeviceTokenPrefix) {
		c.apiKey = out.DeviceToken
	}
	c.mu.Unlock()
}
