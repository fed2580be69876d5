package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// Setup creates the first operator account with the one-time setup token
// that a server started without an operator prints (the token parameter of
// its setup link), and signs it in: the client keeps the session token. It
// fails with api.CodeForbidden when the token is wrong or spent, and with
// api.CodeInvalidRequest for a bad email or a weak password. It is never
// retried.
func (c *Client) Setup(ctx context.Context, token, email, password string) (api.AuthResponse, error) {
	var out api.AuthResponse
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/setup",
		body: api.Setup{Token: token, Email: email, Password: password}}, &out)
	if err != nil {
		return api.AuthResponse{}, err
	}
	c.SetToken(out.Token)
	return out, nil
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

// DeleteMe hard-deletes the signed-in owner's account with all of its
// apps, API keys, devices and dedicated pools and nodes, and forgets the
// client's session token. There is no undo.
//
// While an operator holds the account under legal hold, it fails with
// api.CodeLegalHold (409) and a Message that carries the hold's reason;
// nothing is deleted.
//
// It is not retried: after a lost answer the account may be gone, and a
// repeat would fail with api.CodeUnauthorized rather than say so.
func (c *Client) DeleteMe(ctx context.Context) error {
	err := c.doJSON(ctx, &request{method: http.MethodDelete, path: "/api/v1/me", auth: authOwner, noRetry: true}, nil)
	if err != nil {
		return err
	}
	c.SetToken("")
	return nil
}

// ExportMe returns everything the control plane stores about the signed-in
// owner, table by table. Numbers in Tables are json.Number values, so they
// keep their precision when written out again. The answer may be up to
// MaxExportBytes long.
func (c *Client) ExportMe(ctx context.Context) (api.Export, error) {
	r := &request{method: http.MethodGet, path: "/api/v1/me/export", auth: authOwner, maxBytes: MaxExportBytes}
	res, err := c.do(ctx, r)
	if err != nil {
		return api.Export{}, err
	}
	var out api.Export
	dec := json.NewDecoder(bytes.NewReader(res.body))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return api.Export{}, r.fail(res.status, fmt.Errorf("decode response: %w", err))
	}
	return out, nil
}

// Policy returns the privacy policy in effect and, once announced, the
// next version. It needs no credential.
func (c *Client) Policy(ctx context.Context) (api.PolicyStatus, error) {
	var out api.PolicyStatus
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/policy"}, &out)
	return out, err
}

// AcceptPolicy records that the signed-in owner accepts a version of the
// privacy policy: the current one or the announced upcoming one (see
// Policy). Any other version fails with api.CodeInvalidRequest.
func (c *Client) AcceptPolicy(ctx context.Context, version string) (api.Owner, error) {
	var out api.Owner
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: "/api/v1/me/policy", auth: authOwner,
		body: api.PolicyAccept{Version: version}}, &out)
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
