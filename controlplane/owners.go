package controlplane

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// pageLimit reads ?limit= (default 50, at most 500).
func pageLimit(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 0, badRequest("limit", "must be an integer from 1 to 500")
	}
	return n, nil
}

func (s *Server) handleAdminListOwners(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	cursor := c.QueryParam("cursor")
	if len(cursor) > 64 {
		return badRequest("cursor", "is not a valid cursor")
	}
	ctx := c.Request().Context()
	owners, err := s.store.ListOwners(ctx, cursor, limit+1)
	if err != nil {
		return err
	}
	out := api.OwnerList{Owners: []api.Owner{}}
	if len(owners) > limit {
		owners = owners[:limit]
		out.NextCursor = owners[limit-1].ID
	}
	for _, o := range owners {
		v, err := s.ownerView(ctx, o)
		if err != nil {
			return err
		}
		out.Owners = append(out.Owners, v)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleAdminUpdateOwner(c echo.Context) error {
	var in api.OwnerUpdate
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	u := store.OwnerUpdate{Status: in.Status, PlanSlug: in.Plan}
	if in.LegalHold.Set {
		if in.LegalHold.Value == nil {
			u.ClearLegalHold = true
		} else {
			u.LegalHold = in.LegalHold.Value
		}
	}
	ctx := c.Request().Context()
	o, err := s.store.UpdateOwner(ctx, c.Param("owner_id"), u)
	if err != nil {
		return err
	}
	v, err := s.ownerView(ctx, o)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}
