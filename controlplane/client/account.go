package client

import (
	"context"
	"net/http"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Signup creates an owner account and signs it in: the client keeps the
// returned session token for the calls that follow. It fails with
// api.CodeConflict when the email is taken and api.CodeInvalidRequest for
// a bad email or a weak password.
func (c *Client) Signup(ctx context.Context, email, password string) (api.AuthResponse, error) {
	return c.signIn(ctx, "/api/v1/auth/signup", email, password)
}

// Login signs an owner in and keeps the session token for the calls that
// follow. A wrong email and a wrong password both fail with
// api.CodeUnauthorized; a suspended account with api.CodeForbidden.
func (c *Client) Login(ctx context.Context, email, password string) (api.AuthResponse, error) {
	return c.signIn(ctx, "/api/v1/auth/login", email, password)
}

func (c *Client) signIn(ctx context.Context, path, email, password string) (api.AuthResponse, error) {
	var out api.AuthResponse
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: path,
		body: api.Credentials{Email: email, Password: password}}, &out)
	if err != nil {
		return api.AuthResponse{}, err
	}
	c.SetToken(out.Token)
	return out, nil
}

// Logout revokes every session token of the signed-in owner and forgets
// the client's.
func (c *Client) Logout(ctx context.Context) error {
	if err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/auth/logout", auth: authOwner}, nil); err != nil {
		return err
	}
	c.SetToken("")
	return nil
}

// Me returns the signed-in owner.
func (c *Client) Me(ctx context.Context) (api.Owner, error) {
	var out api.Owner
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/me", auth: authOwner}, &out)
	return out, err
}

// ChangePlan moves the signed-in owner to the plan with the given slug. It
// fails with api.CodeInvalidRequest for an unknown or retired plan and
// api.CodePlanLimit when the owner uses more than the plan allows.
func (c *Client) ChangePlan(ctx context.Context, slug string) (api.Owner, error) {
	var out api.Owner
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: "/api/v1/me/plan", auth: authOwner,
		body: api.PlanChange{Plan: slug}}, &out)
	return out, err
}

// Plans returns the public plan catalogue (active plans only).
func (c *Client) Plans(ctx context.Context) ([]api.Plan, error) {
	var out api.PlanList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/plans"}, &out)
	return out.Plans, err
}

// Privacy returns the privacy manifest: every table and column the control
// plane stores, and what it never stores.
func (c *Client) Privacy(ctx context.Context) (api.PrivacyManifest, error) {
	var out api.PrivacyManifest
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/privacy"}, &out)
	return out, err
}

// Health reports whether the server and its store answer. It is not
// retried: a health check wants the current answer.
func (c *Client) Health(ctx context.Context) (api.Health, error) {
	var out api.Health
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/healthz", noRetry: true}, &out)
	return out, err
}
