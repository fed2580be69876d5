package controlplane

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

// Registration tickets: the recommended way for an app to register its
// device. The owner's backend, holding the secret key, mints a ticket for
// one app install (after its own sign-in or purchase checks) and hands it
// over; the app registers with it, once, within minutes, and from then on
// uses the device token the registration answers. No long-lived
// credential ships in the app.

// Bounds of a ticket's lifetime, in seconds.
const (
	minTicketTTL = 10
	maxTicketTTL = int(store.MaxTicketTTL / time.Second)
)

// handleCreateTicket mints a registration ticket for the secret key's app.
func (s *Server) handleCreateTicket(c echo.Context) error {
	var in api.TicketInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	t, err := s.mintTicket(c.Request().Context(), currentApp(c).appID, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, t)
}

// mintTicket checks in and stores a new ticket for appID (which the caller
// has authorised); it answers the ticket, shown only this once.
func (s *Server) mintTicket(ctx context.Context, appID string, in api.TicketInput) (api.RegistrationTicket, error) {
	ttl := in.TTLSeconds
	if ttl == 0 {
		ttl = maxTicketTTL
	}
	if ttl < minTicketTTL || ttl > maxTicketTTL {
		return api.RegistrationTicket{}, badRequest("ttl_seconds", "must be %d to %d (absent: %d)", minTicketTTL, maxTicketTTL, maxTicketTTL)
	}
	ticket, hash := newCredential(ticketPrefix)
	// Whole seconds: what the answer says is exactly what is stored.
	exp := s.now().Add(time.Duration(ttl) * time.Second).UTC().Truncate(time.Second)
	t, err := s.store.CreateTicket(ctx, store.RegistrationTicket{Hash: hash, AppID: appID, ExternalRef: in.ExternalRef, ExpiresAt: exp})
	if err != nil {
		return api.RegistrationTicket{}, err
	}
	return api.RegistrationTicket{Ticket: ticket, ExpiresAt: t.ExpiresAt, ExternalRef: t.ExternalRef}, nil
}
