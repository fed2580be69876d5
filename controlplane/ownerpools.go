package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// Dedicated pools ("bring your own node"): an owner whose plan allows own
// nodes creates pools, enrolls their own servers into them, and their
// apps' devices are carried there too; no other owner's devices ever are.
// Owners see only their own pools and nodes; operators see all.

func (s *Server) handleListOwnPools(c echo.Context) error { return s.listPools(c, currentOwner(c).ID) }

func (s *Server) handleCreateOwnPool(c echo.Context) error {
	var in api.PoolInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if len(in.Plans) > 0 {
		return badRequest("plans", "is for operators' shared pools; a dedicated pool serves your own apps and is in no plan")
	}
	p, err := s.store.CreateOwnerPool(c.Request().Context(), currentOwner(c).ID,
		store.Pool{Name: in.Name, Region: in.Region, Country: in.Country, City: in.City})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, poolView(p, nil))
}

func (s *Server) handleDeleteOwnPool(c echo.Context) error {
	if err := s.store.DeletePool(c.Request().Context(), currentOwner(c).ID, c.Param("pool_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleOwnEnrollmentToken(c echo.Context) error {
	if _, err := s.store.GetOwnerPool(c.Request().Context(), currentOwner(c).ID, c.Param("pool_id")); err != nil {
		return err
	}
	return s.handleAdminEnrollmentToken(c)
}

func (s *Server) handleListOwnNodes(c echo.Context) error { return s.listNodes(c, currentOwner(c).ID) }

func (s *Server) handleDeleteOwnNode(c echo.Context) error {
	id := c.Param("node_id")
	if err := s.store.DeleteOwnerNode(c.Request().Context(), currentOwner(c).ID, id); err != nil {
		return err
	}
	s.status.forget(id)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleAdminDeletePool(c echo.Context) error {
	if err := s.store.DeletePool(c.Request().Context(), "", c.Param("pool_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
