package controlplane

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

func (s *Server) handleHealth(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return c.JSON(http.StatusServiceUnavailable, api.Health{Status: "store unavailable"})
	}
	return c.JSON(http.StatusOK, api.Health{Status: "ok"})
}
