package client

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"net/http"
	"net/url"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// The provisioning API needs a provisioning credential (WithAPIKey): an
// app's secret or publishable key, a registration ticket or a device token
// (see credentials.go); it acts on that credential's app.

func devicePath(deviceID string) string { return "/api/v1/devices/" + url.PathEscape(deviceID) }

// Servers returns the nodes the app's plan grants. ListServers also says
// why there are none.
func (c *Client) Servers(ctx context.Context) ([]api.Server, error) {
	out, err := c.ListServers(ctx)
	return out.Servers, err
}

// ListServers returns the nodes the app's plan grants and, when there are
// none, an Explanation of why (api.NoServersPlanIncludesNoPool: the plan
// includes no server pool and the operator must include one).
func (c *Client) ListServers(ctx context.Context) (api.ServerList, error) {
	var out api.ServerList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/servers", auth: authKey}, &out)
	return out, err
}

// RegisterDevice registers a device by its WireGuard public key and returns
// its tunnel addresses, servers and its own device token (DeviceToken,
// shown only here). It fails with api.CodeConflict for a
// key already registered, api.CodePlanLimit over the plan's device limit
// and api.CodeInvalidRequest for a malformed key. It is never retried.
func (c *Client) RegisterDevice(ctx context.Context, in api.DeviceInput) (api.DeviceCreated, error) {
	var out api.DeviceCreated
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/devices", auth: authKey, body: in}, &out)
	return out, err
}

// Devices returns one page of the app's devices.
func (c *Client) Devices(ctx context.Context, opts ListOptions) (api.DeviceList, error) {
	var out api.DeviceList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/devices", auth: authKey,
		query: opts.values()}, &out)
	return out, err
}

// AllDevices iterates over every device of the app, fetching pages of
// pageSize (0: the server's default) as it goes. An error ends the
// sequence.
func (c *Client) AllDevices(ctx context.Context, pageSize int) iter.Seq2[api.Device, error] {
	return pages(ctx, pageSize, func(ctx context.Context, o ListOptions) ([]api.Device, string, error) {
		l, err := c.Devices(ctx, o)
		return l.Devices, l.NextCursor, err
	})
}

// Device returns one device of the app.
func (c *Client) Device(ctx context.Context, deviceID string) (api.Device, error) {
	var out api.Device
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: devicePath(deviceID), auth: authKey}, &out)
	return out, err
}

// DeleteDevice removes a device; it leaves every node with the next sync.
func (c *Client) DeleteDevice(ctx context.Context, deviceID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: devicePath(deviceID), auth: authKey}, nil)
}

// RotateDevice replaces a device's public key; the device also gets new
// tunnel addresses and a new device token (out.DeviceToken, shown only
// here; the old one stops working). A client whose credential is the
// device's token switches to the new one by itself; store it on the
// device. It is never retried.
func (c *Client) RotateDevice(ctx context.Context, deviceID, publicKey string) (api.DeviceCreated, error) {
	var out api.DeviceCreated
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: devicePath(deviceID) + "/rotate", auth: authKey,
		body: api.RotateInput{PublicKey: publicKey}}, &out)
	if err == nil {
		c.followRotation(out)
	}
	return out, err
}

// DeviceConfig returns the wg-quick configuration of a device on one of
// its servers. Its PrivateKey line is a placeholder: the server never
// knows the device's private key.
func (c *Client) DeviceConfig(ctx context.Context, deviceID, serverID string) (string, error) {
	res, err := c.do(ctx, &request{method: http.MethodGet, path: devicePath(deviceID) + "/config", auth: authKey,
		query: url.Values{"server": {serverID}}, accept: "text/plain"})
	if err != nil {
		return "", err
	}
	return string(res.body), nil
}

// pngMagic starts every PNG file.
var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// DeviceConfigQR returns DeviceConfig as a PNG QR code, for mobile
// WireGuard apps to scan (after the private key is added on the device).
func (c *Client) DeviceConfigQR(ctx context.Context, deviceID, serverID string) ([]byte, error) {
	r := &request{method: http.MethodGet, path: devicePath(deviceID) + "/config", auth: authKey,
		query: url.Values{"server": {serverID}, "format": {"qr"}}, accept: "image/png"}
	res, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(res.body, pngMagic) {
		return nil, r.fail(res.status, errors.New("response is not a PNG image"))
	}
	return res.body, nil
}
