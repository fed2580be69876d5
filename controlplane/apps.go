package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/traceless-vpn/traceless/controlplane/api"
	"github.com/traceless-vpn/traceless/store"
)

func appView(a store.App) api.App {
	return api.App{ID: a.ID, Name: a.Name, DeviceCount: a.DeviceCount, RotationDays: a.RotationDays,
		RegistrationCap: a.RegistrationCap, RegistrationCapHits: a.RegistrationCapHits}
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
		store.AppUpdate{Name: in.Name, RotationDays: in.RotationDays, RegistrationCap: in.RegistrationCap})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, appView(a))
}

// handleAppPolicy tells a device, by its app's secret or publishable key,
// the rotation policy to follow.
func (s *Server) handleAppPolicy(c echo.Context) error {
	ka := currentApp(c)
	a, err := s.store.GetApp(c.Request().Context(), ka.ownerID, ka.appID)
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

// newAPIKey returns a fresh key of kind ("tlk_" for secret keys, "tlp_"
// for publishable ones, and 256 random bits), its listing prefix, and the
// SHA-256 that is all the store keeps.
func newAPIKey(kind string) (key, prefix, hash string) {
	p := apiKeyPrefix
	if kind == store.KeyPublishable {
		p = publishableKeyPrefix
	}
	key, hash = newCredential(p)
	return key, key[:12], hash
}

func hashAPIKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// checkKeyExpiry refuses an expiry that is not in the future.
func (s *Server) checkKeyExpiry(field string, t *time.Time) error {
	if t != nil && !t.After(s.now()) {
		return badRequest(field, "must be in the future")
	}
	return nil
}

// keyNameTaken turns the store's name conflict into a 409 naming the field.
func keyNameTaken(err error) error {
	if errors.Is(err, store.ErrKeyNameTaken) {
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Field: "name", Message: "the app already has a key of this name"}
	}
	return err
}

func (s *Server) handleCreateKey(c echo.Context) error {
	var in api.APIKeyInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	k, err := s.createKey(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, k)
}

// createKey checks in and creates a key of one of the owner's apps; the
// answer holds the key, shown only this once.
func (s *Server) createKey(ctx context.Context, ownerID, appID string, in api.APIKeyInput) (api.APIKeyCreated, error) {
	if in.Kind != "" && in.Kind != api.KeySecret && in.Kind != api.KeyPublishable {
		return api.APIKeyCreated{}, badRequest("kind", "must be %q or %q", api.KeySecret, api.KeyPublishable)
	}
	if err := s.checkKeyExpiry("expires_at", in.ExpiresAt); err != nil {
		return api.APIKeyCreated{}, err
	}
	key, prefix, hash := newAPIKey(in.Kind)
	k, err := s.store.CreateAPIKey(ctx, ownerID, appID,
		store.APIKey{Name: in.Name, Prefix: prefix, Hash: hash, Scopes: scopeDevices, Kind: in.Kind, ExpiresAt: in.ExpiresAt})
	if err != nil {
		return api.APIKeyCreated{}, keyNameTaken(err)
	}
	return keyCreatedView(k, key), nil
}

func keyCreatedView(k store.APIKey, key string) api.APIKeyCreated {
	return api.APIKeyCreated{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Kind: k.Kind, ExpiresAt: utcPtr(k.ExpiresAt), Key: key}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// keyView converts a stored key to its listed form at now.
func keyView(k store.APIKey, now time.Time) api.APIKey {
	return api.APIKey{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Kind: k.Kind, ExpiresAt: utcPtr(k.ExpiresAt),
		Expired: k.ExpiresAt != nil && !now.Before(*k.ExpiresAt), ReplacedBy: k.ReplacedBy}
}

// handleReplaceKey creates the key that replaces key_id, of its kind, and
// lets the old one work until grace_until: app versions that shipped with
// a publishable key keep working while users update.
func (s *Server) handleReplaceKey(c echo.Context) error {
	var in api.KeyReplaceInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r, err := s.replaceKey(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"), c.Param("key_id"), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, r)
}

// replaceKey checks in and replaces keyID of one of the owner's apps; the
// answer holds the new key, shown only this once, and the old one.
func (s *Server) replaceKey(ctx context.Context, ownerID, appID, keyID string, in api.KeyReplaceInput) (api.KeyReplaced, error) {
	now := s.now()
	switch {
	case in.GraceUntil.IsZero():
		return api.KeyReplaced{}, badRequest("grace_until", "is required: until when the old key keeps working (now ends it at once)")
	case in.GraceUntil.Before(now.Add(-time.Minute)):
		return api.KeyReplaced{}, badRequest("grace_until", "must not lie in the past")
	case in.GraceUntil.After(now.Add(store.MaxKeyGrace)):
		return api.KeyReplaced{}, badRequest("grace_until", "must be at most %d days ahead", int(store.MaxKeyGrace/(24*time.Hour)))
	}
	if err := s.checkKeyExpiry("expires_at", in.ExpiresAt); err != nil {
		return api.KeyReplaced{}, err
	}
	old, err := s.store.GetAPIKey(ctx, ownerID, appID, keyID)
	if err != nil {
		return api.KeyReplaced{}, err
	}
	key, prefix, hash := newAPIKey(old.Kind)
	nk, replaced, err := s.store.ReplaceAPIKey(ctx, ownerID, appID, old.ID,
		store.APIKey{Name: in.Name, Prefix: prefix, Hash: hash, Scopes: scopeDevices, ExpiresAt: in.ExpiresAt}, maxTime(in.GraceUntil, now))
	if err != nil {
		if errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrKeyNameTaken) {
			return api.KeyReplaced{}, apiError(http.StatusConflict, api.CodeConflict, "the key was already replaced")
		}
		return api.KeyReplaced{}, keyNameTaken(err)
	}
	return api.KeyReplaced{APIKeyCreated: keyCreatedView(nk, key), Replaced: keyView(replaced, now)}, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// scopeDevices lets a key manage its app's devices and read its servers.
const scopeDevices = "devices"

func (s *Server) handleListKeys(c echo.Context) error {
	keys, err := s.store.ListAPIKeys(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"))
	if err != nil {
		return err
	}
	now := s.now()
	out := api.APIKeyList{Keys: make([]api.APIKey, len(keys))}
	for i, k := range keys {
		out.Keys[i] = keyView(k, now)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleDeleteKey(c echo.Context) error {
	if err := s.store.DeleteAPIKey(c.Request().Context(), currentOwner(c).ID, c.Param("app_id"), c.Param("key_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
