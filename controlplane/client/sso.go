package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Single sign-on (OpenID Connect) happens in a browser: the provider sends
// the browser back to the control plane, which sets that browser's session
// cookie. This client lists and unlinks the providers linked to the
// signed-in account, and gives the URL that starts a sign-in in a browser.

// SSOStartURL returns the URL that starts a single sign-on with the named
// provider when opened in a browser. next, when not empty, is a local
// path of the dashboard to continue to afterwards.
func (c *Client) SSOStartURL(provider, next string) string {
	u := strings.TrimSuffix(c.BaseURL(), "/") + "/api/v1/auth/oidc/" + url.PathEscape(provider) + "/start"
	if next != "" {
		u += "?next=" + url.QueryEscape(next)
	}
	return u
}

// Identities returns the sign-in providers linked to the signed-in
// account, and the providers the server offers.
func (c *Client) Identities(ctx context.Context) (api.IdentityList, error) {
	var out api.IdentityList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/me/identities", auth: authOwner}, &out)
	return out, err
}

// UnlinkIdentity unlinks one provider from the signed-in account. The
// account's last provider needs its password (api.CodeForbidden with field
// password otherwise); an operator restricted to single sign-on cannot
// unlink the last one (api.CodeConflict).
func (c *Client) UnlinkIdentity(ctx context.Context, id, password string) error {
	r := &request{method: http.MethodDelete, path: "/api/v1/me/identities/" + url.PathEscape(id), auth: authOwner, noRetry: true}
	if password != "" {
		r.body = api.IdentityUnlink{Password: password}
	}
	return c.doJSON(ctx, r, nil)
}
