package controlplane

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
)

// handleReady is the readiness check: 200 when the store takes writes, 503
// storage_unavailable when it does not (disk full, read-only, database
// gone, or no answer within two seconds). /healthz stays a liveness check:
// a server whose disk is full is alive and still serves reads, but a load
// balancer should send writes elsewhere.
func (s *Server) handleReady(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ready(ctx); err != nil {
		s.log.LogAttrs(c.Request().Context(), slog.LevelWarn, "not ready", slog.String(logError, err.Error()))
		return errStorageUnavailable
	}
	return c.JSON(http.StatusOK, api.Health{Status: "ready"})
}
