package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// Dedicated pools ("bring your own node"): an owner whose plan allows own
// nodes creates pools and enrolls their own servers into them; only that
// owner's devices are carried there. These methods need the owner's
// session and see only the owner's own pools and nodes; operators manage
// every pool with the Admin… methods.

func poolPath(prefix, poolID string) string { return prefix + "/pools/" + url.PathEscape(poolID) }

func nodePath(prefix, nodeID string) string { return prefix + "/nodes/" + url.PathEscape(nodeID) }

const (
	ownerPrefix = "/api/v1"
	adminPrefix = "/api/v1/admin"
)

// Pools returns the signed-in owner's dedicated pools.
func (c *Client) Pools(ctx context.Context) ([]api.Pool, error) {
	return c.listPools(ctx, ownerPrefix)
}

// CreatePool creates a dedicated pool of the signed-in owner. It fails with
// api.CodePlanLimit when the plan allows no own nodes, api.CodeConflict
// when the name is taken and api.CodeInvalidRequest for bad input (Country
// is an ISO 3166 alpha-2 code).
func (c *Client) CreatePool(ctx context.Context, in api.PoolInput) (api.Pool, error) {
	return c.createPool(ctx, ownerPrefix, in)
}

// DeletePool removes one of the owner's dedicated pools with its nodes and
// unused enrollment tokens; api.CodeNotFound also for a pool that is not
// the owner's.
func (c *Client) DeletePool(ctx context.Context, poolID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: poolPath(ownerPrefix, poolID), auth: authOwner}, nil)
}

// CreateEnrollmentToken issues a one-use token that lets one node join the
// owner's dedicated pool before ExpiresAt. The token is shown only here;
// pass it to traceless-agent in its environment, as api.EnrollCommand
// does. It is never retried.
func (c *Client) CreateEnrollmentToken(ctx context.Context, poolID string) (api.EnrollmentToken, error) {
	return c.enrollmentToken(ctx, ownerPrefix, poolID)
}

// Nodes returns the nodes of the owner's dedicated pools with their last
// aggregate status.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	return c.listNodes(ctx, ownerPrefix)
}

// DeleteNode removes a node of one of the owner's dedicated pools; it
// loses its credential at once. api.CodeNotFound also for a node that is
// not the owner's.
func (c *Client) DeleteNode(ctx context.Context, nodeID string) error {
	return c.doJSON(ctx, &request{method: http.MethodDelete, path: nodePath(ownerPrefix, nodeID), auth: authOwner}, nil)
}

func (c *Client) listPools(ctx context.Context, prefix string) ([]api.Pool, error) {
	var out api.PoolList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: prefix + "/pools", auth: authOwner}, &out)
	return out.Pools, err
}

func (c *Client) createPool(ctx context.Context, prefix string, in api.PoolInput) (api.Pool, error) {
	var out api.Pool
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: prefix + "/pools", auth: authOwner, body: in}, &out)
	return out, err
}

func (c *Client) enrollmentToken(ctx context.Context, prefix, poolID string) (api.EnrollmentToken, error) {
	var out api.EnrollmentToken
	err := c.doJSON(ctx, &request{method: http.MethodPost, path: poolPath(prefix, poolID) + "/enrollment-tokens",
		auth: authOwner}, &out)
	return out, err
}

func (c *Client) listNodes(ctx context.Context, prefix string) ([]api.Node, error) {
	var out api.NodeList
	err := c.doJSON(ctx, &request{method: http.MethodGet, path: prefix + "/nodes", auth: authOwner}, &out)
	return out.Nodes, err
}
