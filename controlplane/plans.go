package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func planView(p store.PlanWithPools) api.Plan {
	pools := p.PoolIDs
	if pools == nil {
		pools = []string{}
	}
	return api.Plan{
		ID: p.ID, Slug: p.Slug, Name: p.Name, MaxApps: p.MaxApps, MaxDevices: p.MaxDevices,
		MaxOwnNodes: p.MaxOwnNodes, PriceCents: p.PriceCents, Currency: p.Currency, Retired: p.Retired, Pools: pools,
	}
}

func planFromInput(id string, in api.PlanInput) store.PlanWithPools {
	return store.PlanWithPools{
		Plan: store.Plan{ID: id, Slug: in.Slug, Name: in.Name, MaxApps: in.MaxApps, MaxDevices: in.MaxDevices,
			MaxOwnNodes: in.MaxOwnNodes, PriceCents: in.PriceCents, Currency: in.Currency, Retired: in.Retired},
		PoolIDs: in.Pools,
	}
}

func (s *Server) listPlans(c echo.Context, includeRetired bool) error {
	plans, err := s.store.ListPlans(c.Request().Context(), includeRetired)
	if err != nil {
		return err
	}
	out := api.PlanList{Plans: make([]api.Plan, len(plans))}
	for i, p := range plans {
		out.Plans[i] = planView(p)
	}
	return c.JSON(http.StatusOK, out)
}

// handleListPlans is the public catalogue: active plans only.
func (s *Server) handleListPlans(c echo.Context) error { return s.listPlans(c, false) }

// handleAdminListPlans includes retired plans.
func (s *Server) handleAdminListPlans(c echo.Context) error { return s.listPlans(c, true) }

func (s *Server) handleAdminCreatePlan(c echo.Context) error {
	var in api.PlanInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	p, err := s.store.CreatePlan(c.Request().Context(), planFromInput("", in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, planView(p))
}

func (s *Server) handleAdminUpdatePlan(c echo.Context) error {
	var in api.PlanInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	p, err := s.store.UpdatePlan(c.Request().Context(), planFromInput(c.Param("plan_id"), in))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, planView(p))
}

func (s *Server) handleAdminDeletePlan(c echo.Context) error {
	if err := s.store.DeletePlan(c.Request().Context(), c.Param("plan_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
