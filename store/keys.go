package store

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

var hexHashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// KeyAuth is what an API key authenticates: its app and the app's owner,
// the key's kind and expiry, and the app's registration cap.
type KeyAuth struct {
	KeyID, AppID, OwnerID, OwnerStatus, Scopes string
	Kind                                       string
	ExpiresAt                                  *time.Time
	RegistrationCap                            int
}

// Expired reports whether the key no longer works at now.
func (k KeyAuth) Expired(now time.Time) bool { return k.ExpiresAt != nil && !now.Before(*k.ExpiresAt) }

// validate checks what the caller chose for a new key: name, hash and kind
// (empty means secret).
func (k *APIKey) validate() error {
	if k.Kind == "" {
		k.Kind = KeySecret
	}
	switch {
	case !validText(k.Name, 100):
		return invalid("name", "must be 1-100 printable characters")
	case !hexHashRE.MatchString(k.Hash):
		return invalid("hash", "must be a hex SHA-256")
	case k.Kind != KeySecret && k.Kind != KeyPublishable:
		return invalid("kind", "must be %q or %q", KeySecret, KeyPublishable)
	case k.ExpiresAt != nil && k.ExpiresAt.IsZero():
		return invalid("expires_at", "must be a time")
	}
	if k.ExpiresAt != nil {
		t := k.ExpiresAt.UTC()
		k.ExpiresAt = &t
	}
	return nil
}

// ErrKeyNameTaken is returned (wrapped in ErrConflict) when the app already
// has a key of that name.
var ErrKeyNameTaken = fmt.Errorf("%w: a key of this name exists", ErrConflict)

// CreateAPIKey stores the hash of a new key for one of the owner's apps.
// The secret itself never reaches the store. Names are unique per app
// (ErrKeyNameTaken); an empty Kind means KeySecret.
func (s *Store) CreateAPIKey(ctx context.Context, ownerID, appID string, k APIKey) (APIKey, error) {
	k.ID = uuid.NewString()
	k.AppID = appID
	k.ReplacedBy = nil
	if err := k.validate(); err != nil {
		return APIKey{}, err
	}
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := lockAppForKeys(tx, ownerID, appID); err != nil {
			return err
		}
		return insertKey(tx, &k)
	})
	if err != nil {
		return APIKey{}, err
	}
	return k, nil
}

// lockAppForKeys checks that the app is the owner's and, on PostgreSQL,
// serialises key creation per app, or parallel calls all pass the cap and
// the name check (SQLite's writer already does).
func lockAppForKeys(tx *gorm.DB, ownerID, appID string) error {
	q := `SELECT id FROM apps WHERE id = ? AND owner_id = ?`
	if tx.Dialector.Name() == DriverPostgres {
		q += ` FOR NO KEY UPDATE`
	}
	var ids []string
	if err := tx.Raw(q, appID, ownerID).Scan(&ids).Error; err != nil {
		return err
	}
	if len(ids) == 0 {
		return ErrNotFound
	}
	return nil
}

// insertKey adds k to its app within the per-app cap and name rule.
func insertKey(tx *gorm.DB, k *APIKey) error {
	var keys int64
	if err := tx.Model(&APIKey{}).Where("app_id = ?", k.AppID).Count(&keys).Error; err != nil {
		return err
	}
	if keys >= maxKeysPerApp {
		return ErrPlanLimit
	}
	var same int64
	if err := tx.Model(&APIKey{}).Where("app_id = ? AND name = ?", k.AppID, k.Name).Count(&same).Error; err != nil {
		return err
	}
	if same > 0 {
		return ErrKeyNameTaken
	}
	return tx.Create(k).Error
}

// MaxKeyGrace bounds how long a replaced key keeps working.
const MaxKeyGrace = 366 * 24 * time.Hour

// ReplaceAPIKey creates the key that replaces oldID, of the same kind, and
// lets the old key work until graceUntil (or its own earlier expiry), so
// that app versions shipped with it keep working while users update. The
// old key names its replacement in ReplacedBy. A key already replaced is
// ErrConflict. It returns the new key and the old one as changed.
func (s *Store) ReplaceAPIKey(ctx context.Context, ownerID, appID, oldID string, k APIKey, graceUntil time.Time) (APIKey, APIKey, error) {
	if graceUntil.IsZero() {
		return APIKey{}, APIKey{}, invalid("grace_until", "is required")
	}
	graceUntil = graceUntil.UTC()
	k.ID = uuid.NewString()
	k.AppID = appID
	k.ReplacedBy = nil
	var old APIKey
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := lockAppForKeys(tx, ownerID, appID); err != nil {
			return err
		}
		if err := tx.Where("id = ? AND app_id = ?", oldID, appID).Take(&old).Error; err != nil {
			return err
		}
		if old.ReplacedBy != nil {
			return fmt.Errorf("%w: the key was already replaced", ErrConflict)
		}
		k.Kind = old.Kind
		if err := k.validate(); err != nil {
			return err
		}
		if err := insertKey(tx, &k); err != nil {
			return err
		}
		if old.ExpiresAt == nil || graceUntil.Before(*old.ExpiresAt) {
			old.ExpiresAt = &graceUntil
		}
		old.ReplacedBy = &k.ID
		return tx.Model(&APIKey{}).Where("id = ?", old.ID).
			Updates(map[string]any{"expires_at": *old.ExpiresAt, "replaced_by": k.ID}).Error
	})
	if err != nil {
		return APIKey{}, APIKey{}, translate(err)
	}
	return k, old, nil
}

// maxKeysPerApp bounds keys per app whatever the plan.
const maxKeysPerApp = 100

// ListAPIKeys returns the keys of one of the owner's apps (never a secret:
// the store has none).
func (s *Store) ListAPIKeys(ctx context.Context, ownerID, appID string) ([]APIKey, error) {
	if _, err := s.GetApp(ctx, ownerID, appID); err != nil {
		return nil, err
	}
	var out []APIKey
	err := s.read(ctx).Where("app_id = ?", appID).Order("name, id").Find(&out).Error
	return out, translate(err)
}

// GetAPIKey returns one key of one of the owner's apps; ErrNotFound for
// another owner's or another app's.
func (s *Store) GetAPIKey(ctx context.Context, ownerID, appID, keyID string) (APIKey, error) {
	var k APIKey
	err := s.read(ctx).Where("id = ? AND app_id = ? AND app_id IN (SELECT id FROM apps WHERE owner_id = ?)", keyID, appID, ownerID).Take(&k).Error
	return k, translate(err)
}

// DeleteAPIKey revokes a key at once (hard delete).
func (s *Store) DeleteAPIKey(ctx context.Context, ownerID, appID, keyID string) error {
	return s.write(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND app_id = ? AND app_id IN (SELECT id FROM apps WHERE owner_id = ?)", keyID, appID, ownerID).Delete(&APIKey{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		// A key in its grace period no longer names a replacement that is gone.
		return tx.Model(&APIKey{}).Where("app_id = ? AND replaced_by = ?", appID, keyID).Update("replaced_by", nil).Error
	})
}

// AuthenticateAPIKey looks a key up by the SHA-256 of its secret. Nothing
// about the lookup is recorded. An expired key is still returned: the
// caller, which has the clock, refuses it (KeyAuth.Expired).
func (s *Store) AuthenticateAPIKey(ctx context.Context, hash string) (KeyAuth, error) {
	var ka []KeyAuth
	err := s.read(ctx).Raw(`SELECT api_keys.id AS key_id, api_keys.app_id, apps.owner_id, owners.status AS owner_status, api_keys.scopes,
		api_keys.kind, api_keys.expires_at, apps.registration_cap
		FROM api_keys JOIN apps ON apps.id = api_keys.app_id JOIN owners ON owners.id = apps.owner_id
		WHERE api_keys.hash = ?`, hash).Scan(&ka).Error
	if err != nil {
		return KeyAuth{}, translate(err)
	}
	if len(ka) == 0 {
		return KeyAuth{}, ErrNotFound
	}
	return ka[0], nil
}
