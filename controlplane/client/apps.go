package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

func appPath(appID string) string { return "/api/v1/apps/" + url.PathEscape(appID) }

// CreateApp creates an app of the signed-in owner. It fails with
// api.CodePlanLimit when the plan allows no more apps.
func (c *Client) CreateApp(ctx context.Context, name string) (api.App, error) {
	var out api.App
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/apps", auth: authOwner,
		body: api.AppInput{Name: name}}, &out)
	return out, err
}

// Apps returns the signed-in owner's apps with their device counts.
func (c *Client) Apps(ctx context.Context) ([]api.App, error) {
	var out api.AppList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/apps", auth: authOwner}, &out)
	return out.Apps, err
}

// App returns one app; api.CodeNotFound also for another owner's app.
func (c *Client) App(ctx context.Context, appID string) (api.App, error) {
	var out api.App
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: appPath(appID), auth: authOwner}, &out)
	return out, err
}

// RenameApp renames an app; its other settings stay as they are.
func (c *Client) RenameApp(ctx context.Context, appID, name string) (api.App, error) {
	return c.UpdateApp(ctx, appID, api.AppUpdate{Name: &name})
}

// UpdateApp renames an app and/or sets its key rotation policy
// (RotationDays, 0 for none); nil fields are left as they are. It fails
// with api.CodeInvalidRequest for an empty name or a policy out of range.
func (c *Client) UpdateApp(ctx context.Context, appID string, in api.AppUpdate) (api.App, error) {
	var out api.App
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: appPath(appID), auth: authOwner, body: in}, &out)
	return out, err
}

// DeleteApp hard-deletes an app with its keys and devices.
func (c *Client) DeleteApp(ctx context.Context, appID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: appPath(appID), auth: authOwner}, nil)
}

// CreateAPIKey creates an API key for an app. The returned Key is the
// secret, shown only this once; the server keeps a hash.
func (c *Client) CreateAPIKey(ctx context.Context, appID, name string) (api.APIKeyCreated, error) {
	var out api.APIKeyCreated
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: appPath(appID) + "/keys", auth: authOwner,
		body: api.APIKeyInput{Name: name}}, &out)
	return out, err
}

// APIKeys lists an app's keys by name and prefix; never the secrets.
func (c *Client) APIKeys(ctx context.Context, appID string) ([]api.APIKey, error) {
	var out api.APIKeyList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: appPath(appID) + "/keys", auth: authOwner}, &out)
	return out.Keys, err
}

// DeleteAPIKey revokes a key at once.
func (c *Client) DeleteAPIKey(ctx context.Context, appID, keyID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: appPath(appID) + "/keys/" + url.PathEscape(keyID),
		auth: authOwner}, nil)
}
