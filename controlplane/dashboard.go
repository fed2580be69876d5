package controlplane

import "github.com/labstack/echo/v4"

// dashboardRoutes registers the server-rendered dashboard's pages.
func (s *Server) dashboardRoutes(e *echo.Echo) {}
