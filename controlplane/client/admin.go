package client

import (
	"context"
	"iter"
	"net/http"
	"net/url"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// The operator API needs a signed-in owner with the admin role; others get
// api.CodeForbidden. It covers plans, owners, pools and nodes.

// AdminPlans returns every plan, retired ones included.
func (c *Client) AdminPlans(ctx context.Context) ([]api.Plan, error) {
	var out api.PlanList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/admin/plans", auth: authOwner}, &out)
	return out.Plans, err
}

// CreatePlan adds a plan to the catalogue. It fails with api.CodeConflict
// when the slug is taken and api.CodeInvalidRequest for bad input.
func (c *Client) CreatePlan(ctx context.Context, in api.PlanInput) (api.Plan, error) {
	var out api.Plan
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: "/api/v1/admin/plans", auth: authOwner, body: in}, &out)
	return out, err
}

// UpdatePlan replaces every field of a plan.
func (c *Client) UpdatePlan(ctx context.Context, planID string, in api.PlanInput) (api.Plan, error) {
	var out api.Plan
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: "/api/v1/admin/plans/" + url.PathEscape(planID),
		auth: authOwner, body: in}, &out)
	return out, err
}

// DeletePlan removes a plan; it fails with api.CodeConflict while owners
// are on it.
func (c *Client) DeletePlan(ctx context.Context, planID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: "/api/v1/admin/plans/" + url.PathEscape(planID),
		auth: authOwner}, nil)
}

// AdminOwners returns one page of owner accounts.
func (c *Client) AdminOwners(ctx context.Context, opts ListOptions) (api.OwnerList, error) {
	var out api.OwnerList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: "/api/v1/admin/owners", auth: authOwner,
		query: opts.values()}, &out)
	return out, err
}

// AllOwners iterates over every owner account, fetching pages of pageSize
// (0: the server's default) as it goes. An error ends the sequence.
func (c *Client) AllOwners(ctx context.Context, pageSize int) iter.Seq2[api.Owner, error] {
	return pages(ctx, pageSize, func(ctx context.Context, o ListOptions) ([]api.Owner, string, error) {
		l, err := c.AdminOwners(ctx, o)
		return l.Owners, l.NextCursor, err
	})
}

// UpdateOwner changes an owner's status, plan or legal hold; nil and unset
// fields are left alone. Use SetLegalHold and ReleaseLegalHold for the
// hold.
func (c *Client) UpdateOwner(ctx context.Context, ownerID string, in api.OwnerUpdate) (api.Owner, error) {
	var out api.Owner
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: "/api/v1/admin/owners/" + url.PathEscape(ownerID),
		auth: authOwner, body: in}, &out)
	return out, err
}

// DeleteOwner hard-deletes an owner account with all of its apps, API
// keys, devices and dedicated pools, as DeleteMe does for one's own. It
// fails with api.CodeLegalHold (409, the Message carries the reason) while
// the account is under legal hold, and with api.CodeConflict for the
// operator's own account (use DeleteMe).
func (c *Client) DeleteOwner(ctx context.Context, ownerID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: "/api/v1/admin/owners/" + url.PathEscape(ownerID),
		auth: authOwner}, nil)
}

// AdminPools returns every pool: shared ones (OwnerID nil) and owners'
// dedicated ones.
func (c *Client) AdminPools(ctx context.Context) ([]api.Pool, error) {
	return c.listPools(ctx, adminPrefix)
}

// AdminCreatePool creates a shared pool, which plans grant by its ID. It
// fails with api.CodeConflict when the name is taken and
// api.CodeInvalidRequest for bad input.
func (c *Client) AdminCreatePool(ctx context.Context, in api.PoolInput) (api.Pool, error) {
	return c.createPool(ctx, adminPrefix, in)
}

// AdminDeletePool removes any pool with its nodes and unused enrollment
// tokens.
func (c *Client) AdminDeletePool(ctx context.Context, poolID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: poolPath(adminPrefix, poolID), auth: authOwner}, nil)
}

// AdminCreateEnrollmentToken issues a one-use token that lets one node join
// any pool before ExpiresAt. It is shown only here and never retried.
func (c *Client) AdminCreateEnrollmentToken(ctx context.Context, poolID string) (api.EnrollmentToken, error) {
	return c.enrollmentToken(ctx, adminPrefix, poolID)
}

// AdminNodes returns every node with its last aggregate status and
// privacy posture.
func (c *Client) AdminNodes(ctx context.Context) ([]api.Node, error) {
	return c.listNodes(ctx, adminPrefix)
}

// UpdateNode enables or disables a node (in.Enabled is required). A
// disabled node is offered to no device and sent an empty peer set.
func (c *Client) UpdateNode(ctx context.Context, nodeID string, in api.NodeUpdate) (api.Node, error) {
	var out api.Node
	err := c.doJSON(ctx, &request{method: http.MethodPut, path: nodePath(adminPrefix, nodeID), auth: authOwner,
		body: in}, &out)
	return out, err
}

// SetNodeEnabled is UpdateNode with Enabled set.
func (c *Client) SetNodeEnabled(ctx context.Context, nodeID string, enabled bool) (api.Node, error) {
	return c.UpdateNode(ctx, nodeID, api.NodeUpdate{Enabled: &enabled})
}

// AdminDeleteNode removes any node; it loses its credential at once.
func (c *Client) AdminDeleteNode(ctx context.Context, nodeID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: nodePath(adminPrefix, nodeID), auth: authOwner}, nil)
}

// SetLegalHold is the OwnerUpdate.LegalHold that places a hold with the
// given reason.
func SetLegalHold(reason string) api.NullableString {
	return api.NullableString{Set: true, Value: &reason}
}

// ReleaseLegalHold is the OwnerUpdate.LegalHold that releases a hold.
func ReleaseLegalHold() api.NullableString { return api.NullableString{Set: true} }
