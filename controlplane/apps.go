package controlplane

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func appView(a store.App) api.App {
	return api.App{ID: a.ID, Name: a.Name, DeviceCount: a.DeviceCount, RotationDays: a.RotationDays}
}

func (s *Server) handleCreateApp(c echo.Context) error {
	var in api.AppInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a, err := s.store.CreateApp(c.Request().Context(), currentOwner(c).ID, in.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, appView(a))
}

func (s *Server) handleListApps(c echo.Context) error {
	apps, err := s.store.ListApps(c.Request().Context(), currentOwner(c).ID)
	if err != nil {
		return err
	}
	out := api.AppList{Apps: make([]api.App, len(apps))}
	for i, a := range apps {
		out.Apps[i] = appView(a)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleGetApp(c echo.Context) error {
	a, err := s.store.GetApp(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, appView(a))
}

// handleUpdateApp renames an app or sets its key rotation policy.
func (s *Server) handleUpdateApp(c echo.Context) error {
	var in api.AppUpdate
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	a, err := s.store.UpdateApp(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"),
		store.AppUpdate{Name: in.Name, RotationDays: in.RotationDays})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, appView(a))
}

// handleAppPolicy tells a device, by its app's API key, the rotation
// policy to follow.
func (s *Server) handleAppPolicy(c echo.Context) error {
	ka := currentKey(c)
	a, err := s.store.GetApp(c.Request().Context(), ka.OwnerID, ka.AppID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.AppPolicy{RotationDays: a.RotationDays})
}

// handleDeleteApp hard-deletes the app, its keys and its devices; the
// devices leave every node with the next sync.
func (s *Server) handleDeleteApp(c echo.Context) error {
	if err := s.store.DeleteApp(c.Request().Context(), currentOwner(c).ID, c.Param("app_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// newAPIKey returns a fresh key: "tlk_" and 256 random bits in base64url,
// its listing prefix, and the SHA-256 that is all the store keeps. A fast
// hash suffices: the secret has 256 bits of entropy, nothing to guess.
func newAPIKey() (key, prefix, hash string) {
	var b [32]byte
	rand.Read(b[:])
	key = apiKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, key[:12], hashAPIKey(key)
}

func hashAPIKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// apiKeyLen is the length of every key newAPIKey makes.
const apiKeyLen = len(apiKeyPrefix) + 43

func (s *Server) handleCreateKey(c echo.Context) error {
	var in api.APIKeyInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	key, prefix, hash := newAPIKey()
	k, err := s.store.CreateAPIKey(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"),
		store.APIKey{Name: in.Name, Prefix: prefix, Hash: hash, Scopes: scopeDevices})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.APIKeyCreated{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Key: key})
}

// scopeDevices lets a key manage its app's devices and read its servers.
const scopeDevices = "devices"

func (s *Server) handleListKeys(c echo.Context) error {
	keys, err := s.store.ListAPIKeys(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"))
	if err != nil {
		return err
	}
	out := api.APIKeyList{Keys: make([]api.APIKey, len(keys))}
	for i, k := range keys {
		out.Keys[i] = api.APIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix}
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleDeleteKey(c echo.Context) error {
	if err := s.store.DeleteAPIKey(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"), c.Param("key_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
