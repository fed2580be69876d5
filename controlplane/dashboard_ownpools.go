package controlplane

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/store"
)

// An owner's own servers (dedicated pools, ownerpools.go): the pages do
// what /api/v1/pools and /api/v1/nodes do, with the same checks. Only the
// owner's own pools and nodes exist here; anyone else's answer 404.

// ownPoolRow is a dedicated pool with its node count.
type ownPoolRow struct {
	store.Pool
	Nodes int
}

// ownPoolsBody is the own servers page.
type ownPoolsBody struct {
	Pools       []ownPoolRow
	Nodes       adminNodesBody
	MaxOwnNodes int
	PlanName    string
	Form        poolForm
}

func (d *dashboard) ownPoolsPage(c echo.Context, status int, p *page, f poolForm) error {
	ctx := c.Request().Context()
	o := currentOwner(c)
	pools, err := d.s.store.ListPools(ctx, o.ID)
	if err != nil {
		return err
	}
	nodes, err := d.nodeRows(ctx, o.ID)
	if err != nil {
		return err
	}
	plan, err := d.s.store.GetPlan(ctx, o.PlanID)
	if err != nil {
		return err
	}
	count := map[string]int{}
	for _, n := range nodes.Nodes {
		count[n.PoolID]++
	}
	body := ownPoolsBody{Nodes: nodes, MaxOwnNodes: plan.MaxOwnNodes, PlanName: plan.Name, Form: f}
	for _, pl := range pools {
		body.Pools = append(body.Pools, ownPoolRow{Pool: pl, Nodes: count[pl.ID]})
	}
	p.Body = body
	return d.render(c, status, "own_pools.html", p)
}

func (d *dashboard) handleOwnPools(c echo.Context) error {
	return d.ownPoolsPage(c, http.StatusOK, d.newPage(c, "Your own servers", "servers"), poolForm{})
}

// handleCreateOwnPool creates a dedicated pool, like POST /api/v1/pools.
func (d *dashboard) handleCreateOwnPool(c echo.Context) error {
	f := poolForm{Name: formValue(c, "name"), Region: formValue(c, "region"),
		Country: strings.ToUpper(formValue(c, "country")), City: formValue(c, "city")}
	_, err := d.s.store.CreateOwnerPool(c.Request().Context(), currentOwner(c).ID,
		store.Pool{Name: f.Name, Region: f.Region, Country: f.Country, City: f.City})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			err = badRequest("name", "is taken by another pool")
		}
		p := d.newPage(c, "Your own servers", "servers")
		status, err := p.setError("pool", err, "name", "region", "country", "city")
		if err != nil {
			return err
		}
		return d.ownPoolsPage(c, status, p, f)
	}
	return redirect(c, pathWithDone("/pools", "own-pool-created"))
}

// ownPool loads one of the signed-in owner's dedicated pools.
func (d *dashboard) ownPool(c echo.Context) (store.Pool, error) {
	return d.s.store.GetOwnerPool(c.Request().Context(), currentOwner(c).ID, c.Param("pool_id"))
}

func (d *dashboard) handleDeleteOwnPoolPage(c echo.Context) error {
	pool, err := d.ownPool(c)
	if err != nil {
		return err
	}
	p := d.newPage(c, "Delete "+pool.Name, "servers")
	p.Body = confirmBody{
		Heading: "Delete your pool “" + pool.Name + "”?",
		Message: "This cannot be undone.",
		Details: []string{
			"Its nodes are removed with it: their credentials stop working at once, and your devices are no longer installed on them.",
			"Your devices stay registered; they keep the other servers of your plan.",
		},
		Action: "/pools/" + pool.ID + "/delete",
		Button: "Delete pool",
		Cancel: "/pools",
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// handleDeleteOwnPool deletes a dedicated pool and its nodes, like DELETE
// /api/v1/pools/{pool_id}.
func (d *dashboard) handleDeleteOwnPool(c echo.Context) error {
	if err := d.s.store.DeletePool(c.Request().Context(), currentOwner(c).ID, c.Param("pool_id")); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/pools", "own-pool-deleted"))
}

// handleOwnEnrollmentToken issues a one-use token for a dedicated pool,
// like POST /api/v1/pools/{pool_id}/enrollment-tokens, and shows it once.
func (d *dashboard) handleOwnEnrollmentToken(c echo.Context) error {
	pool, err := d.ownPool(c)
	if err != nil {
		return err
	}
	body, err := d.issueEnrollmentToken(c, pool)
	if err != nil {
		return err
	}
	body.PoolsPath, body.NodesPath = "/pools", "/pools"
	p := d.newPage(c, "Enrollment token", "servers")
	p.Body = body
	return d.render(c, http.StatusCreated, "enroll_token.html", p)
}

// ownNode loads one of the owner's own nodes.
func (d *dashboard) ownNode(c echo.Context) (store.NodeWithPool, error) {
	nodes, err := d.s.store.ListNodes(c.Request().Context(), currentOwner(c).ID)
	if err != nil {
		return store.NodeWithPool{}, err
	}
	for _, n := range nodes {
		if n.ID == c.Param("node_id") {
			return n, nil
		}
	}
	return store.NodeWithPool{}, store.ErrNotFound
}

func (d *dashboard) handleDeleteOwnNodePage(c echo.Context) error {
	n, err := d.ownNode(c)
	if err != nil {
		return err
	}
	p := d.newPage(c, "Remove "+n.Name, "servers")
	p.Body = confirmBody{
		Heading: "Remove your node “" + n.Name + "” from " + n.Pool.Name + "?",
		Message: "This cannot be undone.",
		Details: []string{
			"Its credential stops working at once; the agent on it can no longer fetch your devices.",
			"To bring the server back, enroll it again with a new token.",
		},
		Action: "/nodes/" + n.ID + "/delete",
		Button: "Remove node",
		Cancel: "/pools",
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// handleDeleteOwnNode removes one of the owner's nodes, like DELETE
// /api/v1/nodes/{node_id}.
func (d *dashboard) handleDeleteOwnNode(c echo.Context) error {
	id := c.Param("node_id")
	if err := d.s.store.DeleteOwnerNode(c.Request().Context(), currentOwner(c).ID, id); err != nil {
		return err
	}
	d.s.status.forget(id)
	return redirect(c, pathWithDone("/pools", "own-node-deleted"))
}
