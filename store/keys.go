package store

import (
	"context"
	"regexp"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

var hexHashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// KeyAuth is what an API key authenticates: its app and the app's owner.
type KeyAuth struct {
	KeyID, AppID, OwnerID, OwnerStatus, Scopes string
}

// CreateAPIKey stores the hash of a new key for one of the owner's apps.
// The secret itself never reaches the store.
func (s *Store) CreateAPIKey(ctx context.Context, ownerID, appID string, k APIKey) (APIKey, error) {
	k.ID = uuid.NewString()
	k.AppID = appID
	switch {
	case !validText(k.Name, 100):
		return APIKey{}, invalid("name", "must be 1-100 printable characters")
	case !hexHashRE.MatchString(k.Hash):
		return APIKey{}, invalid("hash", "must be a hex SHA-256")
	}
	err := s.write(ctx, func(tx *gorm.DB) error {
		q := `SELECT id FROM apps WHERE id = ? AND owner_id = ?`
		if tx.Dialector.Name() == DriverPostgres {
			// Serialise key creation per app, or parallel calls all pass
			// the cap below (SQLite's writer already does).
			q += ` FOR NO KEY UPDATE`
		}
		var ids []string
		if err := tx.Raw(q, appID, ownerID).Scan(&ids).Error; err != nil {
			return err
		}
		if len(ids) == 0 {
			return ErrNotFound
		}
		var keys int64
		if err := tx.Model(&APIKey{}).Where("app_id = ?", appID).Count(&keys).Error; err != nil {
			return err
		}
		if keys >= maxKeysPerApp {
			return ErrPlanLimit
		}
		return tx.Create(&k).Error
	})
	if err != nil {
		return APIKey{}, err
	}
	return k, nil
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
		return nil
	})
}

// AuthenticateAPIKey looks a key up by the SHA-256 of its secret. Nothing
// about the lookup is recorded.
func (s *Store) AuthenticateAPIKey(ctx context.Context, hash string) (KeyAuth, error) {
	var ka []KeyAuth
	err := s.read(ctx).Raw(`SELECT api_keys.id AS key_id, api_keys.app_id, apps.owner_id, owners.status AS owner_status, api_keys.scopes
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
