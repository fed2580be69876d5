package controlplane

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/store"
)

// The operators' overview (/admin): where an operator lands after setup
// or sign-in. It answers "does the service work, and what needs me?":
// pools, nodes online and offline, posture failures, accounts, and
// warnings about configurations that serve nobody.

// overviewPool is a pool with its nodes' state.
type overviewPool struct {
	store.Pool
	Nodes, Online int
	// Plans names the plans that include the pool (shared pools only).
	Plans []string
}

// overviewWarning is something that needs the operator, with where to fix
// it.
type overviewWarning struct {
	Text, Link, Action string
}

// adminOverviewBody is the overview page.
type adminOverviewBody struct {
	Pools                 []overviewPool
	Nodes                 int
	Online, Offline       int
	Disabled, Unreported  int
	PostureFailing        []nodeRow
	Owners, Operators     int64
	Apps, Devices         int64
	Revision              int64
	Warnings              []overviewWarning
	NoPools, NoNodes      bool
	SharedPools, OwnPools int
}

// poolsInNoPlan returns the shared pools that no plan (retired or not)
// includes: their nodes carry nobody's devices. Dedicated pools are never
// in a plan; their owner's devices are carried by them.
func poolsInNoPlan(pools []store.Pool, plans []store.PlanWithPools) []store.Pool {
	included := map[string]bool{}
	for _, p := range plans {
		for _, id := range p.PoolIDs {
			included[id] = true
		}
	}
	var out []store.Pool
	for _, p := range pools {
		if p.OwnerID == nil && !included[p.ID] {
			out = append(out, p)
		}
	}
	return out
}

func (d *dashboard) adminOverview(ctx context.Context) (adminOverviewBody, error) {
	var b adminOverviewBody
	pools, err := d.s.store.ListPools(ctx, "")
	if err != nil {
		return b, err
	}
	plans, err := d.s.store.ListPlans(ctx, true)
	if err != nil {
		return b, err
	}
	nodes, err := d.nodeRows(ctx, "")
	if err != nil {
		return b, err
	}
	st, err := d.s.store.Stats(ctx)
	if err != nil {
		return b, err
	}
	admins, err := d.s.store.CountAdmins(ctx)
	if err != nil {
		return b, err
	}
	b.Operators, b.Owners = admins, st.Owners-admins
	b.Apps, b.Devices, b.Revision = st.Apps, st.Devices, nodes.Revision

	planNames := map[string][]string{}
	for _, p := range plans {
		for _, id := range p.PoolIDs {
			planNames[id] = append(planNames[id], p.Name)
		}
	}
	index := map[string]int{}
	for _, p := range pools {
		index[p.ID] = len(b.Pools)
		b.Pools = append(b.Pools, overviewPool{Pool: p, Plans: planNames[p.ID]})
		if p.OwnerID == nil {
			b.SharedPools++
		} else {
			b.OwnPools++
		}
	}
	var offline []string
	for _, n := range nodes.Nodes {
		b.Nodes++
		if i, ok := index[n.PoolID]; ok {
			b.Pools[i].Nodes++
			if n.Online {
				b.Pools[i].Online++
			}
		}
		switch {
		case !n.Enabled:
			b.Disabled++
			continue
		case n.Online:
			b.Online++
		default:
			b.Offline++
			offline = append(offline, n.Name)
		}
		if !n.Reported {
			b.Unreported++
		}
		if n.Online && n.Failed > 0 {
			b.PostureFailing = append(b.PostureFailing, n)
		}
	}
	b.NoPools, b.NoNodes = len(pools) == 0, b.Nodes == 0
	b.Warnings = overviewWarnings(b, poolsInNoPlan(pools, plans), plans, offline)
	return b, nil
}

// overviewWarnings lists what needs the operator, most blocking first.
func overviewWarnings(b adminOverviewBody, unplanned []store.Pool, plans []store.PlanWithPools, offline []string) []overviewWarning {
	var w []overviewWarning
	if b.SharedPools == 0 {
		w = append(w, overviewWarning{Text: "There is no shared pool yet, so no owner's devices have a server.",
			Link: "/admin/pools", Action: "Create a pool"})
	}
	for _, p := range unplanned {
		w = append(w, overviewWarning{Text: fmt.Sprintf("Pool %s is in no plan: its nodes serve nobody's devices.", p.Name),
			Link: "/admin/plans", Action: "Add it to a plan"})
	}
	for _, p := range plans {
		if !p.Retired && len(p.PoolIDs) == 0 {
			w = append(w, overviewWarning{Text: fmt.Sprintf("Plan %s includes no pool: its owners get no server.", p.Name),
				Link: "/admin/plans/" + p.ID, Action: "Edit the plan"})
		}
	}
	for _, p := range b.Pools {
		if p.OwnerID == nil && p.Nodes == 0 {
			w = append(w, overviewWarning{Text: fmt.Sprintf("Pool %s has no node yet.", p.Name),
				Link: "/admin/pools", Action: "Add a node"})
		}
	}
	for _, name := range offline {
		w = append(w, overviewWarning{Text: fmt.Sprintf("Node %s is offline: no status report in the last %s.", name, onlineWindow),
			Link: "/admin/nodes", Action: "See the nodes"})
	}
	for _, n := range b.PostureFailing {
		w = append(w, overviewWarning{Text: fmt.Sprintf("Node %s fails %s.", n.Name, plural(n.Failed, "privacy posture check", "privacy posture checks")),
			Link: "/admin/nodes", Action: "See which"})
	}
	return w
}

// handleAdminOverview is the operators' landing page.
func (d *dashboard) handleAdminOverview(c echo.Context) error {
	body, err := d.adminOverview(c.Request().Context())
	if err != nil {
		return err
	}
	p := d.newPage(c, "Overview", "admin-overview")
	p.Body = body
	return d.render(c, http.StatusOK, "admin_overview.html", p)
}

// landing is where an account goes after signing in: operators to the
// overview, owners to their apps.
func landing(o store.Owner) string {
	if o.Role == store.RoleAdmin {
		return "/admin"
	}
	return "/apps"
}
