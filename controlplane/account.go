package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// deleteOwner hard-deletes an owner and everything of theirs, tells nodes
// to drop the devices, and checkpoints SQLite so that no copy of the
// deleted rows stays in the WAL. A legal hold refuses with 409 legal_hold
// and the reason.
//
// With Stripe, the account's subscription and customer go first
// (closeBilling), unless an operator's hold or Stripe's facts hold the
// deletion.
func (s *Server) deleteOwner(ctx context.Context, ownerID string) error {
	o, err := s.store.GetOwner(ctx, ownerID)
	if err != nil {
		return err
	}
	if o.LegalHold != nil {
		return apiError(http.StatusConflict, api.CodeLegalHold, "the account is under legal hold and cannot be deleted now: %s", *o.LegalHold)
	}
	if err := s.closeBilling(ctx, ownerID); err != nil {
		return err
	}
	err = s.store.DeleteOwner(ctx, ownerID)
	var held *store.LegalHoldError
	if errors.As(err, &held) {
		return apiError(http.StatusConflict, api.CodeLegalHold, "the account is under legal hold and cannot be deleted now: %s", held.Reason)
	}
	if err != nil {
		return err
	}
	s.alerts.Forget(ownerID)
	if err := s.store.Checkpoint(ctx); err != nil {
		// The rows are gone; the WAL copy goes at the next checkpoint.
		s.log.LogAttrs(ctx, slog.LevelWarn, "checkpoint after account deletion", slog.String(logError, err.Error()))
	}
	return nil
}

// exportOwner returns everything stored about the owner.
func (s *Server) exportOwner(ctx context.Context, ownerID string) (api.Export, error) {
	tables, err := s.store.ExportOwner(ctx, ownerID)
	if err != nil {
		return api.Export{}, err
	}
	return api.Export{GeneratedAt: s.now().UTC(), Tables: tables}, nil
}

func (s *Server) handleDeleteMe(c echo.Context) error {
	if err := s.deleteOwner(c.Request().Context(), currentOwner(c).ID); err != nil {
		return err
	}
	c.SetCookie(clearCookie(s.secureCookies(c)))
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleExportMe(c echo.Context) error {
	ex, err := s.exportOwner(c.Request().Context(), currentOwner(c).ID)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="traceless-export.json"`)
	return c.JSON(http.StatusOK, ex)
}

// handleAdminDeleteOwner lets an operator delete an account the same way.
func (s *Server) handleAdminDeleteOwner(c echo.Context) error {
	id := c.Param("owner_id")
	if id == currentOwner(c).ID {
		return apiError(http.StatusConflict, api.CodeConflict, "delete your own operator account with DELETE /api/v1/me")
	}
	if err := s.deleteOwner(c.Request().Context(), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
