package controlplane

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// poolView is a pool with the slugs of the plans that include it (plans,
// from store.PoolPlans). Plans never include a dedicated pool: it serves
// its owner alone.
func poolView(p store.Pool, plans []string) api.Pool {
	if p.OwnerID != nil || plans == nil {
		plans = []string{}
	}
	return api.Pool{ID: p.ID, Name: p.Name, Region: p.Region, Country: p.Country, City: p.City, OwnerID: p.OwnerID,
		Plans: plans, InNoPlan: p.OwnerID == nil && len(plans) == 0}
}

// poolCapacities compares each pool of nodes with the smallest peer limit
// its nodes report, from their last status reports. Pools whose nodes
// reported no limit are left out.
func (s *Server) poolCapacities(nodes []store.NodeWithPool) map[string]*api.PoolCapacity {
	out := map[string]*api.PoolCapacity{}
	for _, n := range nodes {
		st, ok := s.status.get(n.ID)
		if !ok {
			continue
		}
		pc := out[n.PoolID]
		if pc == nil {
			pc = &api.PoolCapacity{}
		}
		pc.Peers = max(pc.Peers, st.PeerCount)
		if st.PeerLimit > 0 && (pc.SmallestNodeLimit == 0 || st.PeerLimit < pc.SmallestNodeLimit) {
			pc.SmallestNodeLimit, pc.SmallestNode = st.PeerLimit, n.Name
		}
		out[n.PoolID] = pc
	}
	for id, pc := range out {
		if pc.SmallestNodeLimit == 0 {
			delete(out, id)
			continue
		}
		pc.Warning = pc.Peers*100 >= pc.SmallestNodeLimit*api.CapacityWarnPercent
	}
	return out
}

// listPools answers with every pool (ownerID "", for operators) or one
// owner's dedicated pools.
func (s *Server) listPools(c echo.Context, ownerID string) error {
	ctx := c.Request().Context()
	pools, err := s.store.ListPools(ctx, ownerID)
	if err != nil {
		return err
	}
	plans, err := s.store.PoolPlans(ctx)
	if err != nil {
		return err
	}
	nodes, err := s.store.ListNodes(ctx, ownerID)
	if err != nil {
		return err
	}
	caps := s.poolCapacities(nodes)
	out := api.PoolList{Pools: make([]api.Pool, len(pools))}
	for i, p := range pools {
		out.Pools[i] = poolView(p, plans[p.ID])
		out.Pools[i].Capacity = caps[p.ID]
	}
	return c.JSON(http.StatusOK, out)
}

// listNodes answers with every node (ownerID "") or one owner's own nodes,
// each with its last aggregate status.
func (s *Server) listNodes(c echo.Context, ownerID string) error {
	nodes, err := s.store.ListNodes(c.Request().Context(), ownerID)
	if err != nil {
		return err
	}
	out := api.NodeList{Nodes: make([]api.Node, len(nodes))}
	for i, n := range nodes {
		out.Nodes[i] = s.nodeView(n)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleAdminListPools(c echo.Context) error { return s.listPools(c, "") }

func (s *Server) handleAdminCreatePool(c echo.Context) error {
	var in api.PoolInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	ctx := c.Request().Context()
	p, err := s.store.CreateSharedPool(ctx, store.Pool{Name: in.Name, Region: in.Region, Country: in.Country, City: in.City}, in.Plans)
	if err != nil {
		return err
	}
	plans, err := s.store.PoolPlans(ctx)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, poolView(p, plans[p.ID]))
}

// handleAdminEnrollmentToken issues a one-use token that lets one node join
// the pool before it expires. Only its hash is stored.
func (s *Server) handleAdminEnrollmentToken(c echo.Context) error {
	poolID := c.Param("pool_id")
	tok, exp, err := s.newEnrollmentToken(c.Request().Context(), poolID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.EnrollmentToken{Token: tok, ExpiresAt: exp, PoolID: poolID})
}

// newEnrollmentToken mints a one-use token for the pool, valid for
// EnrollmentTTL by the server's clock, and stores its hash. The API and the
// dashboard both issue tokens through it.
func (s *Server) newEnrollmentToken(ctx context.Context, poolID string) (string, time.Time, error) {
	tok := randomSecret(enrollTokenPrefix)
	now := s.now()
	exp := now.Add(s.opts.EnrollmentTTL).UTC()
	if err := s.store.CreateEnrollmentToken(ctx, poolID, hashAPIKey(tok), exp, now); err != nil {
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

func (s *Server) nodeView(n store.NodeWithPool) api.Node {
	v := api.Node{ID: n.ID, PoolID: n.PoolID, Pool: n.Pool.Name, Name: n.Name, Endpoint: n.Endpoint,
		PublicKey: n.PublicKey, Enabled: n.Enabled, Online: s.nodeOnline(n.ID)}
	if st, ok := s.status.get(n.ID); ok {
		ns := st.NodeStatus
		v.Status = &ns
	}
	return v
}

func (s *Server) handleAdminListNodes(c echo.Context) error { return s.listNodes(c, "") }

func (s *Server) handleAdminUpdateNode(c echo.Context) error {
	var in api.NodeUpdate
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Enabled == nil {
		return badRequest("enabled", "is required")
	}
	ctx := c.Request().Context()
	n, err := s.store.SetNodeEnabled(ctx, c.Param("node_id"), *in.Enabled)
	if err != nil {
		return err
	}
	p, err := s.store.GetPool(ctx, n.PoolID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.nodeView(store.NodeWithPool{Node: n, Pool: p}))
}

func (s *Server) handleAdminDeleteNode(c echo.Context) error {
	id := c.Param("node_id")
	if err := s.store.DeleteNode(c.Request().Context(), id); err != nil {
		return err
	}
	s.status.forget(id)
	return c.NoContent(http.StatusNoContent)
}
