package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// handleOpenAPI serves the OpenAPI 3 document of the API.
func (s *Server) handleOpenAPI(c echo.Context) error {
	return c.JSON(http.StatusNotImplemented, map[string]string{"status": "document not built yet"})
}
