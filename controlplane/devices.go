package controlplane

import (
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func deviceView(d store.Device) api.Device {
	return api.Device{ID: d.ID, PublicKey: d.PublicKey, IPv4: d.IPv4, IPv6: d.IPv6, ExternalRef: d.ExternalRef}
}

// deviceCreated answers a registration or rotation with the device, its
// servers and its new device token (shown only here).
func (s *Server) deviceCreated(c echo.Context, status int, d store.Device, token string) error {
	servers, err := s.serverViews(c, currentApp(c).ownerID)
	if err != nil {
		return err
	}
	return c.JSON(status, api.DeviceCreated{Device: deviceView(d), Servers: servers, DeviceToken: token})
}

// Refusals of a registration.
var (
	errTicketUsed = apiError(http.StatusUnauthorized, api.CodeUnauthorized, "the registration ticket is unknown, used or expired")
	errTicketRef  = &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Field: "external_ref",
		Message: "the registration ticket is bound to another external_ref"}
	errRegistrationCap = apiError(http.StatusTooManyRequests, api.CodeRateLimited,
		"the app's cap on registrations per hour with publishable keys is reached; try again later")
)

// handleRegisterDevice registers a device with a secret key, a publishable
// key (within the app's hourly cap) or a registration ticket (which the
// registration spends, and whose external_ref the device gets). The answer
// carries the device's own token.
func (s *Server) handleRegisterDevice(c echo.Context) error {
	var in api.DeviceInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a := currentApp(c)
	now := s.now()
	nd := store.NewDevice{PublicKey: in.PublicKey, ExternalRef: in.ExternalRef}
	if a.kind == credTicket {
		if a.ticketRef != nil {
			if in.ExternalRef != nil && *in.ExternalRef != *a.ticketRef {
				return errTicketRef
			}
			nd.ExternalRef = a.ticketRef
		}
		nd.Ticket = &store.TicketUse{Hash: a.ticketHash, Now: now}
	}
	capped := a.kind == credPublishable && a.registrationCap > 0
	if capped {
		if ok, wait := s.regCap.reserve(a.appID, a.registrationCap, now); !ok {
			c.Response().Header().Set(echo.HeaderRetryAfter, retryAfter(wait))
			return errRegistrationCap
		}
	}
	token, hash := newCredential(deviceTokenPrefix)
	nd.TokenHash = hash
	d, err := s.store.RegisterDevice(c.Request().Context(), a.appID, nd)
	if err != nil {
		if capped {
			s.regCap.release(a.appID, now)
		}
		if errors.Is(err, store.ErrTicketInvalid) {
			return errTicketUsed
		}
		return keyConflict(err)
	}
	return s.deviceCreated(c, http.StatusCreated, d, token)
}

// errKeyRegistered answers a registration or rotation with a public key
// that a device already has. Keys are unique across apps, since every node
// routes by key.
var errKeyRegistered = apiError(http.StatusConflict, api.CodeConflict, "this public key is already registered")

// keyConflict turns the store's conflict on registering or rotating a
// device, which is always a known public key, into errKeyRegistered.
func keyConflict(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return errKeyRegistered
	}
	return err
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// decodeCursor turns an opaque cursor back into the last ID of a page.
func decodeCursor(cur string) (string, error) {
	if cur == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil || !uuidRE.Match(b) {
		return "", badRequest("cursor", "is not a cursor this server returned")
	}
	return string(b), nil
}

func encodeCursor(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

func (s *Server) handleListDevices(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	after, err := decodeCursor(c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	devs, err := s.store.ListDevices(c.Request().Context(), currentApp(c).appID, after, limit+1)
	if err != nil {
		return err
	}
	out := api.DeviceList{Devices: make([]api.Device, 0, min(len(devs), limit))}
	if len(devs) > limit {
		devs = devs[:limit]
		out.NextCursor = encodeCursor(devs[limit-1].ID)
	}
	for _, d := range devs {
		out.Devices = append(out.Devices, deviceView(d))
	}
	return c.JSON(http.StatusOK, out)
}

// handleGetDevice answers one device's record with its app's rotation
// policy, which a device holding only its own token cannot read elsewhere.
func (s *Server) handleGetDevice(c echo.Context) error {
	a := currentApp(c)
	ctx := c.Request().Context()
	d, err := s.store.GetDevice(ctx, a.appID, c.Param("device_id"))
	if err != nil {
		return err
	}
	app, err := s.store.GetApp(ctx, a.ownerID, a.appID)
	if err != nil {
		return err
	}
	v := deviceView(d)
	v.RotationDays = &app.RotationDays
	return c.JSON(http.StatusOK, v)
}

func (s *Server) handleDeleteDevice(c echo.Context) error {
	if err := s.store.DeleteDevice(c.Request().Context(), currentApp(c).appID, c.Param("device_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleRotateDevice(c echo.Context) error {
	var in api.RotateInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	token, hash := newCredential(deviceTokenPrefix)
	d, err := s.store.RotateDevice(c.Request().Context(), currentApp(c).appID, c.Param("device_id"), in.PublicKey, hash)
	if err != nil {
		return keyConflict(err)
	}
	return s.deviceCreated(c, http.StatusOK, d, token)
}

// handleResetDeviceToken gives one of the app's devices a new token, for a
// device that lost its own (secret key only); the old one stops working.
func (s *Server) handleResetDeviceToken(c echo.Context) error {
	token, hash := newCredential(deviceTokenPrefix)
	if err := s.store.ResetDeviceToken(c.Request().Context(), currentApp(c).appID, c.Param("device_id"), hash); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.DeviceToken{DeviceToken: token})
}
