package controlplane

import (
	"encoding/base64"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

const ctxKey = "traceless.apikey"

// requireAPIKey authenticates an app API key and applies the per-key rate
// limit. Nothing about the call is recorded.
func (s *Server) requireAPIKey(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := bearer(c)
		if !strings.HasPrefix(tok, apiKeyPrefix) || len(tok) != apiKeyLen {
			return errUnauthorized
		}
		ka, err := s.store.AuthenticateAPIKey(c.Request().Context(), hashAPIKey(tok))
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errUnauthorized
			}
			return err
		}
		if ka.OwnerStatus != store.StatusActive {
			return apiError(http.StatusForbidden, api.CodeForbidden, "the app owner's account is suspended")
		}
		if s.keyLimit != nil {
			if err := checkRate(c, s.keyLimit, "key:"+ka.KeyID); err != nil {
				return err
			}
		}
		c.Set(ctxKey, ka)
		return next(c)
	}
}

func currentKey(c echo.Context) store.KeyAuth {
	k, _ := c.Get(ctxKey).(store.KeyAuth)
	return k
}

func deviceView(d store.Device) api.Device {
	return api.Device{ID: d.ID, PublicKey: d.PublicKey, IPv4: d.IPv4, IPv6: d.IPv6, ExternalRef: d.ExternalRef}
}

func (s *Server) deviceCreated(c echo.Context, status int, d store.Device) error {
	servers, err := s.serverViews(c, currentKey(c).OwnerID)
	if err != nil {
		return err
	}
	return c.JSON(status, api.DeviceCreated{Device: deviceView(d), Servers: servers})
}

func (s *Server) handleRegisterDevice(c echo.Context) error {
	var in api.DeviceInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	d, err := s.store.RegisterDevice(c.Request().Context(), currentKey(c).AppID,
		store.NewDevice{PublicKey: in.PublicKey, ExternalRef: in.ExternalRef})
	if err != nil {
		return keyConflict(err)
	}
	return s.deviceCreated(c, http.StatusCreated, d)
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
	devs, err := s.store.ListDevices(c.Request().Context(), currentKey(c).AppID, after, limit+1)
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

func (s *Server) handleGetDevice(c echo.Context) error {
	d, err := s.store.GetDevice(c.Request().Context(), currentKey(c).AppID, c.Param("device_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deviceView(d))
}

func (s *Server) handleDeleteDevice(c echo.Context) error {
	if err := s.store.DeleteDevice(c.Request().Context(), currentKey(c).AppID, c.Param("device_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleRotateDevice(c echo.Context) error {
	var in api.RotateInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	d, err := s.store.RotateDevice(c.Request().Context(), currentKey(c).AppID, c.Param("device_id"), in.PublicKey, "")
	if err != nil {
		return keyConflict(err)
	}
	return s.deviceCreated(c, http.StatusOK, d)
}
