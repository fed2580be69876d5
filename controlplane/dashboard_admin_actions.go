package controlplane

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// Operators' actions that change or remove what exists: enable, disable
// and remove nodes, delete pools, plans and accounts. Each does what its
// /api/v1/admin route does; deletions ask for confirmation first.

// adminNode loads a node with its pool.
func (d *dashboard) adminNode(c echo.Context) (store.NodeWithPool, error) {
	ctx := c.Request().Context()
	n, err := d.s.store.GetNode(ctx, c.Param("node_id"))
	if err != nil {
		return store.NodeWithPool{}, err
	}
	p, err := d.s.store.GetPool(ctx, n.PoolID)
	return store.NodeWithPool{Node: n, Pool: p}, err
}

// handleAdminNodeEnabled enables (enabled=true) or disables
// (enabled=false) a node, like PUT /api/v1/admin/nodes/{node_id}: a
// disabled node is offered to no client and gets an empty peer set.
func (d *dashboard) handleAdminNodeEnabled(c echo.Context) error {
	var enabled bool
	switch formValue(c, "enabled") {
	case "true":
		enabled = true
	case "false":
	default:
		return badRequest("enabled", "The choice must be true or false.")
	}
	if _, err := d.s.store.SetNodeEnabled(c.Request().Context(), c.Param("node_id"), enabled); err != nil {
		return err
	}
	if enabled {
		return redirect(c, pathWithDone("/admin/nodes", "node-enabled"))
	}
	return redirect(c, pathWithDone("/admin/nodes", "node-disabled"))
}

func (d *dashboard) handleAdminDeleteNodePage(c echo.Context) error {
	n, err := d.adminNode(c)
	if err != nil {
		return err
	}
	p := d.newPage(c, "Remove "+n.Name, "admin-nodes")
	p.Body = confirmBody{
		Heading: "Remove the node “" + n.Name + "” from " + n.Pool.Name + "?",
		Message: "This cannot be undone.",
		Details: []string{
			"Its credential and tokens stop working at once; clients are no longer offered it.",
			"To bring the server back, enroll it again with a new token. Disabling it instead keeps its enrollment.",
		},
		Action: "/admin/nodes/" + n.ID + "/delete",
		Button: "Remove node",
		Cancel: "/admin/nodes",
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// handleAdminDeleteNode removes a node, like DELETE
// /api/v1/admin/nodes/{node_id}.
func (d *dashboard) handleAdminDeleteNode(c echo.Context) error {
	id := c.Param("node_id")
	if err := d.s.store.DeleteNode(c.Request().Context(), id); err != nil {
		return err
	}
	d.s.status.forget(id)
	return redirect(c, pathWithDone("/admin/nodes", "node-removed"))
}

func (d *dashboard) handleAdminDeletePoolPage(c echo.Context) error {
	ctx := c.Request().Context()
	pool, err := d.s.store.GetPool(ctx, c.Param("pool_id"))
	if err != nil {
		return err
	}
	nodes, err := d.s.store.ListNodes(ctx, "")
	if err != nil {
		return err
	}
	n := 0
	for _, x := range nodes {
		if x.PoolID == pool.ID {
			n++
		}
	}
	nodesText := "It has no nodes."
	if n > 0 {
		nodesText = "Its " + plural(n, "node is", "nodes are") + " removed with it: their credentials stop working at once."
	}
	details := []string{nodesText, "Devices stay registered; they are no longer installed on this pool's nodes."}
	if pool.OwnerID != nil {
		details = append(details, "It is an owner's dedicated pool: that owner's own servers go with it.")
	}
	p := d.newPage(c, "Delete "+pool.Name, "admin-pools")
	p.Body = confirmBody{
		Heading: "Delete the pool “" + pool.Name + "”?",
		Message: "This cannot be undone.",
		Details: details,
		Action:  "/admin/pools/" + pool.ID + "/delete",
		Button:  "Delete pool",
		Cancel:  "/admin/pools",
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// handleAdminDeletePool deletes a pool and its nodes, like DELETE
// /api/v1/admin/pools/{pool_id}.
func (d *dashboard) handleAdminDeletePool(c echo.Context) error {
	if err := d.s.store.DeletePool(c.Request().Context(), "", c.Param("pool_id")); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/admin/pools", "pool-deleted"))
}

// errPlanInUse answers the deletion of a plan that owners are on.
var errPlanInUse = apiError(http.StatusConflict, api.CodeConflict,
	"Owners are on this plan, so it cannot be deleted. Retire it instead: new owners cannot choose it, and those on it keep it.")

func (d *dashboard) handleAdminDeletePlanPage(c echo.Context) error {
	ctx := c.Request().Context()
	plan, err := d.s.store.GetPlan(ctx, c.Param("plan_id"))
	if err != nil {
		return err
	}
	body := confirmBody{
		Heading: "Delete the plan “" + plan.Name + "”?",
		Message: "This cannot be undone.",
		Details: []string{"It leaves the catalogue; its pools stay and keep serving the other plans that include them."},
		Action:  "/admin/plans/" + plan.ID + "/delete",
		Button:  "Delete plan",
		Cancel:  "/admin/plans/" + plan.ID,
	}
	p := d.newPage(c, "Delete "+plan.Name, "admin-plans")
	p.Body = body
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// handleAdminDeletePlan deletes a plan no owner is on, like DELETE
// /api/v1/admin/plans/{plan_id}.
func (d *dashboard) handleAdminDeletePlan(c echo.Context) error {
	err := d.s.store.DeletePlan(c.Request().Context(), c.Param("plan_id"))
	if errors.Is(err, store.ErrConflict) {
		return errPlanInUse
	}
	if err != nil {
		return err
	}
	return redirect(c, pathWithDone("/admin/plans", "plan-deleted"))
}

// errDeleteSelf answers an operator deleting their own account here.
var errDeleteSelf = apiError(http.StatusConflict, api.CodeConflict,
	"This is your own account. Delete it from your Account page, where you confirm with your email address.")

func (d *dashboard) handleAdminDeleteOwnerPage(c echo.Context) error {
	ctx := c.Request().Context()
	o, err := d.s.store.GetOwner(ctx, c.Param("owner_id"))
	if err != nil {
		return err
	}
	if o.ID == currentOwner(c).ID {
		return errDeleteSelf
	}
	apps, devices, err := d.ownerUsage(ctx, o.ID)
	if err != nil {
		return err
	}
	details := []string{
		"Its " + plural(len(apps), "app", "apps") + " and their API keys are deleted with it.",
		deviceCountText(devices) + " deleted and removed from every server; their users lose their VPN connection.",
		"Nothing about the account remains on this server.",
	}
	if o.LegalHold != nil {
		details = append(details, "It is under a legal hold ("+*o.LegalHold+"): release the hold first, or the deletion is refused.")
	}
	p := d.newPage(c, "Delete "+o.Email, "admin-owners")
	p.Body = confirmBody{
		Heading: "Delete the account " + o.Email + "?",
		Message: "This cannot be undone.",
		Details: details,
		Action:  "/admin/owners/" + o.ID + "/delete",
		Button:  "Delete account",
		Cancel:  "/admin/owners/" + o.ID,
	}
	return d.render(c, http.StatusOK, "confirm.html", p)
}

// handleAdminDeleteOwner hard-deletes an account, like DELETE
// /api/v1/admin/owners/{owner_id}; a legal hold refuses it with its reason.
func (d *dashboard) handleAdminDeleteOwner(c echo.Context) error {
	id := c.Param("owner_id")
	if id == currentOwner(c).ID {
		return errDeleteSelf
	}
	if err := d.s.deleteOwner(c.Request().Context(), id); err != nil {
		return err
	}
	return redirect(c, pathWithDone("/admin/owners", "owner-deleted"))
}
